"""Per-epoch counts of a training run, summed in the trainer's process.

Loader workers cannot report per epoch (each sees only its shards, and its passes do not end
with the epoch), so what a worker sees travels to the trainer inside the batches; each
training step adds it to an :class:`EpochCounts`, and the epoch's evaluation call (rank 0,
``alignclip_plugins.host.evaluate``) pops the totals and reports them. One instance per
counted concept and run, kept in the run's stash (:mod:`alignclip_plugins.stash`): the
softclip plugin's samples without ROIs, the training loader's dropped and repeated samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class EpochCounts:
    """Named counts and the first few examples of each, since the last :meth:`pop`.

    ``add`` takes ints or 0-d device tensors; tensors are summed on their device and read
    back only by ``pop`` (no device sync per step).
    """

    def __init__(self, examples: int = 3) -> None:
        self.examples = examples
        self._counts: dict[str, int | torch.Tensor] = {}
        self._examples: dict[str, list[str]] = {}

    def add(self, name: str, value: int | torch.Tensor = 1) -> None:
        """Add ``value`` to the count ``name``."""
        self._counts[name] = self._counts.get(name, 0) + value

    def note(self, name: str, example: str) -> None:
        """Keep ``example`` for ``name`` if fewer than ``examples`` are kept."""
        kept = self._examples.setdefault(name, [])
        if len(kept) < self.examples:
            kept.append(example)

    def pop(self) -> tuple[dict[str, int], dict[str, list[str]]]:
        """The counts (as ints) and examples since the last pop; both start again empty."""
        counts = {name: int(value) for name, value in self._counts.items()}
        examples = self._examples
        self._counts, self._examples = {}, {}
        return counts, examples
