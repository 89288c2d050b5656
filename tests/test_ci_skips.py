"""The CI rule of tests/conftest.py: with CI=true a skip fails unless allow-listed."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

TESTS = """
import pytest

pytest.importorskip("no_such_module_anywhere")
"""
RUN_TESTS = """
import pytest

@pytest.mark.skipif(True, reason="needs the moon")
def test_skipped():
    pass

def test_allowed():
    pytest.skip("needs a GPU")

@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False

def test_passes():
    pass
"""


def _pytest(root: Path, ci: str | None, *paths: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *paths],
        capture_output=True, text=True, env=env, cwd=root, timeout=300,
    )  # fmt: skip


def test_a_skip_fails_in_ci_unless_listed_with_its_reason(tmp_path):
    root = tmp_path / "suite"
    root.mkdir()
    shutil.copy(HERE / "conftest.py", root / "conftest.py")
    (root / "ci_allowed_skips.txt").write_text(
        "# comment\ntest_run.py::test_allowed | the CI machine has no GPU\n"
    )
    (root / "test_run.py").write_text(RUN_TESTS)
    (root / "test_collect.py").write_text(TESTS)

    local = _pytest(root, None)
    assert local.returncode == 0, local.stdout
    assert "3 skipped" in local.stdout and "1 xfailed" in local.stdout

    ci = _pytest(root, "true", "test_run.py")
    assert ci.returncode == 1, ci.stdout
    out = ci.stdout
    assert "skipped in CI (Skipped: needs the moon): a skip in CI is a failure" in out
    assert "needs a GPU" in out and "SKIPPED" in out  # the listed one stays a skip
    assert "1 xfailed" in out and "1 passed" in out
    ci = _pytest(root, "true", "test_collect.py")  # a module-level skip fails collection
    assert ci.returncode != 0 and "skipped in CI (Skipped: could not import" in ci.stdout

    (root / "ci_allowed_skips.txt").write_text("test_run.py::test_*\n")  # no reason
    assert "expected 'NODE_ID_PATTERN | REASON'" in _pytest(root, "true", "test_run.py").stdout
