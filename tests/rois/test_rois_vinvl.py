"""`alignclip rois convert-vinvl` on small VinVL / Oscar TSVs written here."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from alignclip_plugins.rois import storage as S
from alignclip_plugins.rois import vinvl as V
from alignclip_plugins.rois.cli import main as rois_main
from alignclip_plugins.rois.tsv import normalise_key
from alignclip_plugins.synthetic.writer import write_tar_atomic


def _png(w, h):
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def _b64(a):
    return base64.b64encode(np.asarray(a, dtype=np.float32).tobytes()).decode()


def _shards(tmp_path, keys_per_shard, size=(40, 20)):
    paths = []
    for i, keys in enumerate(keys_per_shard):
        members = []
        for key in keys:
            members += [(f"{key}.png", _png(*size)), (f"{key}.txt", b"a caption")]
        path = tmp_path / "shards" / f"part-{i:06d}.tar"
        write_tar_atomic(path, members)
        paths.append(path)
    return paths


def _obj(rng, conf, cls="dog", attrs=("brown",), scores=(0.9,), rect=(4, 2, 20, 10), dim=2048):
    return {"rect": list(rect), "class": cls, "conf": conf, "feature": _b64(rng.random(dim)),
            "attributes": list(attrs), "attr_scores": list(scores)}  # fmt: skip


def _write_tsv(path, rows):
    path.write_text("".join(f"{k}\t{v}\n" for k, v in rows))
    return path


def test_convert_predictions_top_k_tags_boxes_bad_rows_and_resume(tmp_path, caplog):
    rng = np.random.default_rng(0)
    _shards(tmp_path, [["a0", "a1", "a2"], ["b0", "b1"]])
    objs = [_obj(rng, c) for c in (0.2, 0.9, 0.5, 0.7)]
    objs[1].update(
        attributes=["__no_attribute__", "large"], attr_scores=[0.8, 0.3], **{"class": "cat"}
    )
    rows = [
        ("a0", json.dumps({"objects": objs, "relations": None})),  # line 1
        ("a1", "{not json"),  # line 2: bad
        ("images/a2.jpg", json.dumps({"objects": [_obj(rng, 0.3, dim=100)]})),  # line 3: bad
        ("b0", json.dumps({"objects": [_obj(rng, 0.4, attrs=(), scores=())]})),  # line 4
        ("b0", json.dumps({"objects": []})),  # line 5: repeated key, ignored
        ("zz", json.dumps({"objects": []})),  # line 6: not in any shard
    ]  # b1: no row at all
    pred = _write_tsv(tmp_path / "predictions.tsv", rows)
    out = tmp_path / "rois"
    args = ["convert-vinvl", "--shards", str(tmp_path / "shards" / "part-{000000..000001}.tar"),
            "--predictions", str(pred), "--out", str(out), "--max-rois", "3", "--no-progress"]  # fmt: skip
    assert rois_main(args) == 0
    a = S.SidecarReader(out / "part-000000.rois")
    got = a.get("a0")
    assert got.tags == ["large cat", "brown dog", "brown dog"]  # top 3 by confidence
    np.testing.assert_allclose(got.confidences, [0.9, 0.7, 0.5], rtol=1e-3)
    feat = np.frombuffer(base64.b64decode(objs[1]["feature"]), np.float32)
    np.testing.assert_allclose(got.features[0, :2048], feat, rtol=1e-3)
    # rect (4, 2, 20, 10) in a 40 x 20 image
    np.testing.assert_allclose(got.features[0, 2048:], [0.1, 0.1, 0.5, 0.5], atol=1e-3)
    assert len(a.get("a1").features) == 0 and len(a.get("a2").features) == 0
    bad = {(r["line"], r["key"]) for r in a.meta["bad_rows"]}
    assert bad == {(2, "a1"), (3, "a2")}
    assert "not JSON" in a.meta["bad_rows"][0]["reason"]
    assert "feature size 100" in a.meta["bad_rows"][1]["reason"]
    b = S.SidecarReader(out / "part-000001.rois")
    assert b.get("b0").tags == ["dog"] and len(b.get("b1").features) == 0
    summary = json.loads((out / V.SUMMARY_FILE).read_text())
    run = summary["last_run"]
    assert run["samples"] == 5 and run["missing"] == 1 and run["bad_rows"] == 2
    assert run["without_rois"] == 3 and run["shards_written"] == 2
    first_total = {"shards": 2, "samples": 5, "missing": 1, "bad_rows": 2, "without_rois": 3}
    assert summary["total"] == first_total
    assert any("predictions.tsv:2" in r.message for r in caplog.records)
    assert list((out / V.INDEX_DIR).glob("predictions.tsv.*.keys.tsv"))  # cached index

    # resume: a finished shard is skipped; a removed one is written again
    import shutil

    shutil.rmtree(out / "part-000001.rois")
    assert rois_main(args) == 0
    summary = json.loads((out / V.SUMMARY_FILE).read_text())
    assert summary["last_run"]["shards_skipped"] == 1 and summary["last_run"]["shards_written"] == 1
    # the rerun's own counts (part-000001 only) do not replace the conversion's totals
    assert summary["last_run"]["missing"] == 1 and summary["last_run"]["bad_rows"] == 0
    assert summary["total"] == first_total and len(summary["runs"]) == 2
    assert {(r["line"], r["key"]) for r in summary["bad_row_list"]} == {(2, "a1"), (3, "a2")}
    assert rois_main(args) == 0  # nothing left to do: totals stay, a third run is recorded
    summary = json.loads((out / V.SUMMARY_FILE).read_text())
    assert summary["last_run"]["shards_skipped"] == 2 and summary["last_run"]["samples"] == 0
    assert summary["total"] == first_total and len(summary["runs"]) == 3
    assert S.SidecarReader(out / "part-000001.rois").get("b0").tags == ["dog"]


def test_summary_of_an_older_version_becomes_the_first_run(tmp_path):
    rng = np.random.default_rng(5)
    shards = _shards(tmp_path, [["k0"]])
    pred = _write_tsv(tmp_path / "p.tsv", [("k0", json.dumps({"objects": [_obj(rng, 1.0)]}))])
    out = tmp_path / "o"
    out.mkdir()
    old = {"shards_written": 1, "samples": 1, "missing": 0, "bad_rows": 0, "bad_row_list": []}
    (out / V.SUMMARY_FILE).write_text(json.dumps(old))
    report = V.Converter([pred], out=out, progress=False).run([str(shards[0])])
    summary = V.update_summary(out / V.SUMMARY_FILE, report)
    assert summary["runs"][0] == {k: v for k, v in old.items() if k != "bad_row_list"}
    assert summary["total"]["samples"] == 1 and summary["sidecars"] == ["part-000000.rois"]


def test_row_without_a_tab_is_a_bad_row_not_a_missing_key(tmp_path):
    # a row whose tab was lost (copied through a tool that turned it into spaces, or cut
    # after the key) used to be skipped by the index, so its sample counted as "missing"
    rng = np.random.default_rng(6)
    shards = _shards(tmp_path, [["t0", "t1", "t2", "t3"]])
    good = json.dumps({"objects": [_obj(rng, 1.0)]})
    pred = tmp_path / "p.tsv"
    pred.write_text(f"t0\t{good}\nt1 {good}\nt2\n\nt0x\t{good}\n")  # t3: no row at all
    for lineidx in (False, True):
        if lineidx:  # the same through a .lineidx file (offsets of every line)
            lines = pred.read_bytes().splitlines(keepends=True)
            offsets = np.cumsum([0] + [len(x) for x in lines[:-1]])
            (tmp_path / "p.lineidx").write_text("".join(f"{o}\n" for o in offsets))
        out = tmp_path / f"o{int(lineidx)}"
        report = V.Converter([pred], out=out, progress=False).run([str(shards[0])])
        assert report.missing == 1  # t3 only
        assert [(r["key"], r["line"]) for r in report.bad_rows] == [("t1", 2), ("t2", 3)]
        assert all(r["reason"] == V.NO_TAB for r in report.bad_rows)
        assert S.SidecarReader(out / "part-000000.rois").get("t0").tags == ["brown dog"]


def test_interrupted_conversion_leaves_no_partial_sidecar(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    shards = _shards(tmp_path, [["k0", "k1"]])
    pred = _write_tsv(tmp_path / "p.tsv", [(k, json.dumps({"objects": [_obj(rng, 1.0)]}))
                                          for k in ("k0", "k1")])  # fmt: skip
    calls = []
    real = V.sample_rois

    def crash(*a):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(V, "sample_rois", crash)
    with pytest.raises(KeyboardInterrupt):
        V.Converter([pred], out=tmp_path / "o", progress=False).run([str(shards[0])])
    assert not list((tmp_path / "o").glob("*.rois")) and not list((tmp_path / "o").glob(".*tmp"))
    monkeypatch.setattr(V, "sample_rois", real)
    report = V.Converter([pred], out=tmp_path / "o", progress=False).run([str(shards[0])])
    assert report.shards_written == 1 and report.samples == 2


@pytest.mark.parametrize("form", ["columns", "json"])
def test_oscar_features_tsv_with_labels_hw_and_lineidx(tmp_path, form):
    rng = np.random.default_rng(2)
    shards = _shards(tmp_path, [["x0", "x1"]])
    labels = [{"class": "tree", "conf": 0.8, "rect": [0, 0, 10, 10]},
              {"class": "sky", "conf": 0.95, "rect": [0, 0, 40, 5]}]  # fmt: skip
    feats = rng.random((2, 2054)).astype(np.float32)
    feats[:, 2048:2052] = [[0.0, 0.0, 0.25, 0.5], [0.0, 0.0, 1.0, 0.25]]

    def frow(f):
        if form == "columns":
            return f"{len(f)}\t{_b64(f)}"
        return json.dumps({"num_boxes": len(f), "features": _b64(f)})

    pred = _write_tsv(tmp_path / "label.tsv", [("x0", json.dumps(labels)), ("x1", "[]")])
    feat = _write_tsv(tmp_path / "features.tsv", [("x0", frow(feats)), ("x1", frow(feats[:1]))])
    hw = _write_tsv(tmp_path / "hw.tsv", [("x0", json.dumps([{"height": 20, "width": 40}]))])
    lines = pred.read_bytes().splitlines(keepends=True)
    offsets = np.cumsum([0] + [len(x) for x in lines[:-1]])
    (tmp_path / "label.lineidx").write_text("".join(f"{o}\n" for o in offsets))
    conv = V.Converter([pred], features=[feat], hw=[hw], out=tmp_path / "o", progress=False)
    report = conv.run([str(shards[0])])
    reader = S.SidecarReader(tmp_path / "o" / "part-000000.rois")
    got = reader.get("x0")
    assert got.tags == ["sky", "tree"]
    np.testing.assert_allclose(got.features[0, :2048], feats[1, :2048], rtol=1e-3)
    np.testing.assert_allclose(got.features[0, 2048:], [0, 0, 1, 0.25], atol=1e-3)
    np.testing.assert_allclose(got.features[1, 2048:], [0, 0, 0.25, 0.5], atol=1e-3)
    # x1: 0 labels but 1 feature vector -> reported, skipped
    assert len(reader.get("x1").features) == 0
    assert [r["key"] for r in report.bad_rows] == ["x1"]
    assert "0 objects but 1 feature vectors" in report.bad_rows[0]["reason"]
    assert report.bad_rows[0]["line"] == 2


def test_row_parsers_reject_bad_input():
    with pytest.raises(V.BadRow, match="base64"):
        V.object_vector({"feature": "***", "rect": [0, 0, 1, 1]}, None, (2, 2))
    with pytest.raises(V.BadRow, match="no image size"):
        V.object_vector({"feature": _b64(np.zeros(2048)), "rect": [0, 0, 1, 1]}, None, None)
    with pytest.raises(V.BadRow, match="no class"):
        V.object_tag({"class": " "})
    assert V.object_tag({"class": "car", "attr": ["red", "old"], "attr_conf": [0.2, 0.7]}) == (
        "old car"
    )
    assert normalise_key("a/b/000123.jpg") == "000123"
