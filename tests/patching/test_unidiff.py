import pytest

from alignclip_plugins.patching import unidiff

SOURCE = "a\nb\nc\nd\ne\nf\n"
DIFF = """header text is ignored
--- a/pkg/mod.py
+++ b/pkg/mod.py
@@ -2,3 +2,4 @@
 b
-c
+C
+c2
 d
"""


def test_parse_and_apply():
    patches = unidiff.parse(DIFF)
    assert list(patches) == ["pkg/mod.py"]
    assert unidiff.apply(SOURCE, patches["pkg/mod.py"]) == "a\nb\nC\nc2\nd\ne\nf\n"


def test_apply_finds_a_shifted_hunk():
    shifted = "x\ny\n" + SOURCE
    out = unidiff.apply(shifted, unidiff.parse(DIFF)["pkg/mod.py"])
    assert out == "x\ny\na\nb\nC\nc2\nd\ne\nf\n"


def test_two_hunks_track_the_offset():
    diff = """--- a/m.py
+++ b/m.py
@@ -1,2 +1,3 @@
 a
+a2
 b
@@ -5,2 +6,2 @@
 e
-f
+F
"""
    assert unidiff.apply(SOURCE, unidiff.parse(diff)["m.py"]) == "a\na2\nb\nc\nd\ne\nF\n"


def test_mismatch_raises_naming_file_and_hunk():
    with pytest.raises(unidiff.PatchError, match=r"pkg/mod.py: hunk @@ -2,3"):
        unidiff.apply("a\nb\nX\nd\n", unidiff.parse(DIFF)["pkg/mod.py"])


def test_ambiguous_context_is_not_guessed():
    diff = "--- a/m.py\n+++ b/m.py\n@@ -9,1 +9,1 @@\n-x\n+y\n"
    with pytest.raises(unidiff.PatchError):
        unidiff.apply("x\nq\nx\n", unidiff.parse(diff)["m.py"])


def test_shipped_patch_applies_to_installed_upstream():
    import importlib.util
    from pathlib import Path

    from alignclip_plugins.patching import importer

    root = Path(importlib.util.find_spec("open_clip").origin).parent.parent
    patches = importer.file_patches()
    assert set(patches) == {
        f"open_clip_train/{m}.py" for m in ("data", "main", "params", "train", "zero_shot")
    }
    for relpath, patch in patches.items():
        source = (root / relpath).read_text()
        patched = unidiff.apply(source, patch)
        assert "plugin_host" in patched and "plugin_host" not in source
        compile(patched, relpath, "exec")
