"""SynthConfig: the seed and options that fully determine a synthetic dataset."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from alignclip_plugins.synthetic.scene import MAX_IMAGE_SIZE, MAX_OBJECTS, MIN_IMAGE_SIZE

SPLITS: tuple[str, ...] = ("train", "retrieval", "zeroshot")


@dataclass(frozen=True)
class SynthConfig:
    """Options of ``alignclip synth``; invalid values raise ValueError on construction.

    ``image_size`` is the side of the square images in pixels. ``zipf`` is the exponent of the
    long-tailed class frequencies (0 = uniform). ``count_weights[k]`` is the relative
    frequency of training and retrieval images with ``k + 1`` objects (at most
    ``MAX_OBJECTS`` entries). ``mention`` is the chance that a noisy training caption names
    each object class of its image (one is always named); ``colour_mention`` the chance that a
    mention names the colour (else only the shape, "a ring"). ``mismatch`` is the fraction of
    training pairs whose caption belongs to another image. ``duplicates`` is the fraction of
    training scenes that show the objects of an earlier scene of their shard again (a new
    layout, rendering and caption: a near-duplicate). ``tail_fraction`` of the classes, the
    least frequent in training, are marked as tail. docs/synthetic.md says why each default
    is what it is.
    """

    seed: int = 0
    train_samples: int = 4096
    shard_size: int = 512
    image_size: int = 64
    zipf: float = 1.0
    count_weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    mention: float = 0.9
    colour_mention: float = 0.5
    mismatch: float = 0.1
    duplicates: float = 0.1
    zeroshot_per_class: int = 100
    retrieval_samples: int = 512
    tail_fraction: float = 0.3

    def __post_init__(self) -> None:
        for name in (
            "seed",
            "train_samples",
            "shard_size",
            "image_size",
            "zeroshot_per_class",
            "retrieval_samples",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        weights = self.count_weights
        if isinstance(weights, str):
            weights = [w for w in weights.split(",") if w.strip()]
        try:
            weights = tuple(float(w) for w in weights)
        except (TypeError, ValueError):
            raise ValueError(
                f"count_weights must be numbers, e.g. 0.5,0.3,0.2, got {self.count_weights!r}"
            ) from None
        object.__setattr__(self, "count_weights", weights)
        for name in (
            "zipf",
            "mention",
            "colour_mention",
            "mismatch",
            "duplicates",
            "tail_fraction",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))  # 1 and 1.0 are the same option
        checks = [
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.train_samples >= 1, f"train_samples must be >= 1, got {self.train_samples}"),
            (self.shard_size >= 1, f"shard_size must be >= 1, got {self.shard_size}"),
            (
                MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE,
                f"image_size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} px, got "
                f"{self.image_size} (4 objects of at least 10 px must fit side by side)",
            ),
            (self.zipf >= 0, f"zipf must be >= 0 (0 = uniform classes), got {self.zipf}"),
            (
                1 <= len(weights) <= MAX_OBJECTS
                and all(math.isfinite(w) and w >= 0 for w in weights)
                and sum(weights) > 0,
                f"count_weights must be 1 to {MAX_OBJECTS} non-negative numbers with a positive "
                f"sum (images with 1, 2, ... objects), got {self.count_weights!r}",
            ),
            (0 <= self.mention <= 1, f"mention must be in [0, 1], got {self.mention}"),
            (
                0 <= self.colour_mention <= 1,
                f"colour_mention must be in [0, 1], got {self.colour_mention}",
            ),
            (0 <= self.mismatch <= 1, f"mismatch must be in [0, 1], got {self.mismatch}"),
            (0 <= self.duplicates < 1, f"duplicates must be in [0, 1), got {self.duplicates}"),
            (
                self.zeroshot_per_class >= 1,
                f"zeroshot_per_class must be >= 1, got {self.zeroshot_per_class}",
            ),
            (
                self.retrieval_samples >= 1,
                f"retrieval_samples must be >= 1, got {self.retrieval_samples}",
            ),
            (
                0 <= self.tail_fraction <= 1,
                f"tail_fraction must be in [0, 1], got {self.tail_fraction}",
            ),
        ]
        errors = [message for ok, message in checks if not ok]
        if errors:
            raise ValueError("invalid synthetic data options: " + "; ".join(errors))

    def options(self) -> dict:
        """Every field except ``seed`` (the manifest's ``options``), as JSON values."""
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(self).items()
            if k != "seed"
        }

    @property
    def max_objects(self) -> int:
        """The most objects an image of the training and retrieval splits holds."""
        return len(self.count_weights)

    @classmethod
    def from_record(cls, seed: int, options: dict) -> SynthConfig:
        """Inverse of (``seed``, ``options()``), ignoring unknown option names."""
        known = {f.name for f in fields(cls)}
        return cls(seed=seed, **{k: v for k, v in options.items() if k in known})
