"""The object vocabulary of a dataset: frequencies, the long tail, Table 1, a plot.

Vocabulary file (written by ``alignclip objects stats``, read by the training plugin with
:func:`load_object_vocabulary`)::

    {"objects": [{"name": "dog", "count": 1234, "tail": false}, ...],   # count desc
     "tail_fraction": 0.3, "min_count": 1, "num_captions": 2901344,
     "num_objects_parsed": 7000000,        # object occurrences (one per caption at most)
     "num_distinct_objects": 109341, "num_tail_objects": 32802,
     "captions_without_objects": 12345}

``count`` is the number of captions naming the object; a multi-caption sample (one caption a
line, per-caption sets in its sidecar record) counts each of its captions. Objects are ordered by count
(descending), ties by name; objects below ``min_count`` are left out. The tail is the last
``floor(tail_fraction * num_distinct_objects)`` objects of that order (the supplement's
Table 1 has exactly floor(0.3 x parsed objects) tail objects for CC3M, CC12M and YFCC15M).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignclip_plugins.io.atomic import atomic_save_figure, atomic_write_text
from alignclip_plugins.objects.sidecar import iter_records, sidecar_files


@dataclass
class ObjectCounts:
    """Caption-level object frequencies over a set of sidecars."""

    counts: Counter
    num_captions: int
    captions_without_objects: int


def count_objects(locations: Iterable[str | os.PathLike]) -> ObjectCounts:
    """Count objects over the sidecars of the given directories / files."""
    counts: Counter[str] = Counter()
    captions = empty = 0
    for path in sidecar_files(*locations):
        for record in iter_records(path):
            for objects in record.caption_sets:  # multi-caption samples: each caption
                captions += 1
                empty += not objects
                counts.update(set(objects))
    return ObjectCounts(counts, captions, empty)


def build_vocabulary(
    counts: ObjectCounts, tail_fraction: float = 0.3, min_count: int = 1
) -> dict[str, Any]:
    """The vocabulary file's content (see the module doc)."""
    if not 0.0 <= tail_fraction <= 1.0:
        raise ValueError(f"tail fraction must be in [0, 1], got {tail_fraction}")
    if min_count < 1:
        raise ValueError(f"min count must be >= 1, got {min_count}")
    kept = sorted(
        ((name, n) for name, n in counts.counts.items() if n >= min_count),
        key=lambda item: (-item[1], item[0]),
    )
    num_tail = math.floor(round(tail_fraction * len(kept), 6))
    first_tail = len(kept) - num_tail
    return {
        "objects": [
            {"name": name, "count": n, "tail": rank >= first_tail}
            for rank, (name, n) in enumerate(kept)
        ],
        "tail_fraction": tail_fraction,
        "min_count": min_count,
        "num_captions": counts.num_captions,
        "num_objects_parsed": sum(n for _, n in kept),
        "num_distinct_objects": len(kept),
        "num_tail_objects": num_tail,
        "captions_without_objects": counts.captions_without_objects,
    }


def write_vocabulary(path: str | os.PathLike, vocabulary: dict[str, Any]) -> None:
    """Write a vocabulary file atomically (one object a line, for readable diffs)."""
    objects = ",\n".join("    " + json.dumps(o, ensure_ascii=False) for o in vocabulary["objects"])
    fields = [f'  "objects": [\n{objects}\n  ]' if objects else '  "objects": []']
    fields += [
        f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in vocabulary.items() if k != "objects"
    ]
    text = "{\n" + ",\n".join(fields) + "\n}\n"
    atomic_write_text(path, text)


@dataclass(frozen=True)
class ObjectVocabulary:
    """A loaded vocabulary file: counts by name and the set of tail objects."""

    counts: dict[str, int]
    tail: frozenset[str]
    tail_fraction: float
    min_count: int
    num_captions: int

    @property
    def names(self) -> list[str]:
        """Names, most frequent first."""
        return list(self.counts)


def load_object_vocabulary(path: str | os.PathLike) -> ObjectVocabulary:
    """Read a vocabulary file written by ``alignclip objects stats``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        objects = data["objects"]
        counts = {str(o["name"]): int(o["count"]) for o in objects}
        tail = frozenset(str(o["name"]) for o in objects if o["tail"])
        return ObjectVocabulary(
            counts,
            tail,
            float(data["tail_fraction"]),
            int(data["min_count"]),
            int(data["num_captions"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{path} is not an object vocabulary file ({type(e).__name__}: {e}); write it with "
            "'alignclip objects stats SIDECAR_DIR --out FILE'"
        ) from e


def table_row(dataset: str, vocabulary: dict[str, Any]) -> str:
    """The supplement's Table 1 header and row for this dataset (markdown)."""
    return (
        "| Dataset | Image-text Pairs | Parsed Objects | Tail Objects |\n"
        "|---------|------------------|----------------|--------------|\n"
        f"| {dataset} | {vocabulary['num_captions']:,} | "
        f"{vocabulary['num_distinct_objects']:,} | {vocabulary['num_tail_objects']:,} |"
    )


def plot_frequencies(vocabulary: dict[str, Any], path: str | os.PathLike, title: str = "") -> None:
    """Save a log-log rank / frequency plot, the tail in its own colour (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objects = vocabulary["objects"]
    if not objects:
        raise ValueError("no objects to plot (is every caption empty, or --min-count too high?)")
    counts = [o["count"] for o in objects]
    ranks = range(1, len(counts) + 1)
    head = [(r, c) for r, c, o in zip(ranks, counts, objects) if not o["tail"]]
    tail = [(r, c) for r, c, o in zip(ranks, counts, objects) if o["tail"]]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    if head:
        ax.plot(*zip(*head), ".", markersize=3, label=f"head ({len(head):,})")
    if tail:
        label = f"tail: least frequent {vocabulary['tail_fraction']:.0%} ({len(tail):,})"
        ax.plot(*zip(*tail), ".", markersize=3, color="tab:red", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("object rank")
    ax.set_ylabel("captions naming the object")
    ax.set_title(title or "object frequency")
    ax.legend()
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    atomic_save_figure(fig, path, format="png")
    plt.close(fig)
