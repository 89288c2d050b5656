"""SoftCLIP with samples that have no ROIs (``roi_valid``), against the direct float64 reference.

Reference semantics (``alignclip_plugins.losses.reference``, naive N x N):
* samples without ROIs have zero ROI / tag vectors, so as target columns their logit is 0;
* their own rows take the hard label: soft term = H(e_i, p_i), relation term = 0;
* the ROI-tag CLIP term is a mean over valid rows with invalid columns removed.
"""

import pytest
import torch

from alignclip_plugins.losses import functional as F
from alignclip_plugins.losses import reference as R
from alignclip_plugins.losses.softclip import GuidanceMixLoss, SoftClipLoss


def _inputs(n=12, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = [torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1) for _ in range(4)]
    valid = torch.rand(n, generator=g) > 0.3
    valid[0], valid[1] = False, True
    return feats, valid


CASES = [
    dict(beta=0.3, lam=1.0, mu=1.0, symmetric=True, divergence="kl"),
    dict(beta=0.3, lam=0.5, mu=0.0, symmetric=False, divergence="kl"),
    dict(beta=0.6, lam=1.0, mu=1.0, symmetric=True, divergence="js"),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("target_grad", [False, True])
def test_masked_softclip_matches_direct_float64(case, target_grad):
    feats, valid = _inputs()
    s = torch.tensor(7.0, dtype=torch.float64)
    fx = [f.double().requires_grad_() for f in feats]
    ours = F.softclip_loss(
        *fx, s, roi_tag_weight=0.7, roi_valid=valid, target_grad=target_grad, chunk_rows=5, **case
    )
    ref_in = [f.detach().clone().requires_grad_() for f in fx]
    ref = R.softclip(
        *ref_in, s, roi_tag_weight=0.7, roi_valid=valid, target_grad=target_grad, **case
    )
    for name in ("soft", "relation", "roi_tag"):
        assert ours[name].detach().item() == pytest.approx(
            float(ref[name].detach()), rel=1e-10, abs=1e-12
        )
    if case["mu"]:
        assert ours["clip"].detach().item() == pytest.approx(float(ref["clip"].detach()), rel=1e-10)
    sum(ours.values()).backward()
    total = sum(v for k, v in ref.items() if k in ours)
    total.backward()
    for ours_f, ref_f in zip(fx, ref_in):
        torch.testing.assert_close(ours_f.grad, ref_f.grad, rtol=1e-9, atol=1e-12)


def test_all_valid_flags_change_nothing():
    feats, _ = _inputs(seed=1)
    s = torch.tensor(10.0)
    plain = F.softclip_loss(*feats, s, roi_tag_weight=1.0)
    flagged = F.softclip_loss(*feats, s, roi_tag_weight=1.0, roi_valid=torch.ones(12, dtype=bool))
    for k in plain:
        assert flagged[k].item() == pytest.approx(plain[k].item(), rel=1e-6)


def test_invalid_sample_rows_are_hard_labels_whatever_their_features():
    """An invalid sample's ROI/tag vectors (even NaN) cannot reach the loss."""
    feats, valid = _inputs(seed=2)
    s = torch.tensor(5.0)
    a = F.softclip_loss(*feats, s, roi_tag_weight=1.0, roi_valid=valid)
    r, t = feats[2].clone(), feats[3].clone()
    r[~valid] = torch.randn(int((~valid).sum()), 16)
    t[~valid] = 3.0
    b = F.softclip_loss(feats[0], feats[1], r, t, s, roi_tag_weight=1.0, roi_valid=valid)
    for k in a:
        assert b[k].item() == pytest.approx(a[k].item(), rel=1e-6)


def test_module_losses_take_roi_valid_and_fused_kernel_agrees():
    feats, valid = _inputs(seed=3)
    s = torch.tensor(6.0)
    module = SoftClipLoss(roi_tag_weight=1.0, chunk_rows=4)
    out = module(feats[0], feats[1], s, roi_features=feats[2], tag_features=feats[3],
                 roi_valid=valid, output_dict=True)  # fmt: skip
    direct = F.softclip_loss(*feats, s, roi_tag_weight=1.0, roi_valid=valid)
    assert out["soft_loss"].item() == pytest.approx(direct["soft"].item(), rel=1e-6)
    assert out["roi_tag_loss"].item() == pytest.approx(direct["roi_tag"].item(), rel=1e-6)
    previous = F.set_kernel_mode("fused")
    try:
        fx = [f.clone().requires_grad_() for f in feats]
        fused = F.softclip_loss(*fx, s, roi_tag_weight=1.0, roi_valid=valid)
        sum(fused.values()).backward()
    finally:
        F.set_kernel_mode(previous)
    ex = [f.clone().requires_grad_() for f in feats]
    eager = F.softclip_loss(*ex, s, roi_tag_weight=1.0, roi_valid=valid)
    sum(eager.values()).backward()
    for k in eager:
        assert fused[k].item() == pytest.approx(eager[k].item(), rel=1e-5)
    for a, b in zip(fx, ex):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    mix = GuidanceMixLoss(gamma=1.0)
    out = mix(feats[0], feats[1], s, roi_features=feats[2], tag_features=feats[3],
              roi_valid=valid, output_dict=True)  # fmt: skip
    ref = F.softclip_loss(*feats, s, mu=0.0, roi_valid=valid)
    assert out["soft_ra_loss"].item() == pytest.approx(ref["soft"].item(), rel=1e-6)
