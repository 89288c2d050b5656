"""Per-sample draws that are a pure function of ``(seed, epoch, sample key)``: no RNG state.

A stage that draws something per sample and epoch (the ``captions`` plugin's caption, the
``alignclip`` plugin's text domain) hashes the run's seed, the epoch and the sample's key, so
that the draw is the same whatever the loader workers, the sample order or a ``--resume``,
and changes every epoch. Stages that must draw independently of each other namespace the
key (``"caption\\x1f<key>"``).
"""

from __future__ import annotations

import hashlib

__all__ = ["PassEpochs", "draw_uniforms"]


def draw_uniforms(seed: int, epoch: int, key: str, count: int = 3) -> tuple[float, ...]:
    """``count`` (<= 4) numbers in [0, 1), a deterministic function of the arguments."""
    digest = hashlib.blake2b(
        f"{seed}\x1f{epoch}\x1f{key}".encode(), digest_size=8 * count, person=b"alignclip-td"
    ).digest()
    return tuple(
        int.from_bytes(digest[8 * i : 8 * i + 8], "little") / 2.0**64 for i in range(count)
    )


class PassEpochs:
    """The epoch of each pass of a stage over its samples (one pass: one epoch of one loader
    worker): upstream's shared epoch (``SharedEpoch.get_value()``, the trainer's epoch, also
    inside loader workers and after ``--resume``), else the number of passes so far."""

    def __init__(self, shared=None) -> None:
        self.shared = shared
        self.passes = 0

    def next(self) -> int:
        """The epoch of the pass that starts now."""
        epoch = int(self.shared.get_value()) if self.shared is not None else self.passes
        self.passes += 1
        return epoch
