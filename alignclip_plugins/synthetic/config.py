"""SynthConfig: the seed and options that fully determine a synthetic dataset."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from alignclip_plugins.synthetic.scene import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

SPLITS: tuple[str, ...] = ("train", "retrieval", "zeroshot")


@dataclass(frozen=True)
class SynthConfig:
    """Options of ``alignclip synth``; invalid values raise ValueError on construction.

    ``image_size`` is the side of the square images in pixels. ``zipf`` is the exponent of the
    long-tailed class frequencies (0 = uniform). ``mismatch`` is the fraction of training pairs
    whose caption belongs to another image. ``tail_fraction`` of the classes, the least frequent
    in training, are marked as tail.
    """

    seed: int = 0
    train_samples: int = 4096
    shard_size: int = 512
    image_size: int = 64
    zipf: float = 1.0
    mismatch: float = 0.1
    zeroshot_per_class: int = 10
    retrieval_samples: int = 256
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
        for name in ("zipf", "mismatch", "tail_fraction"):
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
            (0 <= self.mismatch <= 1, f"mismatch must be in [0, 1], got {self.mismatch}"),
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
        """Every field except ``seed`` (the manifest's ``options``)."""
        return {k: v for k, v in asdict(self).items() if k != "seed"}

    @classmethod
    def from_record(cls, seed: int, options: dict) -> SynthConfig:
        """Inverse of (``seed``, ``options()``), ignoring unknown option names."""
        known = {f.name for f in fields(cls)}
        return cls(seed=seed, **{k: v for k, v in options.items() if k in known})
