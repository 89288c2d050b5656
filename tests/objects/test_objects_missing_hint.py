"""The hint for training shards without an object sidecar repeats how the others were made."""

from __future__ import annotations

import json

import pytest

from alignclip_plugins.objects.run import CONFIG_FILE, parse_inputs
from alignclip_plugins.objects.sample_objects import missing_sidecars_message
from alignclip_plugins.objects.vocabulary import VocabParser


def test_vocab_sidecars_get_the_vocab_command(tmp_path):
    # the hint printed the pos command even for sidecars made with --parser vocab
    text = tmp_path / "captions.txt"
    text.write_text("a red circle\na blue star\n")
    vocabulary = tmp_path / "vocabulary.json"
    vocabulary.write_text(json.dumps({"circle": ["circle"], "star": ["star"]}))
    out = tmp_path / "objects"
    parse_inputs([text], VocabParser(vocabulary), out, progress=False)
    sha = json.loads((out / CONFIG_FILE).read_text())["vocabulary_sha256"]
    message = missing_sidecars_message(["/d/train-000009.tar"], [out], ["/d/train-{0..9}.tar"])
    assert (
        f"  alignclip objects parse '/d/train-{{0..9}}.tar' --parser vocab --vocabulary "
        f"VOCABULARY_FILE --out {out}\n" in message
    )
    assert f"sha256 {sha[:12]}" in message and str(out / CONFIG_FILE) in message
    assert "--alignclip-allow-missing-sidecars" in message


@pytest.mark.parametrize(
    "config, options, note",
    [
        (
            {"parser": "pos", "stanza": "1.10", "depparse": False, "compounds": []},
            " --parser pos",
            "",
        ),
        (
            {"parser": "pos", "stanza": "1.10", "depparse": True, "compounds": ["ice cream"]},
            " --parser pos --depparse --compounds FILE",
            "ice cream",
        ),
        (
            {"parser": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "prompt": "..."},
            " --parser llm --llm-url URL --llm-model Qwen/Qwen2.5-7B-Instruct",
            "URL: the chat-completions endpoint",
        ),
    ],
)
def test_every_parser_gets_its_own_command(tmp_path, config, options, note):
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    message = missing_sidecars_message(["/d/s9.tar"], [tmp_path])
    assert f"alignclip objects parse '/d/s9.tar'{options} --out {tmp_path}\n" in message
    assert note in message


def test_without_a_parse_config_the_default_command(tmp_path):
    message = missing_sidecars_message(["/d/s9.tar"], [tmp_path])
    assert f"alignclip objects parse '/d/s9.tar' --out {tmp_path}\n" in message
    assert "(add --parser vocab --vocabulary FILE for a fixed vocabulary)" in message
