"""Multi-caption shards through the real trainer: one caption per image per epoch by a keyed
hash (the same after ``--resume``), its object set through the alignclip stage, and
``--caption-choice all`` exactly upstream's training."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alignclip_plugins.captions.choice import caption_lines, choose
from alignclip_plugins.model_configs import model_arg
from alignclip_plugins.objects.captions import iter_captions
from alignclip_plugins.objects.sample_objects import (
    SidecarIndex,
    load_shard_objects,
    vocabulary_ids,
)
from alignclip_plugins.objects.stats import load_object_vocabulary
from alignclip_plugins.patching.importer import DISABLE_ENV

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
SEED = 5
RECORDER = '''
import json, os
from alignclip_plugins.hookspecs import hookimpl


class Record:
    """Appends what each training sample carries after the other stages to $CAPTION_RECORD."""

    def __init__(self, epoch):
        self.epoch = epoch

    def __call__(self, src):
        epoch = self.epoch.get_value()
        with open(os.environ["CAPTION_RECORD"], "a") as f:
            for s in src:
                row = {"epoch": epoch, "key": s["__key__"], "index": s.get("caption_index"),
                       "text": s["text"], "objects": list(s.get("image_objects", ()))}
                f.write(json.dumps(row) + "\\n")
                f.flush()
                yield s


@hookimpl
def octrain_sample_stages(args, is_train, tokenizer, epoch):
    return [Record(epoch)] if is_train else None
'''


def trainer(data, logs, name, *extra, epochs, record=None, unpatched=False, site=None):
    cmd = [
        sys.executable, str(HERE / "support" / "run_trainer.py"),
        "--model", model_arg(), "--train-data", str(data["train"]), "--train-num-samples", "16",
        "--dataset-type", "webdataset", "--batch-size", "8", "--epochs", str(epochs),
        "--lr", "1e-3", "--warmup", "1", "--workers", "1", "--precision", "fp32",
        "--seed", str(SEED), "--log-every-n-steps", "1", "--logs", str(logs), "--name", name,
        "--report-to", "", *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    if record is not None:
        env["CAPTION_RECORD"] = str(record)
    if unpatched:
        env[DISABLE_ENV] = "1"
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(*procs):
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:] + err[-3000:]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_epoch(records: list[dict], epoch: int) -> dict[str, tuple]:
    return {
        r["key"]: (r["index"], r["text"], tuple(r["objects"]))
        for r in records
        if r["epoch"] == epoch
    }


def losses(run: Path) -> list[str]:
    return [line.split("Loss:")[1] for line in (run / "out.log").read_text().splitlines()
            if "Train Epoch" in line]  # fmt: skip


@pytest.fixture(scope="module")
def runs(multicaption_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("multicaption-e2e")
    site = root / "site"
    logs = root / "logs"
    pkg = site / "recording"  # a dotted-path plugin (no entry point)
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "caption_recorder.py").write_text(RECORDER)
    alignclip = ["--plugins", "alignclip,recording.caption_recorder",
                 "--alignclip-objects", str(multicaption_data["objects"]),
                 "--alignclip-vocabulary", str(multicaption_data["vocabulary"])]  # fmt: skip
    finish(
        trainer(multicaption_data, logs, "full", *alignclip, epochs=2, record=root / "full.jsonl",
                site=site),
        trainer(multicaption_data, logs, "resumed", *alignclip, epochs=1,
                record=root / "first.jsonl", site=site),
    )  # fmt: skip
    finish(
        trainer(multicaption_data, logs, "resumed", *alignclip, "--resume", "latest", epochs=2,
                record=root / "second.jsonl", site=site),
        trainer(multicaption_data, logs, "upstream", epochs=1, unpatched=True),
    )  # fmt: skip
    finish(
        trainer(multicaption_data, logs, "all", "--plugins", "captions", "--caption-choice",
                "all", epochs=1)
    )  # fmt: skip
    return {"root": root, "logs": logs}


def test_each_epoch_shows_one_caption_drawn_by_a_keyed_hash(runs, multicaption_data):
    records = rows(runs["root"] / "full.jsonl")
    captions = {c.key: caption_lines(c.text) for s in sorted(multicaption_data["shards"].glob(
        "train-*.tar")) for c in iter_captions(s)}  # fmt: skip
    assert len(captions) == 16
    for epoch in (0, 1):
        seen = by_epoch(records, epoch)
        assert set(seen) == set(captions)  # every image once per epoch
        for key, (index, text, _) in seen.items():
            assert index == choose("random", 5, seed=SEED, epoch=epoch, key=key)
            assert text == captions[key][index]
    assert by_epoch(records, 0) != by_epoch(records, 1)
    log = (runs["logs"] / "full" / "out.log").read_text()
    assert "captions, epoch 1 (choice random): 16 samples: 16 with 5 captions" in log


def test_resume_sees_the_same_captions(runs):
    full = rows(runs["root"] / "full.jsonl")
    assert by_epoch(rows(runs["root"] / "first.jsonl"), 0) == by_epoch(full, 0)
    second = rows(runs["root"] / "second.jsonl")
    assert {r["epoch"] for r in second} == {1}
    assert by_epoch(second, 1) == by_epoch(full, 1)
    assert "resuming checkpoint" in (runs["logs"] / "resumed" / "out.log").read_text()


def test_alignclip_stage_attaches_the_chosen_captions_object_set(runs, multicaption_data):
    vocabulary = load_object_vocabulary(multicaption_data["vocabulary"])
    ids = vocabulary_ids(vocabulary.names)
    index = SidecarIndex([multicaption_data["objects"]])
    sets = {}
    for shard in sorted(multicaption_data["shards"].glob("train-*.tar")):
        sets.update(load_shard_objects(index.path_for(str(shard)), ids))
    records = rows(runs["root"] / "full.jsonl")
    differs = 0
    for r in records:
        assert tuple(r["objects"]) == sets[r["key"]].captions[r["index"]]
        differs += tuple(r["objects"]) != tuple(sets[r["key"]])  # not the union
    assert differs > 0


def test_all_lines_as_one_text_is_upstreams_training(runs):
    upstream = losses(runs["logs"] / "upstream")
    assert len(upstream) == 2 and losses(runs["logs"] / "all") == upstream
