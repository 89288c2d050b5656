"""The plans of the losses (private): which row problems make up each loss.

Every plan reads named inputs through a :class:`._engine.Layout` (rows: this process's,
columns: global); the names of the built-in inputs are the constants below. The
formulas are in docs/methods.md; the targets are defined in :mod:`.functional`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._engine import Direction, Layout, Plan, Term
from ._kernels import (
    HardKernel,
    IouKernel,
    SmoothKernel,
    TargetCrossEntropyKernel,
    ValidHardKernel,
    kernel,
)
from ._soft_kernels import SoftKernelConfig, TargetSoftKernel, soft_kernel
from .config import (
    GuidanceMixConfig,
    LabelSmoothingConfig,
    ObjectIouConfig,
    SoftClipConfig,
    SoftTargetConfig,
    SoftTerms,
)

IMAGE, TEXT, ROI, TAG, VALID = "image", "text", "roi", "tag", "valid"
IMAGE_OBJECTS, TEXT_OBJECTS = "image_objects", "text_objects"


@dataclass(frozen=True)
class ClipTerm:
    """A hard CLIP term between two per-sample feature inputs, ``weight · CLIP(rows, cols)``.

    ``valid`` names an optional (N,) bool input: when it is given, samples flagged False
    leave the term (its mean runs over the valid rows, against the valid columns).
    SoftCLIP's ROI-tag term is ``ClipTerm("roi_tag", "roi_features", "tag_features", w_rt,
    valid="roi_valid")``.
    """

    name: str
    rows: str
    cols: str
    weight: float = 1.0
    valid: str | None = None


def _both_ways(layout: Layout, v2l: tuple[Term, ...], l2v: tuple[Term, ...]) -> tuple:
    """Image rows against text columns, and text rows against image columns."""
    return (
        Direction(layout.rows(IMAGE), layout.cols(TEXT), layout.offset, v2l, name="v2l"),
        Direction(layout.rows(TEXT), layout.cols(IMAGE), layout.offset, l2v, name="l2v"),
    )


def clip_term_directions(layout: Layout, term: ClipTerm, comp: int) -> tuple[Direction, ...]:
    """The two directions of a :class:`ClipTerm`, adding to plan component ``comp``."""
    if term.valid is not None and layout.has(term.valid):
        k = kernel(ValidHardKernel, float(term.weight))
        target = ("valid", layout.rows(term.valid), layout.cols(term.valid))
        t = Term(k, (comp,), target)
    else:
        t = Term(kernel(HardKernel, float(term.weight)), (comp,))
    a, b = term.rows, term.cols
    return (
        Direction(layout.rows(a), layout.cols(b), layout.offset, (t,), name=term.name),
        Direction(layout.rows(b), layout.cols(a), layout.offset, (t,), name=term.name),
    )


def clip_plan(layout: Layout, *, weight: float = 1.0, name: str = "clip") -> Plan:
    """Hard CLIP on ``layout``'s image/text tensors."""
    term = Term(kernel(HardKernel, float(weight)), (0,))
    return Plan((name,), _both_ways(layout, (term,), (term,)))


def label_smoothing_plan(layout: Layout, config: LabelSmoothingConfig) -> Plan:
    term = Term(kernel(SmoothKernel, float(config.alpha)), (0,))
    return Plan(("label_smoothing",), _both_ways(layout, (term,), (term,)))


def object_iou_plan(layout: Layout, config: ObjectIouConfig) -> Plan:
    if config.beta == 0:  # exactly the CLIP loss; the object sets are not needed
        return clip_plan(layout, name="object_iou")
    k = kernel(IouKernel, float(config.beta))
    v2l = Term(k, (0,), ("iou", layout.rows(IMAGE_OBJECTS), layout.cols(TEXT_OBJECTS)))
    l2v = Term(k, (0,), ("iou", layout.rows(TEXT_OBJECTS), layout.cols(IMAGE_OBJECTS)))
    return Plan(("object_iou",), _both_ways(layout, (v2l,), (l2v,)))


def _feature_target(form: str, layout: Layout) -> tuple:
    """("feat", target-row tensor, target-col tensor) of a supervision form, plus the
    valid-row flags for ROI/tag forms when the layout has them."""
    if form in ("I2I", "T2T"):  # guidance mix: image / text self-similarity
        name = IMAGE if form == "I2I" else TEXT
        return ("feat", layout.rows(name), layout.cols(name))
    src = {"R": ROI, "A": TAG}
    target = ("feat", layout.rows(src[form[0]]), layout.cols(src[form[2]]))
    return target + (layout.rows(VALID),) if layout.has(VALID) else target


def _soft_plan(
    layout: Layout,
    config: SoftTargetConfig,
    parts: Sequence[tuple[str, float, tuple[str, str]]],
    mu: float,
    roi_tag_weight: float,
) -> Plan:
    """SoftCLIP's terms for each ``(suffix, weight, (v2l form, l2v form))`` part, the CLIP
    term μ (with the first part) and the ROI-tag term: ``softclip`` and its guidance mix."""
    comps: list[str] = []
    v2l: list[Term] = []
    l2v: list[Term] = []
    for suffix, weight, forms in parts:
        if weight == 0:
            continue
        terms = SoftTerms(
            lam=config.lam * weight,
            mu=mu if not comps else 0.0,
            relation_enhanced=config.relation_enhanced,
            symmetric=config.symmetric,
            divergence=config.divergence,
            soft_weight=weight,
        )
        kern = soft_kernel(SoftKernelConfig(terms, config.beta, config.target_grad))
        idx = tuple(range(len(comps), len(comps) + len(terms.components())))
        comps += [f"{c}{suffix}" for c in terms.components()]
        v2l.append(Term(kern, idx, _feature_target(forms[0], layout), config.target_grad))
        l2v.append(Term(kern, idx, _feature_target(forms[1], layout), config.target_grad))
    dirs = _both_ways(layout, tuple(v2l), tuple(l2v))
    if roi_tag_weight:  # samples without ROIs leave the ROI-tag term
        valid = VALID if layout.has(VALID) else None
        term = ClipTerm("roi_tag", ROI, TAG, roi_tag_weight, valid)
        dirs += clip_term_directions(layout, term, len(comps))
        comps.append("roi_tag")
    return Plan(tuple(comps), dirs)


def softclip_plan(layout: Layout, config: SoftClipConfig) -> Plan:
    """SoftCLIP eq. 16 plus the ROI-tag CLIP term."""
    forms = (config.v2l_target, config.l2v_target)
    return _soft_plan(layout, config, [("", 1.0, forms)], config.mu, config.roi_tag_weight)


def guidance_mix_plan(layout: Layout, config: GuidanceMixConfig) -> Plan:
    """Fig. 4a: ``γ L(R,A) + (1-γ) L(I,T)``, ``L = L̃_soft + λ L̃_re``, no CLIP term."""
    parts = [
        ("_ra", config.gamma, (config.v2l_target, config.l2v_target)),
        ("_it", 1.0 - config.gamma, ("I2I", "T2T")),
    ]
    return _soft_plan(layout, config, parts, 0.0, 0.0)


def target_plan(
    layout: Layout,
    v2l,
    l2v,
    terms: SoftTerms | None,
    clip_terms: Sequence[ClipTerm],
    name: str,
) -> Plan:
    """A plugin's targets (:class:`.targets.Target`) against the image/text logits:
    cross-entropy (``terms=None``, one component ``name``) or SoftCLIP's terms; then the
    CLIP terms."""

    def term(target) -> Term:
        names = [n for n in target.optional_inputs if layout.has(n)]
        slots = tuple((n, layout.rows(n), layout.cols(n)) for n in (*target.inputs, *names))
        if terms is None:
            return Term(TargetCrossEntropyKernel(target), (0,), ("custom", slots))
        idx = tuple(range(len(terms.components())))
        return Term(TargetSoftKernel(target, terms), idx, ("custom", slots))

    comps = [name] if terms is None else list(terms.components())
    dirs = _both_ways(layout, (term(v2l),), (term(l2v),))
    for extra in clip_terms:
        dirs += clip_term_directions(layout, extra, len(comps))
        comps.append(extra.name)
    return Plan(tuple(comps), dirs)
