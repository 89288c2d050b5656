"""Parsing inputs into sidecars: resume, atomic outputs, failures, summary, the CLI."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence

import pytest

from alignclip_plugins.objects import cli
from alignclip_plugins.objects.parsing import Caption, ObjectParser
from alignclip_plugins.objects.run import SUMMARY_FILE, parse_inputs
from alignclip_plugins.objects.sidecar import read_sidecar


def write_shard(path, captions: dict[str, str]) -> None:
    with tarfile.open(path, "w") as tar:
        for key, text in captions.items():
            for ext, data in (("jpg", b"\xff\xd8jpeg"), ("txt", text.encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


class WordParser(ObjectParser):
    """Objects = words starting with 'x'; records every caption it parsed; can fail."""

    name = "words"
    batch_size = 2

    def __init__(self, fail_on: str | None = None, crash_on: str | None = None):
        self.seen: list[str] = []
        self.fail_on = fail_on
        self.crash_on = crash_on

    def parse_batch(self, captions: Sequence[Caption]) -> list[list[str] | None]:
        out: list[list[str] | None] = []
        for c in captions:
            if c.text == self.crash_on:
                raise KeyboardInterrupt
            self.seen.append(c.text)
            words = list(dict.fromkeys(w for w in c.text.split() if w[0] == "x"))
            out.append(None if c.text == self.fail_on else words)
        return out

    def identity(self):
        return {"parser": self.name}


@pytest.fixture
def inputs(tmp_path):
    a = tmp_path / "data" / "train-000000.tar"
    a.parent.mkdir()
    write_shard(a, {"k0": "x1 y", "k1": "none here", "k2": "x2 x1 x1"})
    b = tmp_path / "data" / "train-000001.tar"
    write_shard(b, {"k3": "x3", "k4": "x1 y"})
    c = tmp_path / "captions.txt"
    c.write_text("x9\n\nplain\n")
    return [a, b, c]


def test_parse_writes_sidecars_and_summary(tmp_path, inputs):
    out = tmp_path / "out"
    summary = parse_inputs(inputs, WordParser(), out, progress=False)
    assert read_sidecar(out / "train-000000.objects.jsonl") == {
        "k0": ["x1"],
        "k1": [],
        "k2": ["x2", "x1"],
    }
    assert read_sidecar(out / "captions.objects.jsonl") == {"1": ["x9"], "2": [], "3": []}
    assert summary["captions"] == 8
    assert summary["captions_without_objects"] == 3
    assert summary["distinct_objects"] == 4  # x1 x2 x3 x9
    assert summary["object_occurrences"] == 6
    assert summary["inputs_parsed"] == 3
    assert json.loads((out / SUMMARY_FILE).read_text())["captions"] == 8


def test_rerun_skips_finished_inputs(tmp_path, inputs):
    out = tmp_path / "out"
    parse_inputs(inputs, WordParser(), out, progress=False)
    again = WordParser()
    summary = parse_inputs(inputs, again, out, progress=False)
    assert again.seen == []
    assert summary["inputs_skipped"] == 3 and summary["captions"] == 8  # read back
    assert summary["distinct_objects"] == 4
    overwrite = WordParser()
    parse_inputs(inputs, overwrite, out, overwrite=True, progress=False)
    assert len(overwrite.seen) == 8


def test_interrupted_run_keeps_finished_inputs_only(tmp_path, inputs):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        parse_inputs(inputs, WordParser(crash_on="x3"), out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "parse-config.json",
        "train-000000.objects.jsonl",
    ]
    resumed = WordParser()
    parse_inputs(inputs, resumed, out, progress=False)
    assert resumed.seen == ["x3", "x1 y", "x9", "", "plain"]  # the first shard is not redone


def test_unparsed_caption_means_no_sidecar_for_that_input(tmp_path, inputs):
    out = tmp_path / "out"
    summary = parse_inputs(inputs, WordParser(fail_on="none here"), out, progress=False)
    assert not (out / "train-000000.objects.jsonl").exists()
    assert (out / "train-000001.objects.jsonl").exists()
    assert summary["inputs_failed"] == 1 and summary["failed_captions"] == 1
    summary = parse_inputs(inputs, WordParser(), out, progress=False)
    assert summary["inputs_parsed"] == 1 and summary["inputs_skipped"] == 2


def test_another_parser_is_refused_in_the_same_directory(tmp_path, inputs):
    out = tmp_path / "out"
    parse_inputs(inputs[:1], WordParser(), out, progress=False)

    class Other(WordParser):
        def identity(self):
            return {"parser": "other"}

    with pytest.raises(ValueError, match="(?s)another parser configuration.*--overwrite"):
        parse_inputs(inputs[:1], Other(), out, progress=False)
    parse_inputs(inputs[:1], Other(), out, overwrite=True, progress=False)


def test_inputs_with_the_same_name_are_refused(tmp_path, inputs):
    other = tmp_path / "elsewhere" / "train-000000.tar"
    other.parent.mkdir()
    write_shard(other, {"k": "x"})
    with pytest.raises(ValueError, match="would both write"):
        parse_inputs([inputs[0], other], WordParser(), tmp_path / "out", progress=False)


def test_cli_parse_vocab_then_stats(tmp_path, inputs, capsys):
    vocab = tmp_path / "vocabulary.json"
    vocab.write_text(json.dumps({"x one": ["x1"], "x two": ["x2", "x3"]}))
    out = tmp_path / "objects"
    argv = ["parse", str(inputs[0].parent), "--vocabulary", str(vocab), "--out", str(out)]
    assert cli.main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "captions: 5" in printed and "distinct objects: 2" in printed
    assert read_sidecar(out / "train-000001.objects.jsonl") == {"k3": ["x two"], "k4": ["x one"]}
    assert json.loads((out / "parse-config.json").read_text())["parser"] == "vocab"
    vocabulary = tmp_path / "object-vocabulary.json"
    plot = tmp_path / "freq.png"
    argv = ["stats", str(out), "--out", str(vocabulary), "--name", "toy", "--plot", str(plot)]
    assert cli.main(argv) == 0
    assert "| toy | 5 | 2 | 0 |" in capsys.readouterr().out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    counts = {o["name"]: o["count"] for o in json.loads(vocabulary.read_text())["objects"]}
    assert counts == {"x one": 3, "x two": 2}


def test_cli_reports_bad_input_clearly(tmp_path, capsys):
    assert cli.main(["parse", str(tmp_path / "nope.tar"), "--parser", "vocab", "--out", "o"]) == 2
    assert "nope.tar does not exist" in capsys.readouterr().err
    (tmp_path / "c.txt").write_text("x\n")
    assert cli.main(["parse", str(tmp_path / "c.txt"), "--parser", "vocab", "--out", "o"]) == 2
    assert "--parser vocab needs --vocabulary" in capsys.readouterr().err
