"""Rendering measured results: where numbers are read from, seeds, missing runs, figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from alignclip_plugins.tables import cli
from alignclip_plugins.tables.figures import collect
from alignclip_plugins.tables.markdown import render_table
from alignclip_plugins.tables.results import ResultIndex
from alignclip_plugins.tables.spec import load_specs

SPECS = load_specs()


def fake_run(
    logs: Path,
    name: str,
    *,
    table: str,
    row: str,
    model: str = "RN50",
    data: str = "cc3m",
    seed: int = 0,
    epochs: int = 8,
    evals: dict | None = None,
    trainer: dict | None = None,
    role_dataset: str | None = None,
    set_: dict | None = None,
) -> Path:
    """A run directory as alignclip-launch and alignclip eval leave it."""
    run = logs / name
    (run / "checkpoints").mkdir(parents=True)
    config = {"seed": seed, "schedule": {"epochs": epochs}, "data": {"name": data}, **(set_ or {})}
    (run / "recipe.yaml").write_text(yaml.safe_dump({"name": name, "config": config}))
    uses = {"table": table, "row": row, "model": model, "data": data, "seed": seed, "evals": {}}
    for (task, dataset, role), metrics in (evals or {}).items():
        uses["evals"][role] = {"task": task, "dataset": role_dataset or dataset}
        path = run / "evals" / f"{task}-{role_dataset or dataset}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            json.dumps(
                {"task": task, "dataset": role_dataset or dataset, "epoch": epochs, **metrics}
            )
        )
    if trainer is not None:
        uses["evals"]["imagenet"] = {
            "task": "zeroshot",
            "dataset": "imagenet",
            "during_training": True,
        }
        rows = [
            {"epoch": epochs - 1, "imagenet-zeroshot-val-top1": 0.01},
            {"epoch": epochs, **trainer},
        ]
        (run / "checkpoints" / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (run / "recipe-uses.jsonl").write_text(json.dumps(uses) + "\n")
    return run


def zeroshot(top1, top5=None):
    metrics = {"top1": top1} if top5 is None else {"top1": top1, "top5": top5}
    return {("zeroshot", "imagenet", "imagenet"): {"metrics": metrics}}


def test_table_cells_from_evals_and_results_jsonl_with_seeds_and_missing(tmp_path):
    t6 = "softclip/table6"
    fake_run(tmp_path, "a", table=t6, row="clip", evals=zeroshot(0.170))
    # ImageNet read from upstream's results.jsonl (final epoch, not the earlier one)
    fake_run(tmp_path, "b", table=t6, row="softclip", trainer={"imagenet-zeroshot-val-top1": 0.221})
    for seed, value in ((0, 0.180), (1, 0.190), (2, 0.200)):
        fake_run(
            tmp_path, f"ls{seed}", table=t6, row="label_smoothing", seed=seed, evals=zeroshot(value)
        )
    # an evaluation of an earlier checkpoint does not count
    fake_run(tmp_path, "c", table=t6, row="soft", epochs=8, evals={
        ("zeroshot", "imagenet", "imagenet"): {"metrics": {"top1": 0.5}, "epoch": 3}})  # fmt: skip
    rendered = render_table(SPECS[t6], ResultIndex(tmp_path), script="recipes/softclip/table6.sh")
    md = rendered.markdown
    assert "| CLIP (Baseline) | 16.5 → 17.0 (+0.5) | 10.7 → missing |" in md
    assert "| + Symmetric KL (SoftCLIP) | 22.1 → 22.1 (+0.0) |" in md
    assert "| + Label Smoothing | 18.3 → 19.0 ± 1.0 (n=3) (+0.7) |" in md
    assert "| CLIP + Soft Loss | 20.5 → missing |" in md
    assert "Missing (run `recipes/softclip/table6.sh`): row `clip` (ViT-B-32, cc3m)" in md
    assert "row `soft` (RN50, cc3m): imagenet.top1" in md
    assert (rendered.cells, rendered.measured) == (10, 3)


def test_computed_average_external_rows_and_substitutions(tmp_path):
    t2 = "softclip/table2"
    names = ("pets", "dtd", "food101", "flowers102", "sun397", "caltech101")
    evals = {("zeroshot", n, n): {"metrics": {"top1": 0.1 * (i + 1)}} for i, n in enumerate(names)}
    fake_run(tmp_path, "r", table=t2, row="clip", data="yfcc15m", evals=evals, epochs=32)
    md = render_table(SPECS[t2], ResultIndex(tmp_path)).markdown
    assert "| CLIP | ResNet50 | 33.3 → 10.0 (-23.3) | 22.8 → 20.0 (-2.8) |" in md
    assert "| 45.8 → 35.0 (-10.8) |" in md  # AVG of the six measured values

    t5 = "softclip/table5"
    md = render_table(SPECS[t5], ResultIndex(tmp_path)).markdown
    assert "| DeCLIP | ResNet50 | 58.7 → n/a |" in md and "n/a: DeCLIP ResNet50" in md

    # smoke scale: looked up with tiny / synthetic, measured on stand-ins, and said so
    fake_run(tmp_path, "s", table="softclip/table4", row="clip", model="tiny", data="synthetic",
             epochs=1, evals={("copy-detection", "synthetic_copydays", "copydays"):
                              {"metrics": {"mAP": 0.5}}})  # fmt: skip
    md = render_table(
        SPECS["softclip/table4"], ResultIndex(tmp_path), model="tiny", data="synthetic"
    ).markdown
    assert "| CLIP | YFCC15M | ResNet50 | 74.9 → 50.0 (-24.9) |" in md
    assert "`copydays` was measured on `synthetic_copydays`" in md
    assert "model=tiny, data=synthetic in place of the paper's" in md


def test_dataset_statistics_table(tmp_path):
    run = fake_run(tmp_path, "st", table="alignclip/supp_table1", row="stats", data="cc3m")
    (run / "evals").mkdir()
    (run / "evals" / "dataset-stats-cc3m.json").write_text(json.dumps({
        "task": "dataset-stats", "dataset": "cc3m", "epoch": None,
        "metrics": {"pairs": 2905954.0, "parsed_objects": 110000.0, "tail_objects": 33000.0}}))  # fmt: skip
    md = render_table(SPECS["alignclip/supp_table1"], ResultIndex(tmp_path)).markdown
    assert "| CC3M | 2,901,344 → 2,905,954 (+4,610) | 109,341 → 110,000 (+659) |" in md
    assert "| CC12M | 10,841,279 → missing |" in md


def test_figures_collect_sweeps_and_plot_with_the_papers_points(tmp_path):
    f4b = "softclip/fig4b"
    for beta, value in ((0.3, 0.20), (0.0001, 0.18)):
        fake_run(tmp_path, f"re{beta}", table=f4b, row=f"beta-re-{beta:g}", evals=zeroshot(value))
    fake_run(tmp_path, "nore", table=f4b, row="beta-no-re-0.1", evals=zeroshot(0.12))
    data = collect(SPECS[f4b], ResultIndex(tmp_path))
    re_points = {p.x: p.mean for p in data.points["SoftCLIP (with the relation-enhanced loss)"]}
    assert re_points[0.3] == pytest.approx(20.0) and re_points[0.0001] == pytest.approx(18.0)
    assert re_points[0.5] is None and "row `beta-re-0.5` (RN50, cc3m)" in data.missing

    # fig. 8's x is the data fraction times 15M; fig. 6 plots the logit curves
    fake_run(tmp_path, "f8", table="softclip/fig8", row="clip-0.5", data="yfcc15m", epochs=32,
             evals=zeroshot(0.3))  # fmt: skip
    f8 = collect(SPECS["softclip/fig8"], ResultIndex(tmp_path))
    assert {p.x: p.mean for p in f8.points["CLIP"]}[7.5] == pytest.approx(30.0)
    curve = [0.5, 0.2, 0.1] + [0.004] * 47
    fake_run(tmp_path, "f6", table="softclip/fig6", row="clip", data="yfcc15m", epochs=32,
             evals={("logit-distribution", "flickr30k", "flickr30k_logits"):
                    {"metrics": {"prob@1": 0.5}, "details": {"curves": {"clip": curve}}}})  # fmt: skip

    out = tmp_path / "tables"
    assert (
        cli.main(["softclip/fig4b", "softclip/fig6", "--logs", str(tmp_path), "--out", str(out)])
        == 0
    )
    for name in ("softclip-fig4b", "softclip-fig6"):
        png = (out / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    md = (out / "softclip-fig4b.md").read_text()
    assert "| 0.3 | 20.0 | missing |" in md
    assert "beta-re at 0.3: 22.1 (Table 6, SoftCLIP (beta = 0.3), ResNet50)" in md
    assert "not in its text" in md
    assert "| CLIP | 0.5000 | 0.2000 |" in (out / "softclip-fig6.md").read_text()


def test_cli_paper_view_list_and_errors(tmp_path, capsys):
    assert cli.main(["--paper", "softclip/table6"]) == 0
    assert "+ Symmetric KL (SoftCLIP) 22.1(+5.6) 12.5(+1.8)" in capsys.readouterr().out
    assert cli.main(["--list"]) == 0
    assert "alignclip/supp_table2" in capsys.readouterr().out
    assert cli.main(["softclip/table99"]) == 2
    assert "unknown table" in capsys.readouterr().err
    assert cli.main(["alignclip/supp_table2", "--logs", str(tmp_path / "none")]) == 0
    out = capsys.readouterr()
    assert "| Hard Label | 23.0 → missing | 45.8 → missing |" in out.out
    assert "no runs recorded" in out.err


def retrieval(value: float, logits: list[float] | None = None) -> dict:
    metrics = {f"{d}_R@{k}": value for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)}
    evals = {("retrieval", "flickr8k", "flickr8k"): {"metrics": metrics}}
    if logits is not None:
        evals[("logit-distribution", "flickr8k", "flickr8k_logits")] = {
            "metrics": {"prob@1": logits[0]}, "details": {"curves": {"m": logits}},
        }  # fmt: skip
    return evals


def test_project_table_mean_sd_and_differences_with_standard_errors(tmp_path):
    """mini/flickr8k: mean ± SD over seeds, Δ vs CLIP ± sqrt(s1²/n1 + s2²/n2), * at > 2 SE."""
    mini = "mini/flickr8k"
    values = {
        "clip": (0.10, 0.12, 0.14),  # 12.0 ± 2.0
        "label_smoothing": (0.20, 0.21, 0.22),  # 21.0 ± 1.0: +9.0 ± sqrt(4/3 + 1/3) = 1.29 *
        "object_iou": (0.11, 0.13, 0.12),  # 12.0 ± 1.0: +0.0 ± 1.3
        "alignclip": (0.15,),  # one seed: no SD, no SE
    }
    for row, seeds in values.items():
        for seed, v in enumerate(seeds):
            fake_run(tmp_path, f"{row}{seed}", table=mini, row=row, model="RN-Tiny-96",
                     data="flickr8k", seed=seed, epochs=10,
                     evals=retrieval(v, [0.5 - v, 0.2, 0.1]))  # fmt: skip
    md = render_table(
        SPECS[mini], ResultIndex(tmp_path), script="recipes/mini/flickr8k.sh"
    ).markdown
    assert "| CLIP | 12.0 ± 2.0 | 12.0 ± 2.0 |" in md and md.count("| 3 |") == 3
    assert "| Label smoothing | 21.0 ± 1.0 (+9.0 ± 1.3*) |" in md
    assert "| Object-IoU | 12.0 ± 1.0 (+0.0 ± 1.3) |" in md
    assert "| AlignCLIP | 15.0 (+3.0) |" in md and "| AlignCLIP | 15.0 (+3.0) | 15.0" in md
    assert "| SoftCLIP (image/text guidance) | missing |" in md
    assert "* where |difference| > 2 SE > 0 (Label smoothing I→T R@1; " in md
    assert "Missing (run `recipes/mini/flickr8k.sh`): row `softclip` (RN-Tiny-96, flickr8k)" in md
    # the Fig. 6 curve of the same runs: the mean over seeds, per row
    curves = collect(SPECS["mini/flickr8k_logits"], ResultIndex(tmp_path))
    assert curves.curves["CLIP"][0] == pytest.approx(0.5 - 0.12)
    assert curves.missing == ["row `softclip` (RN-Tiny-96, flickr8k)"]
    out = tmp_path / "tables"
    argv = ["mini/flickr8k", "mini/flickr8k_logits", "--logs", str(tmp_path), "--out", str(out)]
    assert cli.main(argv) == 0
    assert (out / "mini-flickr8k_logits.png").read_bytes()[:4] == b"\x89PNG"
    assert "(run `recipes/mini/flickr8k.sh`)" in (out / "mini-flickr8k_logits.md").read_text()


def test_a_mean_of_column_is_the_mean_over_columns_per_seed_then_compared(tmp_path):
    """mini/flickr8k's mean R: the six recalls averaged within each seed, then mean ± SD
    over seeds and Δ ± SE vs CLIP (not an average of the columns' SDs)."""
    mini = "mini/flickr8k"
    # per seed: R@1 = v, R@5 = 3v, R@10 = 5v both ways -> mean R = 3v
    values = {"clip": (0.01, 0.02, 0.03), "object_iou": (0.03, 0.03, 0.03)}
    for row, seeds in values.items():
        for seed, v in enumerate(seeds):
            metrics = {
                f"{d}_R@{k}": v * m
                for d in ("image_to_text", "text_to_image")
                for k, m in ((1, 1), (5, 3), (10, 5))
            }
            fake_run(tmp_path, f"{row}{seed}", table=mini, row=row, model="RN-Tiny-96",
                     data="flickr8k", seed=seed, epochs=10,
                     evals={("retrieval", "flickr8k", "flickr8k"): {"metrics": metrics}})  # fmt: skip
    md = render_table(SPECS[mini], ResultIndex(tmp_path)).markdown
    assert "| mean R | seeds |" in md
    # clip 3, 6, 9 -> 6.0 ± 3.0; object_iou 9.0 ± 0.0: +3.0 ± sqrt(9/3 + 0) = 1.7
    assert "| 6.0 ± 3.0 | 3 |" in md and "| 9.0 ± 0.0 (+3.0 ± 1.7) | 3 |" in md
    assert "Missing" in md and "mean R" not in md.split("Missing")[1]


def test_project_tables_name_real_experiment_rows_and_bench_roles():
    from alignclip_plugins.recipes.conf import shipped_conf_dir
    from alignclip_plugins.recipes.experiment import expand_rows
    from alignclip_plugins.tables.spec import PROJECT_FILE, Figure

    for name, spec in load_specs(PROJECT_FILE).items():
        conf = shipped_conf_dir()
        raw = yaml.safe_load((conf / "experiment" / f"{spec.runs_of}.yaml").read_text())
        bench_name = next(d["override /bench"] for d in raw["defaults"] if "override /bench" in d)
        bench = yaml.safe_load((conf / "bench" / f"{bench_name}.yaml").read_text())
        names = {r.name for r in expand_rows(raw["rows"])}
        if isinstance(spec, Figure):
            cells = [(s.row, spec.defaults["model"], spec.defaults["data"],
                      spec.defaults["metric"]) for s in spec.series]  # fmt: skip
        else:
            cells = [tuple(spec.cell(r, c)[k] for k in ("row", "model", "data", "metric"))
                     for r in spec.rows for c in spec.columns if not c.mean_of]  # fmt: skip
            assert spec.versus in {r.id for r in spec.rows}
        for row, model, data, metric in cells:
            assert row in names and model in raw["grid"]["model"] and data in raw["grid"]["data"]
            role = metric.split(".")[0]
            assert role in raw["evals"] and role in bench, (name, role)


def _demo_evals(top1: float) -> dict:
    zeroshot = {"top1": top1, "top5": 0.9, "tail_top1": 0.5, "colour_top1": 1.0, "shape_top1": top1}
    return {
        ("zeroshot", "synthetic", "zeroshot"): {"metrics": zeroshot},
        ("zeroshot", "synthetic_descriptions", "zeroshot_desc"): {"metrics": {"top1": 0.3}},
        ("retrieval", "synthetic", "retrieval"): {
            "metrics": {"image_to_text_R@1": 0.2, "text_to_image_R@1": 0.25}
        },
    }


def test_a_delta_column_and_a_bar_chart_for_one_metric(tmp_path):
    """The demo table: plain mean ± SD cells, one Δ column (zero-shot top-1 vs clip ± SE,
    starred beyond 2 SE), the significance line, and a PNG bar chart of that column."""
    from dataclasses import replace

    from alignclip_plugins.tables.figures import bar_chart

    values = {"clip": (0.60, 0.62, 0.64), "object_iou": (0.70, 0.71, 0.72), "softclip": (0.6,)}
    for row, seeds in values.items():
        for seed, v in enumerate(seeds):
            fake_run(tmp_path, f"{row}{seed}", table="demo", row=row, model="demo",
                     data="synthetic", seed=seed, epochs=12, evals=_demo_evals(v))  # fmt: skip
    spec = SPECS["demo"]
    spec = replace(spec, rows=tuple(r for r in spec.rows if r.id in values))
    rendered = render_table(spec, ResultIndex(tmp_path))
    md = rendered.markdown
    assert (
        "| Method | zero-shot top-1 | top-5 |" in md
        and "| Δ zero-shot top-1 vs clip | seeds |" in md
    )
    # 71.0 ± 1.0 vs 62.0 ± 2.0: +9.0 ± sqrt(1/3 + 4/3) = 1.29, beyond 2 SE
    assert "| object_iou | 71.0 ± 1.0 | 90.0 ± 0.0 |" in md and "| +9.0 ± 1.3* | 3 |" in md
    assert "| softclip | 60.0 | 90.0 |" in md and "| -2.0 | 1 |" in md  # one seed: no SE
    assert "| clip | 62.0 ± 2.0 |" in md and "| — | 3 |" in md
    assert "(object_iou zero-shot top-1)." in md
    png = bar_chart(spec, rendered, tmp_path / "demo.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bar_chart(replace(spec, rows=()), rendered, tmp_path / "none.png") is None
