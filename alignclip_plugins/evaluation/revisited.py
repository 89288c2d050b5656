"""Instance retrieval on revisited Oxford5k and Paris6k (Radenović et al., CVPR 2018).

Layout, as the revisitop / cirtorch tools download it::

    DIR/gnd_roxford5k.pkl      {"imlist": [name, ...], "qimlist": [name, ...],
                                "gnd": [{"bbx": [x1, y1, x2, y2], "easy": [i, ...],
                                         "hard": [...], "junk": [...]}, ...]}  (one per query)
    DIR/jpg/<name>.jpg         every database (imlist) and query (qimlist) image

Each query image is cropped to its ``bbx`` (pixels) before embedding; the database images are
embedded whole. The database is ranked by cosine similarity and scored with revisitop's
``compute_map`` under the Easy / Medium / Hard protocols
(:func:`alignclip_plugins.evaluation.metrics.revisited_protocol`).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alignclip_plugins.evaluation.encoder import Encoder
from alignclip_plugins.evaluation.metrics import revisited_protocol
from alignclip_plugins.evaluation.sources import files_source, unpack

DATASETS = ("roxford5k", "rparis6k")
LAYOUT = (
    "DIR/gnd_<dataset>.pkl (revisitop ground truth: 'imlist', 'qimlist', and 'gnd', one "
    "{'bbx', 'easy', 'hard', 'junk'} per query) and DIR/jpg/<name>.jpg for every imlist and "
    "qimlist name"
)
KAPPAS = (1, 5, 10)


@dataclass
class RevisitedDataset:
    """A revisited Oxford / Paris ground truth and where its images are."""

    name: str
    root: Path
    imlist: list[str]
    qimlist: list[str]
    gnd: list[dict]

    def image(self, name: str) -> Path:
        return self.root / "jpg" / f"{name}.jpg"


def find_ground_truth(data: str | Path, name: str | None = None) -> Path:
    """The ``gnd_<name>.pkl`` file meant by ``data`` (the file, its directory, or the
    directory above with ``name``)."""
    data = Path(data)
    if data.is_file():
        return data
    candidates = []
    if name:
        candidates = [data / f"gnd_{name}.pkl", data / name / f"gnd_{name}.pkl"]
        found = [c for c in candidates if c.is_file()]
        if found:
            return found[0]
    elif data.is_dir():
        found = sorted(data.glob("gnd_*.pkl"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ValueError(
                f"{data} holds several ground truths ({', '.join(p.name for p in found)}); "
                f"pick one with --dataset"
            )
    where = ", ".join(str(c) for c in candidates) if candidates else f"{data}/gnd_*.pkl"
    raise FileNotFoundError(f"no revisited Oxford/Paris ground truth at {where}; expected {LAYOUT}")


def _index_list(value, what: str, size: int, path: Path) -> list[int]:
    try:
        out = [int(i) for i in np.asarray(value).reshape(-1)]
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {what} must be a list of image indices") from None
    bad = [i for i in out if not 0 <= i < size]
    if bad:
        raise ValueError(f"{path}: {what} has index {bad[0]} outside imlist (size {size})")
    return out


def load_dataset(gnd_path: str | Path) -> RevisitedDataset:
    """Read and check a ``gnd_<name>.pkl``; errors name the file and the broken entry."""
    path = Path(gnd_path)
    try:
        with open(path, "rb") as f:
            cfg = pickle.load(f)
    except Exception as e:
        raise ValueError(f"cannot read revisited ground truth {path}: {e}") from e
    if not isinstance(cfg, dict) or not {"imlist", "qimlist", "gnd"} <= set(cfg):
        raise ValueError(f"{path}: expected a dict with 'imlist', 'qimlist' and 'gnd'; {LAYOUT}")
    imlist, qimlist, raw = list(cfg["imlist"]), list(cfg["qimlist"]), list(cfg["gnd"])
    if len(raw) != len(qimlist):
        raise ValueError(
            f"{path}: {len(raw)} 'gnd' entries for {len(qimlist)} queries in 'qimlist'"
        )
    gnd = []
    for q, entry in enumerate(raw):
        if not isinstance(entry, dict) or "bbx" not in entry:
            raise ValueError(f"{path}: gnd[{q}] needs 'bbx', 'easy', 'hard' and 'junk'")
        bbx = [float(v) for v in np.asarray(entry["bbx"]).reshape(-1)]
        if len(bbx) != 4 or bbx[2] <= bbx[0] or bbx[3] <= bbx[1]:
            raise ValueError(f"{path}: gnd[{q}]['bbx'] must be [x1, y1, x2, y2], got {bbx}")
        gnd.append(
            {"bbx": bbx}
            | {
                k: _index_list(entry.get(k, []), f"gnd[{q}][{k!r}]", len(imlist), path)
                for k in ("easy", "hard", "junk")
            }
        )
    name = path.stem[len("gnd_") :] if path.stem.startswith("gnd_") else path.stem
    dataset = RevisitedDataset(
        name, path.parent, [str(n) for n in imlist], [str(n) for n in qimlist], gnd
    )
    if not (dataset.root / "jpg").is_dir():
        raise FileNotFoundError(f"no image folder {dataset.root / 'jpg'}; expected {LAYOUT}")
    return dataset


@torch.no_grad()
def _embed(encoder: Encoder, source, preprocess, batch_size: int, workers: int) -> torch.Tensor:
    feats = [
        encoder.images(unpack(b)[0])
        for b in source.batches(preprocess, batch_size, workers, desc=source.slug)
    ]
    return torch.cat(feats)


@torch.no_grad()
def evaluate(
    encoder: Encoder,
    preprocess,
    dataset: RevisitedDataset,
    batch_size: int = 64,
    workers: int = 4,
) -> tuple[dict[str, float], dict]:
    """``({easy,medium,hard}_mAP, ..._mP@{1,5,10}}, details)`` of ``encoder`` on ``dataset``."""
    database = files_source(
        [dataset.image(n) for n in dataset.imlist],
        f"{dataset.name}-database",
        where=str(dataset.root / "jpg"),
    )
    queries = files_source(
        [dataset.image(n) for n in dataset.qimlist],
        f"{dataset.name}-queries",
        boxes=[g["bbx"] for g in dataset.gnd],
        where=str(dataset.root / "jpg"),
    )
    db = _embed(encoder, database, preprocess, batch_size, workers)
    q = _embed(encoder, queries, preprocess, batch_size, workers)
    scores = db @ q.T  # (N_db, Q)
    ranks = torch.sort(scores, dim=0, descending=True, stable=True).indices.cpu().numpy()
    metrics = revisited_protocol(ranks, dataset.gnd, KAPPAS)
    details = {"queries": len(dataset.qimlist), "database": len(dataset.imlist)}
    return metrics, details
