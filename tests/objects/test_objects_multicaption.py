"""Several captions per sample (one a line): per-caption object sets from parse to stage."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence

import pytest

from alignclip_plugins.objects.parsing import Caption, ObjectParser
from alignclip_plugins.objects.run import SUMMARY_FILE, parse_inputs
from alignclip_plugins.objects.sample_objects import (
    AttachObjectIds,
    CaptionIds,
    SidecarIndex,
    check_caption_counts,
    load_shard_objects,
)
from alignclip_plugins.objects.sidecar import iter_records, read_sidecar
from alignclip_plugins.objects.stats import count_objects

IDS = {"dog": 0, "cat": 1, "ball": 2}


def write_shard(path, captions: dict[str, str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, text in captions.items():
            for ext, data in (("jpg", b"\xff\xd8jpeg"), ("txt", text.encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


class Words(ObjectParser):
    """Objects = the words of IDS; records the caption keys and texts it was given."""

    name = "words"
    batch_size = 2  # sample "m" (3 lines) spans two batches

    def __init__(self):
        self.seen: list[tuple[str, str]] = []

    def parse_batch(self, captions: Sequence[Caption]) -> list[list[str] | None]:
        self.seen += [(c.key, c.text) for c in captions]
        return [list(dict.fromkeys(w for w in c.text.split() if w in IDS)) for c in captions]

    def identity(self):
        return {"parser": self.name}


@pytest.fixture
def shards(tmp_path):
    a = write_shard(
        tmp_path / "data" / "train-000000.tar",
        {"m": "a dog\n\na cat and a dog\n  a ball  \n", "s": "one cat\n", "e": " \n\n"},
    )
    b = write_shard(tmp_path / "data" / "train-000001.tar", {"t": "dog\ncat\n"})
    return [a, b]


def test_parse_writes_one_set_per_caption_line(tmp_path, shards):
    parser = Words()
    out = tmp_path / "objects"
    summary = parse_inputs(shards[:1], parser, out, progress=False)
    lines = (out / "train-000000.objects.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [
        {
            "key": "m",
            "objects": ["dog", "cat", "ball"],
            "captions": [["dog"], ["cat", "dog"], ["ball"]],
        },
        {"key": "s", "objects": ["cat"]},  # one caption: today's record
    ]  # "e" (no non-empty line) gets no record
    assert parser.seen == [
        ("m#0", "a dog"), ("m#1", "a cat and a dog"), ("m#2", "a ball"), ("s", "one cat"),
    ]  # fmt: skip
    assert summary["samples"] == 2 and summary["captions"] == 4
    assert summary["samples_with_empty_caption"] == 1
    assert read_sidecar(out / "train-000000.objects.jsonl")["m"] == ["dog", "cat", "ball"]
    counted = count_objects([out])  # each caption counts
    assert counted.num_captions == 4 and counted.counts == {"dog": 2, "cat": 2, "ball": 1}


def test_summary_accumulates_over_reruns(tmp_path, shards):
    out = tmp_path / "objects"
    parse_inputs(shards[:1], Words(), out, progress=False)
    second = parse_inputs(shards, Words(), out, progress=False)
    assert second["inputs_skipped"] == 1 and second["inputs_parsed"] == 1
    skipped = next(r for r in second["per_input"] if r["status"] == "skipped")
    assert skipped["samples_with_empty_caption"] == 1  # kept from the run that parsed it
    written = json.loads((out / SUMMARY_FILE).read_text())
    assert [r["inputs_parsed"] for r in written["runs"]] == [1, 1]
    assert [r["captions_parsed"] for r in written["runs"]] == [4, 2]
    total = written["total"]
    assert total["runs"] == 2 and total["inputs"] == total["inputs_done"] == 2
    assert total["samples"] == 3 and total["captions"] == 6 and total["captions_parsed"] == 6
    assert total["samples_with_empty_caption"] == 1
    third = parse_inputs(shards[1:], Words(), out, progress=False)  # a subset: totals stay
    assert third["total"]["inputs"] == 2 and third["total"]["captions"] == 6
    assert len(third["runs"]) == 3
    fresh = parse_inputs(shards, Words(), out, overwrite=True, progress=False)
    assert len(fresh["runs"]) == 1 and fresh["total"]["captions"] == 6


def test_legacy_and_bad_records(tmp_path):
    path = tmp_path / "s.objects.jsonl"
    path.write_text('{"key": "a", "objects": ["dog"]}\n')
    (record,) = iter_records(path)
    assert record.captions is None and record.caption_sets == [["dog"]]
    path.write_text('{"key": "a", "objects": [], "captions": ["dog"]}\n')
    with pytest.raises(ValueError, match=r"s.objects.jsonl, line 1: not an object-set record"):
        list(iter_records(path))


def test_stage_attaches_the_chosen_captions_set(tmp_path, shards):
    out = tmp_path / "objects"
    parse_inputs(shards, Words(), out, progress=False)
    loaded = load_shard_objects(out / "train-000000.objects.jsonl", IDS)
    assert isinstance(loaded["m"], CaptionIds) and loaded["m"] == (0, 1, 2)
    assert loaded["m"].captions == ((0,), (1, 0), (2,)) and loaded["s"] == (1,)
    stage = AttachObjectIds(SidecarIndex([out]), IDS)

    def sample(key, index, count, shard=shards[0]):
        return {"__key__": key, "__url__": shard, "caption_index": index, "caption_count": count}

    got = list(stage(iter([sample("m", 1, 3), sample("m", 2, 3), sample("m", None, 3),
                           sample("s", 0, 1), sample("t", 1, 2, shards[1])])))  # fmt: skip
    assert [s["image_objects"] for s in got] == [(1, 0), (2,), (0, 1, 2), (1,), (1,)]


def test_caption_count_mismatches_name_the_key_shard_and_command(tmp_path, shards):
    out = tmp_path / "objects"
    parse_inputs(shards, Words(), out, progress=False)
    stage = AttachObjectIds(SidecarIndex([out]), IDS)
    wrong = {"__key__": "m", "__url__": shards[0], "caption_index": 0, "caption_count": 2}
    with pytest.raises(ValueError) as e:
        list(stage(iter([wrong])))
    assert "caption-count mismatch for sample 'm'" in str(e.value)
    assert f"{shards[0]} has 2 caption lines" in str(e.value)
    assert f"alignclip objects parse '{shards[0]}' --out {out} --overwrite" in str(e.value)
    # a sidecar written for one caption per sample, with multi-caption shards
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "train-000001.objects.jsonl").write_text('{"key": "t", "objects": ["dog", "cat"]}\n')
    with pytest.raises(ValueError, match=r"holds one object set per sample .* sample 't' of "):
        check_caption_counts(shards[1], legacy / "train-000001.objects.jsonl", ["data/*.tar"])
    with pytest.raises(ValueError, match=r"alignclip objects parse 'data/\*.tar' --out"):
        check_caption_counts(shards[1], legacy / "train-000001.objects.jsonl", ["data/*.tar"])
    # the reverse: per-caption sets, one caption per sample in the shard
    single = write_shard(tmp_path / "one" / "train-000001.tar", {"t": "dog and cat\n"})
    with pytest.raises(ValueError, match="written for multi-caption shards .* holds one caption"):
        check_caption_counts(single, out / "train-000001.objects.jsonl")
    check_caption_counts(shards[0], out / "train-000000.objects.jsonl")  # matches: no error


def test_alignclip_refuses_a_one_caption_sidecar_for_multi_caption_shards_at_start_up(
    multicaption_data, tmp_path, capsys
):
    from open_clip_train.params import parse_args

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for path in sorted(multicaption_data["objects"].glob("*.objects.jsonl")):
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        (legacy / path.name).write_text(
            "".join(json.dumps({"key": r["key"], "objects": r["objects"]}) + "\n" for r in lines)
        )
    argv = ["--train-data", str(multicaption_data["train"]), "--dataset-type", "webdataset",
            "--plugins", "alignclip", "--alignclip-vocabulary",
            str(multicaption_data["vocabulary"])]  # fmt: skip
    args = parse_args([*argv, "--alignclip-objects", str(multicaption_data["objects"])])
    assert args.caption_choice == "random"  # alignclip's default on multi-caption shards
    with pytest.raises(SystemExit):
        parse_args([*argv, "--alignclip-objects", str(legacy)])
    err = capsys.readouterr().err
    assert "train-000000.objects.jsonl holds one object set per sample" in err
    assert "train-000000.tar has 5 captions, one a line" in err
    assert (
        f"alignclip objects parse '{multicaption_data['train']}' --out {legacy} --overwrite" in err
    )
