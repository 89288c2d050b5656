"""The example plugin of docs/writing-a-soft-label-plugin.md runs and passes the kit."""

import importlib
import re
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-a-soft-label-plugin.md"


def extract(doc: str) -> dict[str, str]:
    """``{relative path: code}`` for every python block starting with ``# file: PATH``."""
    files = {}
    for block in re.findall(r"```python\n(.*?)```", doc, flags=re.S):
        first, _, rest = block.partition("\n")
        match = re.fullmatch(r"# file: (\S+)", first.strip())
        assert match, f"python block without a '# file:' line: {first!r}"
        files[match.group(1)] = rest
    return files


@pytest.fixture
def example(tmp_path, monkeypatch):
    files = extract(DOC.read_text())
    assert {"same_label/losses.py", "same_label/plugin.py", "test_same_label.py"} <= set(files)
    for rel, code in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
    (tmp_path / "same_label" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [
        m
        for m in sys.modules
        if m == "same_label" or m.startswith("same_label.") or m.startswith("test_same_label")
    ]:
        del sys.modules[name]


def test_example_plugin_registers_its_loss(example):
    from alignclip_plugins.registry import LossRegistry

    plugin = importlib.import_module("same_label.plugin")
    reg = LossRegistry()
    plugin.octrain_register_losses(reg)
    assert reg.names() == ["same-label"] and reg.get("same-label").supports_accum


def test_example_tests_pass(example):
    tests = importlib.import_module("test_same_label")
    names = [n for n in dir(tests) if n.startswith("test_")]
    assert len(names) == 3
    for name in names:
        getattr(tests, name)()


def test_example_on_the_row_block_engine_passes(example):
    """Section 5: the same target on the public engine API equals the direct loss."""
    tests = importlib.import_module("test_same_label_engine")
    names = [n for n in dir(tests) if n.startswith("test_")]
    assert len(names) == 2
    for name in names:
        getattr(tests, name)()


def test_example_counts_per_run_in_the_stash(example, monkeypatch):
    """Section 3: the counting plugin's state is per run, even with one cached host."""
    import torch
    from open_clip_train.params import parse_args

    from alignclip_plugins import host

    monkeypatch.setattr(host, "_HOSTS", {})  # the example's modules live in this test only
    first, second = (parse_args(["--plugins", "same_label.counting"]) for _ in range(2))
    assert host.host_for(first) is host.host_for(second)  # one host, a stash per run
    batch = {"cls": torch.tensor([0, 1, 0])}
    for _ in range(2):
        assert host.forward_features(None, batch, {}, first)["labels"] is batch["cls"]
    host.forward_features(None, batch, {}, second)
    assert host.evaluate(None, {}, 1, second, tokenizer=None)["same_label_samples"] == 3
    assert host.evaluate(None, {}, 1, first, tokenizer=None)["same_label_samples"] == 6
    assert host.evaluate(None, {}, 2, first, tokenizer=None)["same_label_samples"] == 0
