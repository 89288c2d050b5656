"""``python -m open_clip_train.main --plugins alignclip`` on generated shards (CPU, tiny model).

Runs go two at a time (one thread each) to keep the wall time down on two cores.
"""

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from alignclip_plugins.model_configs import model_arg
from alignclip_plugins.patching.importer import DISABLE_ENV

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
LOSS = re.compile(r"(\w+): ([-\d.e+]+) \(")
DOMAINS = re.compile(r"text domains, epoch (\d+): (\d+) texts: (\d+) captions, (\d+) prompts, "
                     r"(\d+) descriptions")  # fmt: skip
THREE = ("0.4", "0.3", "0.3")


def command(data, logs: Path, name: str, *extra: str, epochs: int = 1) -> list[str]:
    manifest = json.loads((data / "manifest.json").read_text())
    split = manifest["splits"]["train"]
    return [
        sys.executable, str(HERE / "support" / "run_trainer.py"),
        "--model", model_arg(), "--train-data", str(data / split["pattern"]),
        "--train-num-samples", str(split["num_samples"]), "--dataset-type", "webdataset",
        "--batch-size", "32", "--epochs", str(epochs), "--lr", "1e-3", "--warmup", "2",
        "--workers", "1", "--precision", "fp32", "--seed", "3", "--log-every-n-steps", "1",
        "--logs", str(logs), "--name", name, "--report-to", "", *extra,
    ]  # fmt: skip


def run_all(*jobs: tuple[list[str], bool]) -> list[subprocess.CompletedProcess]:
    """Run the commands concurrently; ``(cmd, unpatched)`` each."""
    procs = []
    for cmd, unpatched in jobs:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if unpatched:
            env[DISABLE_ENV] = "1"
        procs.append(
            subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
        )
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def succeeded(*results: subprocess.CompletedProcess) -> None:
    for r in results:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def logged_losses(run: Path) -> list[dict[str, float]]:
    rows = [
        {k: float(v) for k, v in LOSS.findall(line.split("Logit Scale")[1])}
        for line in (run / "out.log").read_text().splitlines()
        if "Train Epoch" in line
    ]
    assert rows, f"no training lines in {run / 'out.log'}"
    return rows


def domain_counts(run: Path) -> dict[int, tuple[int, ...]]:
    text = (run / "out.log").read_text()
    return {int(m[0]): tuple(int(x) for x in m[1:]) for m in DOMAINS.findall(text)}


def imagenet_folder(root: Path) -> Path:
    for i, folder in enumerate(("n01440764", "n01443537")):
        (root / folder).mkdir(parents=True)
        Image.new("RGB", (64, 64), (200, 40 * i, 30)).save(root / folder / "0.png")
    return root


@pytest.fixture(scope="module")
def runs(synth_data, synth_objects, tmp_path_factory):
    from open_clip import IMAGENET_CLASSNAMES

    root = tmp_path_factory.mktemp("alignclip-e2e")
    zs_descriptions = root / "imagenet-descriptions.json"
    zs_descriptions.write_text(
        json.dumps({c: [f"a photo of the {c}."] for c in IMAGENET_CLASSNAMES})
    )
    objects = ["--plugins", "alignclip", "--alignclip-objects", str(synth_objects["objects"]),
               "--alignclip-vocabulary", str(synth_objects["vocabulary"])]  # fmt: skip
    three = ["--alignclip-domains", ",".join(THREE),
             "--alignclip-descriptions", str(synth_objects["descriptions"])]  # fmt: skip
    zeroshot = ["--imagenet-val", str(imagenet_folder(root / "imagenet")),
                "--alignclip-zeroshot-prototypes", "descriptions",
                "--alignclip-zeroshot-descriptions", str(zs_descriptions)]  # fmt: skip
    logs = root / "logs"
    three_b0 = [*objects, *three, "--oiou-beta", "0"]
    succeeded(*run_all(
        (command(synth_data, logs, "upstream"), True),
        (command(synth_data, logs, "captions-b0", *objects, "--oiou-beta", "0"), False),
        (command(synth_data, logs, "three-b0", *three_b0), False),
    ))  # fmt: skip
    partial = root / "partial-objects"
    partial.mkdir()
    for p in sorted(synth_objects["objects"].glob("*.objects.jsonl"))[:-1]:
        (partial / p.name).write_bytes(p.read_bytes())
    *wave, missing = run_all(
        (command(synth_data, logs, "three-b05", *objects, *three, *zeroshot), False),
        (command(synth_data, logs, "three-b0", *three_b0, "--resume", "latest", epochs=2), False),
        (command(synth_data, logs, "missing", "--plugins", "alignclip", "--alignclip-objects",
                 str(partial), "--alignclip-vocabulary", str(synth_objects["vocabulary"])), False),
    )  # fmt: skip
    succeeded(*wave)
    return {"logs": logs, "objects": objects, "three": three, "missing": missing}


def test_plain_captions_at_beta_zero_are_exactly_hard_clip(runs):
    upstream = logged_losses(runs["logs"] / "upstream")
    plugin = logged_losses(runs["logs"] / "captions-b0")
    assert len(upstream) == len(plugin) == 8
    assert [r["Object_iou_loss"] for r in plugin] == pytest.approx(
        [r["Loss"] for r in upstream], rel=1e-5
    )


def test_the_loss_receives_the_object_ids(runs):
    """Same model, batch and texts at step 0: the loss differs from CLIP (β = 0) only if
    the object sets reached it (with no ids every off-diagonal IoU would be 0)."""
    clip = logged_losses(runs["logs"] / "three-b0")
    oiou = logged_losses(runs["logs"] / "three-b05")
    captions = logged_losses(runs["logs"] / "captions-b0")
    assert clip[0]["Object_iou_loss"] != pytest.approx(captions[0]["Object_iou_loss"], rel=1e-4)
    assert oiou[0]["Object_iou_loss"] != pytest.approx(clip[0]["Object_iou_loss"], rel=1e-4)
    params = (runs["logs"] / "three-b05" / "params.txt").read_text()
    assert "loss: object-iou" in params and "oiou_beta: 0.5" in params


def test_three_domains_are_drawn_as_configured(runs, synth_data, synth_objects):
    counts = domain_counts(runs["logs"] / "three-b0")
    assert counts[0] == (256, *expected_domains(synth_data, synth_objects, runs, epoch=0))
    assert domain_counts(runs["logs"] / "captions-b0") == {}  # 1,0,0: nothing drawn


def test_zero_shot_eval_uses_description_prototypes(runs):
    run = runs["logs"] / "three-b05"
    assert "alignclip zero-shot prototypes from descriptions: 1000 classes, 1000 prompts" in (
        (run / "out.log").read_text()
    )
    results = json.loads((run / "checkpoints" / "results.jsonl").read_text().splitlines()[-1])
    assert "imagenet-zeroshot-val-top1" in results


def test_resume_continues_with_the_next_epochs_draws(runs, synth_data, synth_objects):
    run = runs["logs"] / "three-b0"
    log = (run / "out.log").read_text()
    assert "resuming checkpoint" in log and (run / "checkpoints" / "epoch_2.pt").is_file()
    assert "Train Epoch: 1" in log.split("resuming checkpoint")[1]
    counts = domain_counts(run)
    assert counts[1] == (256, *expected_domains(synth_data, synth_objects, runs, epoch=1))
    assert counts[1] != counts[0]


def test_missing_sidecar_stops_the_run_at_start_up(runs):
    result = runs["missing"]
    assert result.returncode == 2
    assert "1 training shard(s) have no object sidecar" in result.stderr
    assert "train-000003.tar" in result.stderr and "alignclip objects parse" in result.stderr
    assert not (runs["logs"] / "missing").exists()  # stopped before any run directory


def expected_domains(synth_data, synth_objects, runs, epoch: int) -> tuple[int, int, int]:
    """The domain counts of one epoch over all 256 samples, predicted in-process."""
    from open_clip_train.params import parse_args

    from alignclip_plugins.objects.sidecar import iter_sidecar
    from alignclip_plugins.plugins.alignclip.stages import training_stages

    args = parse_args(command(synth_data, runs["logs"], "x", *runs["objects"], *runs["three"])[2:])

    class Epoch:
        def get_value(self):
            return epoch

    samples = [
        {"__url__": str(synth_data / "train" / f"{p.name.split('.')[0]}.tar"), "__key__": key,
         "text": ""}
        for p in sorted(synth_objects["objects"].glob("*.objects.jsonl"))
        for key, _ in iter_sidecar(p)
    ]  # fmt: skip
    attach, domains = training_stages(args, Epoch())
    drawn = Counter(
        domains.domains.draw("", s["image_objects"], s["__key__"], epoch).domain
        for s in attach(samples)
    )
    assert sum(drawn.values()) == 256
    return drawn["caption"], drawn["prompt"], drawn["description"]
