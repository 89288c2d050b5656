"""Your own soft target on the row-block engine: the public way to add a loss to it.

A :class:`Target` gives, for one block of rows of one direction, each row's target
distribution over all columns. The engine does the rest, as for the built-in losses:
row blocks (nothing ``N x N`` is kept), the loss of the logits against the target
(cross-entropy, or SoftCLIP's soft / relation / CLIP terms with :class:`SoftTerms`),
exact gradients, and upstream's distributed semantics (every input gathered across ranks
with the features; ``local_loss``)::

    class SameLabel(Target):
        inputs = ("labels",)

        def __init__(self, beta):
            self.beta = beta

        def rows(self, block):
            same = block.rows("labels")[:, None] == block.cols("labels")[None, :]
            same = same.to(block.dtype)
            positive = block.positive_mask.to(block.dtype)
            return (1 - self.beta) * positive + self.beta * same / same.sum(1, keepdim=True)

    loss = TargetLoss(SameLabel(0.3), name="same_label")
    loss(image_features=v, text_features=t, logit_scale=s, labels=y, output_dict=True)

docs/writing-a-soft-label-plugin.md walks through it; ``softclip-alignclip``
(:mod:`.softclip_alignclip`) is built this way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from ._engine import Layout, RowBlock, check_features, run_plan
from ._plans import IMAGE, TEXT, ClipTerm, target_plan
from .base import SoftLabelLoss
from .config import SoftTerms

__all__ = ["ClipTerm", "RowBlock", "SoftTerms", "Target", "TargetLoss", "target_loss"]


class Target:
    """A target: ``rows(block)`` or ``log_rows(block)`` for a :class:`RowBlock` (override one).

    ``rows`` gives the (C, N) target rows (non-negative, each row summing to 1);
    ``log_rows`` their logarithm (``-inf`` for zero entries; SoftCLIP's terms use it, so a
    target that can compute it in log space should). ``inputs`` names the per-sample
    tensors the target reads (model outputs; gathered across ranks like the features);
    ``optional_inputs`` those it reads when present (``block.has(name)``). What a target
    reads carries no gradient: targets are constants.
    """

    inputs: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.rows is Target.rows and cls.log_rows is Target.log_rows:
            raise TypeError(f"{cls.__name__} must define rows(block) or log_rows(block)")

    def rows(self, block: RowBlock) -> Tensor:
        return self.log_rows(block).exp()

    def log_rows(self, block: RowBlock) -> Tensor:
        return self.rows(block).log()


def _needed(targets: Sequence[Target], clip_terms: Sequence[ClipTerm]) -> tuple[list, list]:
    """(required, optional) input names of the targets and CLIP terms, in order, unique."""
    required = [n for t in targets for n in t.inputs] + [
        n for c in clip_terms for n in (c.rows, c.cols)
    ]
    optional = [n for t in targets for n in t.optional_inputs] + [
        c.valid for c in clip_terms if c.valid is not None
    ]
    for name in required + optional:
        if name in (IMAGE, TEXT):
            raise ValueError(f"input name {name!r} is reserved for the image/text features")
    required = list(dict.fromkeys(required))
    return required, [n for n in dict.fromkeys(optional) if n not in required]


def target_loss(
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: Tensor,
    v2l: Target,
    l2v: Target | None = None,
    *,
    inputs: Mapping[str, Tensor] | None = None,
    soft: SoftTerms | None = None,
    clip_terms: Sequence[ClipTerm] = (),
    name: str = "target",
    chunk_rows: int | None = None,
) -> dict[str, Tensor]:
    """The loss of ``v2l`` (image→text rows) and ``l2v`` (text→image rows; default the same
    target) for one process holding the whole batch: ``½ (mean_i D(y_i, P_i(I,T)) +
    mean_j D(y'_j, P_j(T,I)))``.

    ``D`` is the cross-entropy (one component ``name``), or with ``soft`` SoftCLIP's terms
    (components ``soft``, ``relation``, ``clip``); each :class:`ClipTerm` adds one component.
    ``inputs``: the per-sample tensors the targets and terms read, by name. Returns the
    weighted components whose sum is the loss.
    """
    l2v = v2l if l2v is None else l2v
    inputs = dict(inputs or {})
    required, optional = _needed((v2l, l2v), clip_terms)
    missing = [n for n in required if n not in inputs]
    if missing:
        raise KeyError(f"target_loss needs the inputs {missing}; given: {sorted(inputs)}")
    check_features(image_features, text_features)
    n = image_features.shape[0]
    for key, t in inputs.items():
        if t.dim() == 0 or t.shape[0] != n:
            raise ValueError(
                f"input {key!r} needs one row per sample (N = {n}), got {tuple(t.shape)}"
            )
    named = {IMAGE: image_features, TEXT: text_features}
    named.update((n, inputs[n]) for n in required + optional if n in inputs)
    plan = target_plan(Layout.single(list(named)), v2l, l2v, soft, clip_terms, name)
    return run_plan(plan.chunked(chunk_rows), logit_scale, list(named.values()))


class TargetLoss(SoftLabelLoss):
    """:func:`target_loss` as an ``nn.Module`` called like upstream ``ClipLoss``.

    The targets' inputs are read from the model output (a plugin's ``octrain_forward_features``
    puts them there) and gathered across ranks. ``output_dict`` terms: ``<component>_loss``.
    Subclasses may override :meth:`prepare` to transform the inputs first.
    """

    def __init__(
        self,
        v2l: Target,
        l2v: Target | None = None,
        *,
        soft: SoftTerms | None = None,
        clip_terms: Sequence[ClipTerm] = (),
        name: str = "target",
        config=None,
        **kwargs,
    ) -> None:
        super().__init__(config, **kwargs)
        self.v2l, self.l2v = v2l, (v2l if l2v is None else l2v)
        self.soft, self.clip_terms, self.name = soft, tuple(clip_terms), name
        if not self.loss_name:
            self.loss_name = name
        self.required, self.optional = _needed((self.v2l, self.l2v), self.clip_terms)

    def prepare(self, extra: dict) -> dict[str, Tensor]:
        """The named inputs of the targets and terms, from the model output ``extra``."""
        named = {n: self.require(extra, n) for n in self.required}
        named.update((n, extra[n]) for n in self.optional if extra.get(n) is not None)
        return named

    def terms(self, image_features, text_features, logit_scale, extra) -> dict[str, Tensor]:
        named = {IMAGE: image_features, TEXT: text_features, **self.prepare(extra)}
        return self.evaluate(
            lambda layout: target_plan(
                layout, self.v2l, self.l2v, self.soft, self.clip_terms, self.name
            ),
            logit_scale,
            named,
        )

    def extra_repr(self) -> str:
        parts = [f"v2l={type(self.v2l).__name__}", f"l2v={type(self.l2v).__name__}"]
        return ", ".join(parts + [super().extra_repr()])
