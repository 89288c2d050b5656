"""The options of each loss: one frozen dataclass per loss, the only place its defaults live.

The functions (:mod:`.functional`), the ``nn.Module`` losses and the plugins' command-line
options are all built from these. A config checks its values when it is made, and a bad
value raises :class:`ConfigError` (a ``ValueError``) naming the option and its allowed range
or choices. The range of each number is part of its field (``RANGE`` in the field's
metadata), so that the plugins check the same ranges while the options are parsed.

Equations and the choices behind each default: ``docs/methods.md``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

__all__ = [
    "DIVERGENCES",
    "SUPERVISION_FORMS",
    "ConfigError",
    "GuidanceMixConfig",
    "LabelSmoothingConfig",
    "ObjectIouConfig",
    "Range",
    "SoftClipAlignClipConfig",
    "SoftClipConfig",
    "SoftTargetConfig",
    "SoftTerms",
]

#: SoftCLIP's supervision forms (Table 9): the source of the v2l / l2v target rows.
SUPERVISION_FORMS = ("R2R", "A2A", "R2A", "A2R")
#: ``kl`` (with ``symmetric``: SoftCLIP's eq. 15) or ``js`` (the paper's unstable ablation).
DIVERGENCES = ("kl", "js")

RANGE = "range"  # field metadata: the Range of a number
CHOICES = "choices"  # field metadata: the allowed strings
WHAT = "what"  # field metadata: what the value is, for error messages


@dataclass(frozen=True)
class Range:
    """A closed interval of finite numbers, ``[low, high]`` (``high`` may be infinite)."""

    low: float
    high: float = math.inf

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return math.isfinite(value) and self.low <= value <= self.high

    def __str__(self) -> str:
        if math.isinf(self.high):
            return f"[{self.low:g}, inf)"
        return f"[{self.low:g}, {self.high:g}]"


UNIT = Range(0.0, 1.0)
WEIGHT = Range(0.0)


class ConfigError(ValueError):
    """A loss option out of its range, or options that cannot go together.

    ``fields`` names the config fields involved, so that a command line can name its options.
    """

    def __init__(self, message: str, fields: tuple[str, ...]) -> None:
        super().__init__(message)
        self.fields = fields


def option(default: Any, *, range: Range | None = None, choices=None, what: str = "") -> Any:
    """A config field with its default and its allowed values."""
    meta = {WHAT: what}
    if range is not None:
        meta[RANGE] = range
    if choices is not None:
        meta[CHOICES] = tuple(choices)
    return field(default=default, metadata=meta)


def same_as(config: type, name: str) -> Any:
    """A field with the default and allowed values of ``config``'s field ``name``."""
    f = {f.name: f for f in fields(config)}[name]
    return field(default=f.default, metadata=f.metadata)


C = TypeVar("C", bound="LossConfig")


class LossConfig:
    """Base of the loss configs: checks every field when the config is made."""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            what = f" ({f.metadata[WHAT]})" if f.metadata.get(WHAT) else ""
            if isinstance(f.default, bool) and not isinstance(value, bool):
                raise ConfigError(f"{f.name} must be True or False, got {value!r}{what}", (f.name,))
            if RANGE in f.metadata and value not in f.metadata[RANGE]:
                raise ConfigError(
                    f"{f.name} must be in {f.metadata[RANGE]}, got {value!r}{what}", (f.name,)
                )
            if CHOICES in f.metadata and value not in f.metadata[CHOICES]:
                raise ConfigError(
                    f"{f.name} must be one of {f.metadata[CHOICES]}, got {value!r}{what}",
                    (f.name,),
                )
        self.check()

    def check(self) -> None:
        """Checks that involve several fields (ranges are checked before)."""

    @classmethod
    def resolve(cls: type[C], config: C | None = None, options: dict | None = None) -> C:
        """``config`` (default: ``cls()``) with ``options`` replaced; unknown names are refused."""
        if config is None:
            config = cls()
        elif not isinstance(config, cls):
            raise TypeError(f"expected a {cls.__name__}, got {type(config).__name__}")
        if not options:
            return config
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(
                f"{cls.__name__} has no option {', '.join(map(repr, unknown))}; "
                f"its options: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(config, **options)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True, kw_only=True)
class LabelSmoothingConfig(LossConfig):
    """PyramidCLIP label smoothing (docs/methods.md, "Label smoothing").

    ``alpha``: the target mass spread evenly over a row's negatives; 0.2 as in PyramidCLIP
    and the AlignCLIP supplement (Table 2).
    """

    alpha: float = option(0.2, range=UNIT, what="label smoothing")


@dataclass(frozen=True, kw_only=True)
class ObjectIouConfig(LossConfig):
    """AlignCLIP's Object-IoU loss (docs/methods.md, "Object-IoU loss").

    ``beta``: weight of the normalised object-set IoU in the targets; 0 is the CLIP loss
    exactly. 0.5 (the papers give no value; docs/methods.md records the sweep).
    """

    beta: float = option(0.5, range=UNIT, what="Object-IoU target weight")


@dataclass(frozen=True, kw_only=True)
class SoftTargetConfig(LossConfig):
    """SoftCLIP's softened targets and soft terms, shared by ``softclip`` and its guidance mix.

    ``beta``: weight of the self-similarity in the softened targets (eq. 8-9, 0.3);
    ``lam``: λ, weight of the relation-enhanced term (eq. 16; the paper's value is lost, 1);
    ``relation_enhanced``: add that term (eq. 12-14); ``symmetric``: the symmetric KL of
    eq. 15 in place of the KL; ``v2l_target`` / ``l2v_target``: the supervision forms (Table
    9; R2R and A2A as in the paper); ``divergence``: ``kl`` or ``js``; ``target_grad``: let
    gradients flow through the targets (the paper's targets are constants: off).
    """

    beta: float = option(0.3, range=UNIT, what="self-similarity weight in the targets")
    lam: float = option(1.0, range=WEIGHT, what="relation-enhanced term weight")
    relation_enhanced: bool = True
    symmetric: bool = True
    v2l_target: str = option("R2R", choices=SUPERVISION_FORMS, what="supervision form")
    l2v_target: str = option("A2A", choices=SUPERVISION_FORMS, what="supervision form")
    divergence: str = option("kl", choices=DIVERGENCES)
    target_grad: bool = False

    def check(self) -> None:
        if self.beta == 0 and self.divergence == "kl" and self.symmetric:
            raise ConfigError(
                "the symmetric KL to a one-hot target (beta = 0) is infinite: KL(p || e_i) has "
                "log 0 terms; use beta > 0 or symmetric=False",
                ("beta", "symmetric"),
            )


@dataclass(frozen=True, kw_only=True)
class SoftClipConfig(SoftTargetConfig):
    """SoftCLIP as this project trains it (docs/methods.md, "SoftCLIP"): eq. 16 plus the
    ROI-tag CLIP term, ``L̃_soft + λ L̃_re + μ L_CLIP + w_rt CLIP(r, a)``.

    ``mu``: μ, weight of the hard CLIP term (eq. 16; the paper's value is lost, 1).
    ``roi_tag_weight``: w_rt, weight of the hard CLIP loss between the ROI and tag
    embeddings, default 1. The paper writes its objective (eq. 16) without this term, but
    it feeds each ROI-tag pair "into the dual-stream model following PyramidCLIP", which
    aligns the two contrastively; and with the targets carrying no gradient (the paper's
    choice) this term is the only one that trains the ROI branch at all, so that its
    self-similarity, the soft label, means something. One default everywhere: the
    function, the module and ``--softclip-roi-tag-weight`` compute the same loss;
    ``roi_tag_weight=0`` is eq. 16 alone.
    """

    mu: float = option(1.0, range=WEIGHT, what="hard CLIP term weight")
    roi_tag_weight: float = option(1.0, range=WEIGHT, what="ROI-tag CLIP term weight")


@dataclass(frozen=True, kw_only=True)
class GuidanceMixConfig(SoftTargetConfig):
    """SoftCLIP's Fig. 4a ablation (docs/methods.md, "Guidance mix"):
    ``γ L(R,A) + (1-γ) L(I,T)``, ``L = L̃_soft + λ L̃_re``, no CLIP term.

    ``gamma``: γ, the share of the ROI/tag guidance; 0.5 (the middle of the paper's sweep).
    """

    gamma: float = option(0.5, range=UNIT, what="share of the ROI/tag guidance")


@dataclass(frozen=True, kw_only=True)
class SoftClipAlignClipConfig(LossConfig):
    """SoftCLIP's loss with a convex mix of SoftCLIP's and Object-IoU's targets
    (docs/methods.md, "SoftCLIP + Object-IoU"; beyond the papers).

    ``weight``: ω, the SoftCLIP target's share of the mix (1 = SoftCLIP, 0.5 by default);
    ``iou_beta``: the Object-IoU target's β; the other fields are SoftCLIP's, with SoftCLIP's
    and Object-IoU's defaults. The KL divergence only, targets without gradient.
    """

    weight: float = option(0.5, range=UNIT, what="SoftCLIP target share of the mix")
    beta: float = same_as(SoftClipConfig, "beta")
    iou_beta: float = same_as(ObjectIouConfig, "beta")
    lam: float = same_as(SoftClipConfig, "lam")
    mu: float = same_as(SoftClipConfig, "mu")
    relation_enhanced: bool = same_as(SoftClipConfig, "relation_enhanced")
    symmetric: bool = same_as(SoftClipConfig, "symmetric")
    v2l_target: str = same_as(SoftClipConfig, "v2l_target")
    l2v_target: str = same_as(SoftClipConfig, "l2v_target")
    roi_tag_weight: float = same_as(SoftClipConfig, "roi_tag_weight")

    def check(self) -> None:
        if self.symmetric and (self.weight == 0 or self.beta == 0):
            raise ConfigError(
                "the symmetric KL needs a target with no zero entry: use weight > 0 and "
                "beta > 0, or symmetric=False",
                ("weight", "beta", "symmetric"),
            )


@dataclass(frozen=True, kw_only=True)
class SoftTerms:
    """How SoftCLIP compares a row's prediction ``p`` with its target ``t`` (eq. 10-16).

    ``soft``: ``D(t, p)``; ``relation``: ``λ D(t*, p*)`` on the negatives-disentangled rows
    (eq. 12; only with ``relation_enhanced`` and λ > 0); ``clip``: ``μ H(e_i, p)`` (only with
    μ > 0). ``D`` is ``KL(t || p)``, or with ``symmetric`` ``½ (KL(t || p) + KL(p || t))``
    (eq. 15), or ``js``. A row whose target has a zero entry takes the KL alone: the reverse
    KL would be infinite there. ``soft_weight`` scales ``soft`` (γ of the guidance mix, which
    also scales λ). Defaults: SoftCLIP's.
    """

    lam: float = SoftClipConfig.lam
    mu: float = SoftClipConfig.mu
    relation_enhanced: bool = SoftClipConfig.relation_enhanced
    symmetric: bool = SoftClipConfig.symmetric
    divergence: str = SoftClipConfig.divergence
    soft_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.divergence not in DIVERGENCES:
            raise ConfigError(
                f"divergence must be one of {DIVERGENCES}, got {self.divergence!r}", ("divergence",)
            )
        for name in ("lam", "mu"):
            if getattr(self, name) not in WEIGHT:
                raise ConfigError(
                    f"{name} must be in {WEIGHT}, got {getattr(self, name)!r}", (name,)
                )

    @property
    def relation(self) -> bool:
        return self.relation_enhanced and self.lam != 0

    def components(self) -> tuple[str, ...]:
        """Names of the terms, in order: ``soft``, then ``relation`` and ``clip`` if present."""
        return ("soft",) + ("relation",) * self.relation + ("clip",) * (self.mu != 0)
