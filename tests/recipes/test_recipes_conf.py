"""Composing recipe configs: groups, experiments, grids, rows, overrides, the user's files."""

from __future__ import annotations

import open_clip
import pytest

from alignclip_plugins.recipes.conf import Composer, RecipeConfigError, resolve
from alignclip_plugins.recipes.experiment import expand_rows, identity, plan_runs, run_name


def plans(*overrides, rows=None):
    with Composer() as composer:
        return plan_runs(composer, list(overrides), rows)


def test_paper_models_match_open_clip_configs():
    with Composer() as c:
        for name, batch in (("RN50", 2048), ("ViT-B-32", 2048), ("ViT-B-16", 1024)):
            model = resolve(c.compose([f"model={name}"]))["model"]
            config = open_clip.get_model_config(model["arg"])
            assert config["vision_cfg"]["image_size"] == model["image_size"] == 224
            assert config["text_cfg"]["context_length"] == model["context_length"] == 77
            assert model["global_batch"] == batch
        tiny = resolve(c.compose(["model=tiny"]))["model"]
        assert tiny["arg"].startswith("local-dir:") and tiny["arg"].endswith("ViT-Tiny-64")


def test_schedules_are_the_papers():
    with Composer() as c:
        for name, epochs in (("ablation", 8), ("comparison", 32)):
            s = resolve(c.compose([f"schedule={name}", "model=ViT-B-16"]))["schedule"]
            assert (s["epochs"], s["wd"], s["warmup_fraction"], s["precision"]) == (
                epochs,
                0.2,
                0.1,
                "amp",
            )
            assert s["global_batch"] == 1024 and s["max_samples"] is None
        smoke = resolve(c.compose(["schedule=smoke"]))["schedule"]
        assert smoke["epochs"] == 1 and smoke["max_samples"] == 256 and smoke["precision"] == "auto"


def test_grid_rows_and_command_line_axes(recipe_env):
    # (the full 3 x 3 grid of Table 1 is checked by the dry-run tests)
    only = plans("experiment=softclip/table1", "model=RN50", "data=cc12m", "seeds=[0,1,2]")
    assert [(p.row, p.model, p.data, p.seed) for p in only] == [
        (r, "RN50", "cc12m", s) for r in ("clip", "softclip") for s in (0, 1, 2)
    ]
    assert {p.config["schedule"]["epochs"] for p in only} == {32}
    assert only[1].name == "softclip-table1__clip__RN50__cc12m__seed1"
    # the command line wins over the experiment's schedule
    (clip,) = plans(
        "experiment=softclip/table6", "model=RN50", "schedule=comparison", rows=["clip"]
    )
    assert clip.config["schedule"]["epochs"] == 32
    assert [p.row for p in plans("experiment=softclip/fig4b", rows=["beta-re"])] == [
        f"beta-re-{b}" for b in ("0.0001", "0.1", "0.2", "0.3", "0.5", "0.8", "0.9", "1")
    ]


def test_bad_overrides_are_refused_with_the_reason(recipe_env):
    with pytest.raises(RecipeConfigError, match="rows choose the methods"):
        plans("experiment=softclip/table6", "method=softclip")
    with pytest.raises(RecipeConfigError, match="set per run"):
        plans("experiment=softclip/table6", "seed=3")
    with pytest.raises(RecipeConfigError, match="no such row"):
        plans("experiment=softclip/table6", rows=["nope"])
    with pytest.raises(RecipeConfigError, match="cannot compose"):
        plans("model=ResNet9000")
    with pytest.raises(RecipeConfigError, match="data.root"):
        plans("data=custom")  # a user dataset needs its root


def test_single_run_without_experiment_and_method_overrides(recipe_env):
    (plan,) = plans(
        "method=softclip", "model=ViT-B-16", "data=cc12m", "method.options.softclip_beta=0.5"
    )
    assert plan.table == "custom" and plan.row == "softclip"
    assert plan.name == "custom__softclip__ViT-B-16__cc12m__seed0"
    assert plan.config["method"]["options"]["softclip_beta"] == 0.5
    # any dataset by overrides
    (plan,) = plans("data=custom", "data.name=mine", "data.root=/srv/mine", "data.num_samples=1000")
    assert plan.config["data"]["train_data"] == "/srv/mine/shards" and plan.data == "mine"


def test_identity_shares_runs_across_tables_and_separates_real_differences(recipe_env):
    t6 = {p.row: p for p in plans("experiment=softclip/table6", "model=RN50")}
    t9 = {p.row: p for p in plans("experiment=softclip/table9", rows=["R2R-A2A", "A2A-R2R"])}
    (t10,) = plans("experiment=softclip/table10", "model=RN50", rows=["mhsa"])
    f4b = {p.row: p for p in plans("experiment=softclip/fig4b", rows=["beta-re"])}
    same = t6["softclip"].identity_hash
    assert t9["R2R-A2A"].identity_hash == t10.identity_hash == same
    assert f4b["beta-re-0.3"].identity_hash == same
    assert f4b["beta-re-0.5"].identity_hash != same
    assert t9["A2A-R2R"].identity_hash != same
    assert len({p.identity_hash for p in t6.values()}) == 5
    # paths are not part of an experiment's identity; the data and the schedule are
    (moved,) = plans("method=softclip", "schedule=ablation", "data.root=/elsewhere")
    assert moved.identity_hash == same
    (longer,) = plans("method=softclip", "schedule=ablation", "schedule.epochs=9")
    assert longer.identity_hash != same


def test_user_local_data_file_and_environment(recipe_env, monkeypatch):
    conf = recipe_env / "conf" / "local_data"
    conf.mkdir(parents=True)
    (conf / "cc3m.yaml").write_text("root: /mnt/cc3m\nnum_samples: 2800000\n")
    (conf.parent / "data").mkdir()
    (conf.parent / "data" / "laion.yaml").write_text(
        "defaults:\n  - _webdataset\n  - _self_\nname: laion\nlabel: LAION\n"
        "env_prefix: X\nroot: /mnt/laion\ntrain_data: /mnt/laion/{0..9}.tar\nnum_samples: 10\n"
    )
    monkeypatch.delenv("ALIGNCLIP_CC3M_TRAIN")
    monkeypatch.delenv("ALIGNCLIP_CC3M_NUM_SAMPLES")
    (plan,) = plans("method=clip", "data=cc3m")
    assert plan.config["data"]["root"] == "/mnt/cc3m"
    assert plan.config["data"]["train_data"] == "/mnt/cc3m/shards"
    assert plan.config["data"]["num_samples"] == 2800000
    (plan,) = plans("method=object_iou", "data=laion")  # a dataset of the user's own
    assert plan.config["method"]["options"]["alignclip_objects"] == "/mnt/laion/objects-pos"
    monkeypatch.setenv("ALIGNCLIP_DATA_ROOT", "/big")
    (plan,) = plans("method=clip", "data=cc12m")
    assert plan.config["data"]["root"] == "/big/cc12m"


def test_row_expansion_and_names():
    rows = expand_rows(
        [
            {"row": "a", "method": "clip"},
            {"row": "g", "method": "x", "sweep": {"method.options.k": [0.0, 0.25, 1.0]}},
        ]
    )
    assert [(r.name, r.group, r.set) for r in rows] == [
        ("a", "a", {}),
        ("g-0", "g", {"method.options.k": 0.0}),
        ("g-0.25", "g", {"method.options.k": 0.25}),
        ("g-1", "g", {"method.options.k": 1.0}),
    ]
    with pytest.raises(RecipeConfigError, match="duplicate"):
        expand_rows([{"row": "a"}, {"row": "a"}])
    with pytest.raises(RecipeConfigError, match="unknown keys"):
        expand_rows([{"row": "a", "metod": "clip"}])
    cfg = {"table": "softclip/fig4b", "row": "beta/x", "kind": "train", "seed": 2,
           "model": {"name": "RN50"}, "data": {"name": "cc3m"}, "tag": "v2"}  # fmt: skip
    assert run_name(cfg) == "softclip-fig4b__beta_x__RN50__cc3m__seed2__v2"


def test_dataset_statistics_rows_are_identified_by_dataset_and_parser(recipe_env):
    (plan,) = plans("experiment=alignclip/supp_table1", "data=cc3m")
    assert plan.kind == "stats" and plan.name == "alignclip-supp_table1__stats__cc3m"
    assert identity(plan.config) == {"kind": "stats", "data": "cc3m", "objects_parser": "pos"}


def test_option_args_leave_null_options_out():
    from alignclip_plugins.recipes.command import option_args

    assert option_args({"softclip_beta": None, "softclip_symmetric": False, "ls_alpha": 0.1,
                        "alignclip_domains": [1, 0, 0], "softclip_tag_grad": True}) == [
        "--no-softclip-symmetric", "--ls-alpha", "0.1", "--alignclip-domains", "1,0,0",
        "--softclip-tag-grad"]  # fmt: skip


def test_method_configs_do_not_restate_the_plugins_defaults(recipe_env, plugin_options):
    """A method option is null (the plugin's default, defined once in the plugin or its loss
    config) unless the method deliberately differs from the default."""
    from alignclip_plugins.recipes.command import option_args
    from alignclip_plugins.recipes.conf import shipped_conf_dir

    names = sorted(p.stem for p in (shipped_conf_dir() / "method").glob("*.yaml"))
    assert {"softclip", "object_iou", "label_smoothing", "softclip_alignclip"} <= set(names)
    with Composer() as c:
        for name in names:
            method = resolve(c.compose([f"method={name}"]))["method"]
            if not method["plugins"]:
                continue
            plugins = ["--plugins", ",".join(method["plugins"])]
            defaults = plugin_options(plugins)
            for key in ("options", "imagenet_options"):
                for option, value in (method.get(key) or {}).items():
                    if value is None:
                        continue
                    given = plugin_options([*plugins, *option_args({option: value})])
                    assert getattr(given, option) != getattr(defaults, option), (
                        f"method {name}: {option}: {value!r} is the plugin's default; set null"
                    )
