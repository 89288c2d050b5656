"""The import hook: patched in memory, never on disk; clear errors on a wrong upstream."""

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alignclip_plugins.patching import importer

UPSTREAM = Path(importlib.util.find_spec("open_clip").origin).parent.parent / "open_clip_train"


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def _fake_upstream(tmp_path: Path, version: str, edit=None) -> Path:
    """A copy of open_clip_train with a dist-info claiming ``version`` (first on the path)."""
    shutil.copytree(UPSTREAM, tmp_path / "open_clip_train", ignore=shutil.ignore_patterns("*.pyc"))
    info = tmp_path / f"open_clip_torch-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: open_clip_torch\nVersion: {version}\n"
    )
    if edit:
        edit(tmp_path / "open_clip_train")
    return tmp_path


def test_hook_is_installed_at_startup_by_the_pth_file():
    out = _python(
        "import sys; print(any(type(f).__name__ == 'PatchFinder' for f in sys.meta_path))"
    )
    assert out.stdout.strip() == "True", out.stderr


def test_modules_are_patched_in_memory_and_files_untouched():
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in UPSTREAM.glob("*.py")}
    out = _python(
        "import inspect, open_clip_train.main as m, open_clip_train.train as t\n"
        "print(type(m.__loader__).__name__, 'plugin_host' in inspect.getsource(t))"
    )
    assert out.stdout.split() == ["PatchedSourceLoader", "True"], out.stderr
    assert digest == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in UPSTREAM.glob("*.py")}


def test_disable_env_gives_plain_upstream():
    out = _python(
        "import open_clip_train.params as p; print(hasattr(p, 'plugin_host'))",
        **{importer.DISABLE_ENV: "1"},
    )
    assert out.stdout.strip() == "False", out.stderr


def test_wrong_version_fails_clearly(tmp_path):
    root = _fake_upstream(tmp_path, "3.2.0")
    out = _python("import open_clip_train.main", PYTHONPATH=str(root))
    assert out.returncode != 0
    assert "UnsupportedUpstreamError" in out.stderr
    assert "open_clip_torch 3.2.0 is installed" in out.stderr
    assert "open_clip_torch 3.3.0" in out.stderr and "pip install" in out.stderr


def test_modified_source_fails_clearly_naming_the_hunk(tmp_path):
    def edit(pkg: Path):
        params = pkg / "params.py"
        params.write_text(
            params.read_text().replace(
                "    args = parser.parse_args(args)\n",
                "    args = parser.parse_args(args)  # local edit\n",
            )
        )

    root = _fake_upstream(tmp_path, "3.3.0", edit)
    out = _python("import open_clip_train.params", PYTHONPATH=str(root))
    assert out.returncode != 0
    assert "open_clip_train/params.py: hunk" in out.stderr and "does not apply" in out.stderr


def test_unpatched_modules_load_normally():
    spec = importer.PatchFinder().find_spec("open_clip_train.logger")
    assert spec is None  # left to the normal finders


@pytest.mark.parametrize("name", ["open_clip", "open_clip_trainx.main", "json"])
def test_finder_ignores_other_modules(name):
    assert importer.PatchFinder().find_spec(name) is None
