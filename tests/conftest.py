"""Shared fixtures (a third-party plugin installed through a real entry point, the embedded
data and what each plugin trains it with, trainer commands) and the CI rule on skips."""

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alignclip_plugins.model_configs import model_arg

HERE = Path(__file__).resolve().parent


def install_probe_plugin(root: Path) -> Path:
    """Make ``root`` an importable location holding the test-only ``probe`` plugin.

    ``probe_plugin.py`` plus a ``.dist-info`` whose entry_points.txt registers it in the
    ``open_clip_train.plugins`` group, exactly as a pip-installed third-party package would.
    Also a dotted-path plugin package ``probe_pkg.noaccum`` (no entry point).
    """
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "plugins" / "probe_plugin.py", root / "probe_plugin.py")
    info = root / "probe_plugin-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: probe-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[open_clip_train.plugins]\nprobe = probe_plugin\n")
    pkg = root / "probe_pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "noaccum.py").write_text(
        "from open_clip.loss import ClipLoss\n"
        "from alignclip_plugins.hookspecs import hookimpl\n\n"
        "@hookimpl\n"
        "def octrain_register_losses(registry):\n"
        "    registry.register('plain-clip', lambda args: ClipLoss(), supports_accum=False)\n"
    )
    (pkg / "needs.py").write_text(  # builds on the probe plugin
        "from open_clip.loss import ClipLoss\n"
        "from alignclip_plugins.hookspecs import hookimpl\n\n"
        "REQUIRES = ('probe',)\n\n"
        "@hookimpl\n"
        "def octrain_register_losses(registry):\n"
        "    registry.register('needs-clip', lambda args: ClipLoss())\n"
    )
    (pkg / "cycle_a.py").write_text("REQUIRES = ('probe_pkg.cycle_b',)\n")
    (pkg / "cycle_b.py").write_text("REQUIRES = ('probe_pkg.cycle_a',)\n")
    return root


@pytest.fixture
def probe_plugin_path(tmp_path, monkeypatch) -> Path:
    """The probe plugin installed on sys.path for this test (and PYTHONPATH for subprocesses)."""
    root = install_probe_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    return root


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """A small embedded dataset: 256 training pairs in 4 shards, 64 retrieval pairs."""
    from alignclip_plugins.synthetic import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth")
    generate(
        out,
        SynthConfig(
            seed=0, train_samples=256, shard_size=64, retrieval_samples=64, zeroshot_per_class=2
        ),
    )
    return out


@pytest.fixture(scope="session")
def synth_objects(synth_data, tmp_path_factory) -> dict[str, Path]:
    """AlignCLIP inputs for ``synth_data``: object sidecars (``--parser vocab``), the stats
    vocabulary and the generator's descriptions, as the demo prepares them."""
    from alignclip_plugins.objects.captions import expand_inputs
    from alignclip_plugins.objects.run import parse_inputs
    from alignclip_plugins.objects.stats import build_vocabulary, count_objects, write_vocabulary
    from alignclip_plugins.objects.vocabulary import VocabParser

    root = tmp_path_factory.mktemp("synth-objects")
    shards = expand_inputs([str(synth_data / "train")])
    parse_inputs(
        shards, VocabParser(synth_data / "vocabulary.json"), root / "objects", False, False
    )
    write_vocabulary(root / "vocabulary.json", build_vocabulary(count_objects([root / "objects"])))
    return {
        "objects": root / "objects",
        "vocabulary": root / "vocabulary.json",
        "descriptions": synth_data / "descriptions.json",
    }


@pytest.fixture
def no_proxy(monkeypatch):
    """Clear the proxy variables, so that HTTP clients reach servers on 127.0.0.1 directly."""
    for name in (
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def multicaption_data(tmp_path_factory) -> dict[str, Path]:
    """Multi-caption shards as a user makes them: a Kaggle-layout folder (24 rendered images,
    five captions each, ``captions.txt``, ``nouns.txt``) converted by ``alignclip captions
    convert`` (train: 2 shards of 8, val: 8), their per-caption object sidecars (vocab parser
    with the noun list) and the vocabulary."""
    from alignclip_plugins.captions.convert import ImageOptions, convert, plan_splits
    from alignclip_plugins.captions.layout import split_shards
    from alignclip_plugins.captions.sources import read_annotations
    from alignclip_plugins.objects.run import parse_inputs
    from alignclip_plugins.objects.stats import build_vocabulary, count_objects, write_vocabulary
    from alignclip_plugins.objects.vocabulary import VocabParser
    from alignclip_plugins.recipes.standins import kaggle_captions_standin

    root = tmp_path_factory.mktemp("multicaption")
    kaggle = kaggle_captions_standin(root / "kaggle", images=24, image_size=64)
    plan = plan_splits(read_annotations(kaggle / "captions.txt"), kaggle / "Images", val_size=8)
    convert(plan, root / "shards", ImageOptions(), shard_size=8, progress=False)
    train = split_shards(root / "shards", "train")
    parse_inputs(train, VocabParser(kaggle / "nouns.txt"), root / "objects", progress=False)
    write_vocabulary(root / "vocabulary.json", build_vocabulary(count_objects([root / "objects"])))
    return {
        "kaggle": kaggle,
        "shards": root / "shards",
        "train": root / "shards" / "train-{000000..000001}.tar",
        "val": root / "shards" / "val-000000.tar",
        "objects": root / "objects",
        "vocabulary": root / "vocabulary.json",
    }


@pytest.fixture(scope="session")
def synth_rois(synth_data, tmp_path_factory) -> Path:
    """Oracle ROI sidecars (``alignclip rois oracle``) of ``synth_data``'s training shards."""
    from alignclip_plugins.rois.oracle import write_oracle_rois

    out = tmp_path_factory.mktemp("synth-rois")
    write_oracle_rois(synth_data, out=out, splits=("train",), progress=False)
    return out


@pytest.fixture(scope="session")
def plugin_data_options(synth_objects, synth_rois) -> dict[str, list[str]]:
    """The data options each built-in plugin trains ``synth_data`` with."""
    return {
        "label_smoothing": [],
        "alignclip": ["--alignclip-objects", str(synth_objects["objects"]),
                      "--alignclip-vocabulary", str(synth_objects["vocabulary"])],
        "softclip": ["--softclip-rois", str(synth_rois)],
    }  # fmt: skip


def trainer_command(data: Path, logs: Path, name: str, *extra: str, samples: int = 64,
                    batch_size: int = 32, epochs: int = 1, precision: str = "fp32",
                    launcher: tuple[str, ...] = (sys.executable,)) -> list[str]:  # fmt: skip
    """``open_clip_train.main`` (through ``tests/support/run_trainer.py``) on ``data``'s
    training shards: ``samples`` samples an epoch, 1 loader worker, seed 3, every step logged."""
    pattern = json.loads((data / "manifest.json").read_text())["splits"]["train"]["pattern"]
    return [
        *launcher, str(HERE / "support" / "run_trainer.py"), "--model", model_arg(),
        "--train-data", str(data / pattern), "--train-num-samples", str(samples),
        "--dataset-type", "webdataset", "--batch-size", str(batch_size), "--epochs", str(epochs),
        "--lr", "1e-3", "--warmup", "2", "--workers", "1", "--precision", precision,
        "--seed", "3", "--log-every-n-steps", "1", "--logs", str(logs), "--name", name,
        "--report-to", "", *extra,
    ]  # fmt: skip


def run_command(cmd: list[str], threads: int = 2, **env: str) -> subprocess.CompletedProcess:
    """Run a trainer command; fails the test with its output's tail when it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **env}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="session")
def trainer():
    """``(trainer_command, run_command)`` for tests in any directory."""
    return trainer_command, run_command


# ---- in CI, a skip is a failure unless allowed -------------------------------------------

ALLOWED_SKIPS = HERE / "ci_allowed_skips.txt"


def in_ci() -> bool:
    """Whether this is a CI run (``CI=true``, set by the CI service; tox passes it through)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def allowed_skips(path: Path = ALLOWED_SKIPS) -> dict[str, str]:
    """``{node id pattern: reason}`` from the allow-list (``PATTERN | REASON`` lines)."""
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, sep, reason = (part.strip() for part in line.partition("|"))
        if not sep or not pattern or not reason:
            raise ValueError(f"{path}:{n}: expected 'NODE_ID_PATTERN | REASON', got {line!r}")
        out[pattern] = reason
    return out


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_unallowed_skip(report) -> None:
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    if any(fnmatch.fnmatchcase(report.nodeid, p) for p in allowed_skips()):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped in CI ({_skip_reason(report)}): a skip in CI is a failure. Make the test "
        f"run on the CI machine, or list it with the reason it cannot in {ALLOWED_SKIPS.name}"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_unallowed_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_unallowed_skip(outcome.get_result())  # a module-level importorskip
