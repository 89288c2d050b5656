"""The loss configs: one default per option, ranges and choices checked with the option's name."""

import dataclasses

import pytest

from alignclip_plugins.losses.config import (
    ConfigError,
    GuidanceMixConfig,
    LabelSmoothingConfig,
    ObjectIouConfig,
    Range,
    SoftClipAlignClipConfig,
    SoftClipConfig,
    SoftTerms,
)


def test_defaults():
    assert LabelSmoothingConfig().alpha == 0.2 and ObjectIouConfig().beta == 0.5
    sc = SoftClipConfig()
    assert (sc.beta, sc.lam, sc.mu, sc.roi_tag_weight) == (0.3, 1.0, 1.0, 1.0)
    assert (sc.v2l_target, sc.l2v_target, sc.divergence) == ("R2R", "A2A", "kl")
    assert sc.relation_enhanced and sc.symmetric and not sc.target_grad
    assert GuidanceMixConfig().gamma == 0.5 and not hasattr(GuidanceMixConfig(), "mu")
    mixed = SoftClipAlignClipConfig()
    # the combined loss takes SoftCLIP's and Object-IoU's defaults, not its own copies
    assert (mixed.beta, mixed.iou_beta, mixed.roi_tag_weight) == (sc.beta, 0.5, sc.roi_tag_weight)
    assert SoftTerms() == SoftTerms(lam=sc.lam, mu=sc.mu, symmetric=True, divergence="kl")


@pytest.mark.parametrize(
    "cls,field,bad,message",
    [
        (LabelSmoothingConfig, "alpha", 1.5, r"alpha must be in \[0, 1\], got 1.5"),
        (ObjectIouConfig, "beta", 2, r"beta must be in \[0, 1\], got 2"),
        (SoftClipConfig, "beta", -1.0, r"beta must be in \[0, 1\], got -1.0"),
        (SoftClipConfig, "lam", -0.5, r"lam must be in \[0, inf\), got -0.5"),
        (SoftClipConfig, "mu", float("nan"), r"mu must be in \[0, inf\), got nan"),
        (SoftClipConfig, "roi_tag_weight", float("inf"), r"roi_tag_weight must be in"),
        (SoftClipConfig, "v2l_target", "I2I", r"v2l_target must be one of .*supervision form"),
        (SoftClipConfig, "divergence", "tv", r"divergence must be one of \('kl', 'js'\)"),
        (SoftClipConfig, "symmetric", "yes", r"symmetric must be True or False"),
        (GuidanceMixConfig, "gamma", 1.01, r"gamma must be in \[0, 1\]"),
        (SoftClipAlignClipConfig, "weight", -0.1, r"weight must be in \[0, 1\]"),
        (SoftClipAlignClipConfig, "iou_beta", 3, r"iou_beta must be in \[0, 1\]"),
    ],
)
def test_out_of_range_values_name_the_option(cls, field, bad, message):
    with pytest.raises(ConfigError, match=message) as err:
        cls(**{field: bad})
    assert err.value.fields == (field,)


def test_combinations_and_overrides():
    with pytest.raises(ConfigError, match="beta > 0") as err:
        SoftClipConfig(beta=0.0)
    assert set(err.value.fields) == {"beta", "symmetric"}
    SoftClipConfig(beta=0.0, symmetric=False)  # the KL to a one-hot target is finite
    with pytest.raises(ConfigError, match="no zero entry"):
        SoftClipAlignClipConfig(weight=0.0)
    base = SoftClipConfig(lam=0.5)
    assert SoftClipConfig.resolve(base, {"mu": 2.0}) == SoftClipConfig(lam=0.5, mu=2.0)
    assert SoftClipConfig.resolve(None, None) == SoftClipConfig()
    with pytest.raises(TypeError, match="SoftClipConfig has no option 'gamma'"):
        SoftClipConfig.resolve(None, {"gamma": 0.3})
    with pytest.raises(TypeError, match="expected a GuidanceMixConfig"):
        GuidanceMixConfig.resolve(base, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.beta = 0.4  # type: ignore[misc]
    with pytest.raises(TypeError):
        SoftClipConfig(0.3)  # keywords only


def test_range():
    unit = Range(0.0, 1.0)
    assert 0 in unit and 1.0 in unit and 0.5 in unit
    assert -1e-9 not in unit and float("nan") not in unit and True not in unit
    assert str(unit) == "[0, 1]" and str(Range(0.0)) == "[0, inf)"
    assert float("inf") not in Range(0.0)
