"""The run's stash: typed keys, one store per run, and only in the process that made it."""

import multiprocessing
import pickle

import pytest

from alignclip_plugins.stash import Stash, StashError, StashKey

COUNT = StashKey[int]("test: a count")
NAMES = StashKey[list]("test: names")


def test_values_by_key():
    stash = Stash()
    assert COUNT not in stash and len(stash) == 0 and stash.get(COUNT) is None
    assert stash.get(COUNT, 0) == 0
    stash[COUNT] = 3
    assert stash[COUNT] == 3 and COUNT in stash and len(stash) == 1
    names = stash.setdefault(NAMES, [])
    names.append("a")
    assert stash.setdefault(NAMES, []) == ["a"]  # the stashed value, not the new default
    del stash[COUNT]
    with pytest.raises(KeyError, match="nothing stashed under StashKey\\('test: a count'\\)"):
        stash[COUNT]
    assert StashKey[int]("test: a count") not in stash  # keys compare by identity


def test_a_stash_is_not_pickled():
    with pytest.raises(StashError, match="cannot be pickled"):
        pickle.dumps(Stash())


def _use_in_child(stash, queue):
    try:
        stash.get(COUNT)
    except StashError as e:
        queue.put(str(e))
    else:
        queue.put("no error")


def test_a_loader_worker_cannot_use_the_trainers_stash():
    """A forked loader worker gets a copy of the trainer's memory: its writes would be lost."""
    stash = Stash()
    stash[COUNT] = 1
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_use_in_child, args=(stash, queue))
    child.start()
    message = queue.get(timeout=60)
    child.join(timeout=60)
    assert "lives in the trainer's process" in message and "(key StashKey('test: a count'))" in (
        message
    )
    assert stash[COUNT] == 1  # the trainer's process still uses it
