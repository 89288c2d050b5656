"""A run's plugin state: a typed key -> value store the host keeps per run (pytest's ``Stash``).

A plugin that keeps state between its hooks (a count summed per step and reported per epoch,
a value its sample stage computes and its forward reads) declares a key at module level and
keeps the value in the stash the host passes to its hooks, never in a module global (two runs
in one process would share it) nor in ``args`` (it is the run's options, saved as
``params.txt``)::

    from alignclip_plugins.stash import StashKey

    PAD_ID = StashKey[int]("my_plugin: tag padding id")

    @hookimpl
    def octrain_sample_stages(args, is_train, tokenizer, epoch, stash):
        stash[PAD_ID] = pad_id_of(tokenizer)
        ...

    @hookimpl
    def octrain_forward_features(model, batch, model_out, args, stash):
        pad = stash.get(PAD_ID, 0)

The host makes one :class:`Stash` per run (per parsed ``args``; see
:meth:`alignclip_plugins.host.PluginHost.stash_for`), so two runs in one process, even with
the same ``--plugins`` (one cached host), never see each other's values.

A stash lives in the process that made it: the trainer's. Sample stages run in webdataset
loader workers, which get copies of the pipeline (pickled, or forked with the trainer's
memory): what a worker would write to a stash would never reach the trainer. A stash
therefore refuses any access from another process, and refuses to be pickled; what a worker
sees travels to the trainer inside the batches (as the loader report and
:class:`~alignclip_plugins.epoch_counts.EpochCounts` do).
"""

from __future__ import annotations

import os
from typing import Generic, TypeVar, cast, overload

__all__ = ["Stash", "StashError", "StashKey"]

T = TypeVar("T")
D = TypeVar("D")


class StashKey(Generic[T]):
    """A key of a :class:`Stash` whose values are ``T``; compared by identity.

    ``name`` only names the key in error messages (say whose value it is).
    """

    __slots__ = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StashKey({self.name!r})" if self.name else super().__repr__()


class StashError(RuntimeError):
    """A stash used outside the process that owns it (a loader worker), or pickled."""


class Stash:
    """Values by :class:`StashKey`, typed by their key; one per run, in the trainer's process."""

    __slots__ = ("_storage", "_pid")

    def __init__(self) -> None:
        self._storage: dict[StashKey, object] = {}
        self._pid = os.getpid()

    def _owned(self, key: StashKey | None = None) -> dict[StashKey, object]:
        if os.getpid() != self._pid:
            what = f" (key {key!r})" if key is not None else ""
            raise StashError(
                f"a run's stash was used in process {os.getpid()}{what}, but it lives in the "
                f"trainer's process {self._pid}: a loader worker's writes would never reach "
                "it. Keep worker-side state in the stage itself and send it to the trainer "
                "inside the batches (see alignclip_plugins.epoch_counts)"
            )
        return self._storage

    def __setitem__(self, key: StashKey[T], value: T) -> None:
        self._owned(key)[key] = value

    def __getitem__(self, key: StashKey[T]) -> T:
        try:
            return cast(T, self._owned(key)[key])
        except KeyError:
            raise KeyError(f"nothing stashed under {key!r} in this run") from None

    @overload
    def get(self, key: StashKey[T], default: None = None) -> T | None: ...

    @overload
    def get(self, key: StashKey[T], default: D) -> T | D: ...

    def get(self, key, default=None):
        """The value of ``key``, or ``default`` when nothing is stashed under it."""
        return self._owned(key).get(key, default)

    def setdefault(self, key: StashKey[T], default: T) -> T:
        """The value of ``key``; first stashes ``default`` when nothing is stashed under it."""
        return cast(T, self._owned(key).setdefault(key, default))

    def __delitem__(self, key: StashKey[T]) -> None:
        del self._owned(key)[key]

    def __contains__(self, key: StashKey) -> bool:
        return key in self._owned(key)

    def __len__(self) -> int:
        return len(self._owned())

    def __reduce__(self):
        raise StashError(
            "a run's stash cannot be pickled: it lives in the trainer's process, and a copy "
            "sent to a loader worker would take writes that never come back. Keep the values "
            "a stage needs in the stage itself"
        )
