"""The functional losses against the direct float64 reference (alignclip_plugins.losses.reference)."""

import math

import pytest
import torch
from open_clip.loss import ClipLoss

from alignclip_plugins.losses import functional as Fn
from alignclip_plugins.losses import reference as R

F64 = torch.float64


def feats(n, d, *, seed, dtype=F64, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(
        torch.randn(n, d, generator=g, dtype=dtype) * spread, dim=1
    )


def four(n, d, seed=0, dtype=F64):
    return [feats(n, d, seed=seed + k, dtype=dtype) for k in range(4)]


def grads_of(fn, inputs):
    """(total value, grads) of fn(*inputs) (dict outputs are summed)."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    total = sum(out.values()) if isinstance(out, dict) else out
    gs = torch.autograd.grad(total, leaves, allow_unused=True)
    return out, [torch.zeros_like(x) if g is None else g for g, x in zip(gs, leaves)]


def assert_dicts_close(got, want, rtol, atol):
    assert set(got) == set(want), (sorted(got), sorted(want))
    for k in want:
        torch.testing.assert_close(got[k].double(), want[k].double(), rtol=rtol, atol=atol, msg=k)


def assert_grads_close(got, want, rtol, atol):
    for i, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(a.double(), b.double(), rtol=rtol, atol=atol, msg=f"input {i}")


SOFTCLIP_OPTIONS = [
    {},
    {"symmetric": False},
    {"relation_enhanced": False},
    {"lam": 0.5, "mu": 2.0},
    {"mu": 0.0},
    {"divergence": "js"},
    {"divergence": "js", "relation_enhanced": False},
    {"target_grad": True},
    {"target_grad": True, "symmetric": False},
    {"v2l_target": "A2A", "l2v_target": "R2R"},
    {"v2l_target": "R2A", "l2v_target": "A2R"},
    {"v2l_target": "A2R", "l2v_target": "R2A"},
    {"beta": 1.0},
    {"beta": 0.05},
    {"roi_tag_weight": 0.7},
]


@pytest.mark.parametrize("n,d", [(2, 3), (5, 8), (11, 4)])
@pytest.mark.parametrize(
    "opts", SOFTCLIP_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
def test_softclip_matches_reference_float64(n, d, opts):
    inputs = four(n, d, seed=n) + [torch.tensor(6.0, dtype=F64)]
    got, got_g = grads_of(lambda *a: Fn.softclip_loss(*a, chunk_rows=2, **opts), inputs)
    want, want_g = grads_of(lambda *a: R.softclip(*a, **opts), inputs)
    assert_dicts_close(got, want, 1e-10, 1e-12)
    assert_grads_close(got_g, want_g, 1e-9, 1e-12)


@pytest.mark.parametrize("n,d", [(2, 5), (9, 7), (33, 16)])
def test_float32_matches_float64_reference(n, d):
    """float32 inputs: values and gradients to float32 precision, with one or many blocks."""
    x32 = four(n, d, seed=3, dtype=torch.float32)
    inputs32 = x32 + [torch.tensor(20.0)]
    inputs64 = [x.double() for x in inputs32]
    for chunk in (None, 4):
        got, got_g = grads_of(
            lambda *a, c=chunk: Fn.softclip_loss(*a, chunk_rows=c, roi_tag_weight=1.0), inputs32
        )
        want, want_g = grads_of(lambda *a: R.softclip(*a, roi_tag_weight=1.0), inputs64)
        for k in want:
            assert got[k].dtype == torch.float32
        assert_dicts_close(got, want, 2e-5, 2e-5)
        assert_grads_close(got_g, want_g, 2e-4, 2e-5)


@pytest.mark.parametrize("n", [2, 6, 13])
@pytest.mark.parametrize("gamma", [0.0, 0.35, 1.0])
@pytest.mark.parametrize(
    "opts", [{}, {"target_grad": True}, {"divergence": "js"}, {"symmetric": False, "lam": 2.0}]
)
def test_guidance_mix_matches_reference(n, gamma, opts):
    inputs = four(n, 6, seed=20 + n) + [torch.tensor(4.0, dtype=F64)]
    got, got_g = grads_of(
        lambda *a: Fn.guidance_mix_loss(*a, gamma=gamma, chunk_rows=3, **opts), inputs
    )
    want, want_g = grads_of(lambda *a: R.guidance_mix(*a, gamma=gamma, **opts), inputs)
    assert_dicts_close(got, want, 1e-10, 1e-12)
    assert_grads_close(got_g, want_g, 1e-9, 1e-12)


@pytest.mark.parametrize("n,d,alpha", [(2, 3, 0.2), (7, 5, 0.0), (10, 12, 0.5), (4, 2, 1.0)])
def test_label_smoothing_matches_reference(n, d, alpha):
    v, t = feats(n, d, seed=1), feats(n, d, seed=2)
    inputs = [v, t, torch.tensor(9.0, dtype=F64)]
    got, got_g = grads_of(lambda *a: Fn.label_smoothing_loss(*a, alpha=alpha, chunk_rows=3), inputs)
    want, want_g = grads_of(lambda *a: R.label_smoothing(*a, alpha), inputs)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert_grads_close(got_g, want_g, 1e-9, 1e-12)


def test_clip_paths_equal_upstream_cliploss():
    v, t = feats(12, 8, seed=4, dtype=torch.float32), feats(12, 8, seed=5, dtype=torch.float32)
    s = torch.tensor(30.0)
    for fn in (
        lambda v, t, s: Fn.clip_loss(v, t, s, chunk_rows=5),
        lambda v, t, s: Fn.label_smoothing_loss(v, t, s, alpha=0.0),
        lambda v, t, s: Fn.object_iou_loss(
            v,
            t,
            s,
            torch.zeros(12, 1, dtype=torch.long),
            torch.zeros(12, 1, dtype=torch.long),
            beta=0.0,
        ),
        lambda v, t, s: Fn.softclip_loss(
            v, t, v, t, s, beta=0.0, symmetric=False, relation_enhanced=False, mu=0.0
        )["soft"],
    ):
        got, got_g = grads_of(fn, [v, t, s])
        want, want_g = grads_of(lambda v, t, s: ClipLoss()(v, t, s), [v, t, s])
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        assert_grads_close(got_g, want_g, 1e-5, 1e-6)


def random_sets(n, m, vocab, seed, p_pad=0.3):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n, m), generator=g)
    return ids.masked_fill(torch.rand(n, m, generator=g) < p_pad, -1)


IOU_CASES = {
    "random": lambda n: (random_sets(n, 4, 7, 1), random_sets(n, 3, 7, 2)),
    "empty_sets": lambda n: (
        random_sets(n, 3, 5, 3).index_fill(0, torch.tensor([0]), -1),
        random_sets(n, 2, 5, 4).index_fill(0, torch.tensor([0, n - 1]), -1),
    ),
    "all_empty": lambda n: (torch.full((n, 2), -1), torch.full((n, 3), -1)),
    "zero_width": lambda n: (torch.zeros(n, 0, dtype=torch.long), random_sets(n, 2, 4, 5)),
    "duplicate_ids_in_a_row": lambda n: (torch.tensor([[3, 3, 1]] * n), torch.tensor([[1, 1]] * n)),
    "duplicate_sets": lambda n: (torch.tensor([[1, 2]] * n), torch.tensor([[2, 1, -1]] * n)),
    "all_share_one_object": lambda n: (
        torch.cat([torch.full((n, 1), 9), random_sets(n, 2, 50, 6)], 1),
        torch.cat([random_sets(n, 2, 50, 7), torch.full((n, 1), 9)], 1),
    ),
    "large_ids": lambda n: (random_sets(n, 3, 4, 8) * 10**12, random_sets(n, 3, 4, 9) * 10**12),
}


@pytest.mark.parametrize("case", sorted(IOU_CASES))
@pytest.mark.parametrize("n", [2, 7])
def test_object_iou_matrix(case, n):
    a, b = IOU_CASES[case](n)
    got = Fn.object_iou_matrix(a, b)
    assert got.shape == (n, n) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), R.iou_matrix(a, b), rtol=0, atol=1e-7)


def test_object_iou_matrix_rectangular_and_known_values():
    a = torch.tensor([[0, 1, 2], [5, -1, -1], [-1, -1, -1]])
    b = torch.tensor([[1, 2], [5, 6], [7, -1], [-1, -1]])
    want = torch.tensor(
        [[2 / 3, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float32
    )
    torch.testing.assert_close(Fn.object_iou_matrix(a, b), want)


@pytest.mark.parametrize("case", sorted(IOU_CASES))
@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_object_iou_loss_matches_reference(case, beta):
    n = 6
    a, b = IOU_CASES[case](n)
    v, t = feats(n, 5, seed=11), feats(n, 5, seed=12)
    inputs = [v, t, torch.tensor(8.0, dtype=F64)]
    got, got_g = grads_of(lambda *x: Fn.object_iou_loss(*x, a, b, beta=beta, chunk_rows=4), inputs)
    want, want_g = grads_of(lambda *x: R.object_iou(*x, a, b, beta=beta), inputs)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert_grads_close(got_g, want_g, 1e-9, 1e-12)


def test_object_iou_beta_zero_is_clip_exactly():
    v, t = feats(9, 4, seed=1, dtype=torch.float32), feats(9, 4, seed=2, dtype=torch.float32)
    s = torch.tensor(14.0)
    a, b = IOU_CASES["all_share_one_object"](9)
    got = Fn.object_iou_loss(v, t, s, a, b, beta=0.0)
    assert torch.equal(got, Fn.clip_loss(v, t, s))
    torch.testing.assert_close(got, ClipLoss()(v, t, s), rtol=1e-6, atol=1e-6)


def test_neg_disentangle():
    p = torch.softmax(torch.randn(5, 5, dtype=F64), 1)
    got = Fn.neg_disentangle(p)
    torch.testing.assert_close(got, R.neg_disentangle(p))
    assert got.shape == (5, 4)
    torch.testing.assert_close(got.sum(1), torch.ones(5, dtype=F64))
    assert torch.equal(Fn.neg_disentangle(torch.eye(2)[[1, 0]]), torch.ones(2, 1))
    with pytest.raises(ValueError):
        Fn.neg_disentangle(torch.ones(2, 3))


def test_relation_term_is_beta_independent_and_beta_zero_is_the_limit():
    """The disentangled softened target is q*_i whatever β > 0; β = 0 takes that limit."""
    inputs = four(6, 4, seed=40) + [torch.tensor(5.0, dtype=F64)]
    rel = [
        Fn.softclip_loss(*inputs, beta=b, symmetric=False)["relation"]
        for b in (0.0, 1e-9, 0.3, 1.0)
    ]
    for r in rel[1:]:
        torch.testing.assert_close(r, rel[0], rtol=1e-12, atol=1e-12)
    small = R.softclip(*inputs, beta=1e-9, symmetric=False)
    got = Fn.softclip_loss(*inputs, beta=0.0, symmetric=False)
    torch.testing.assert_close(got["soft"], small["soft"], rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(got["soft"], R.clip(*inputs[:2], inputs[4]), rtol=1e-12, atol=1e-12)


def test_symmetric_kl_with_one_hot_target_is_rejected():
    inputs = four(3, 4) + [torch.tensor(5.0, dtype=F64)]
    with pytest.raises(ValueError, match="beta > 0"):
        Fn.softclip_loss(*inputs, beta=0.0)
    with pytest.raises(ValueError, match="supervision form"):
        Fn.softclip_loss(*inputs, v2l_target="X2Y")
    with pytest.raises(ValueError, match="divergence"):
        Fn.softclip_loss(*inputs, divergence="tv")
    with pytest.raises(ValueError, match="gamma"):
        Fn.guidance_mix_loss(*inputs, gamma=1.5)


def test_single_sample_batch_has_no_negatives():
    inputs = four(1, 4) + [torch.tensor(5.0, dtype=F64)]
    out = Fn.softclip_loss(*inputs)
    assert all(v.item() == 0.0 for v in out.values())
    assert Fn.label_smoothing_loss(*inputs[:2], inputs[4]).item() == 0.0


def test_confident_logits_stay_exact_in_float32():
    """s = 100 and near-duplicate pairs: p_ii rounds to 1 in float32, the relation term must not."""
    n, d = 16, 32
    v = feats(n, d, seed=7, dtype=torch.float32)
    t = torch.nn.functional.normalize(v + 0.01 * feats(n, d, seed=8, dtype=torch.float32), dim=1)
    r = torch.nn.functional.normalize(v + 0.3 * feats(n, d, seed=9, dtype=torch.float32), dim=1)
    a = torch.nn.functional.normalize(t + 0.3 * feats(n, d, seed=10, dtype=torch.float32), dim=1)
    s = torch.tensor(100.0)
    inputs = [v, t, r, a, s]
    got, got_g = grads_of(lambda *x: Fn.softclip_loss(*x), inputs)
    want, want_g = grads_of(lambda *x: R.softclip(*x), [x.double() for x in inputs])
    assert all(torch.isfinite(x).all() for x in list(got.values()) + got_g)
    assert want["relation"] > 0.1  # the disentangled rows carry real information
    assert_dicts_close(got, want, 1e-4, 1e-5)
    assert_grads_close(got_g, want_g, 1e-3, 1e-5)


def test_unequal_component_weights_recompute_exact_gradients():
    inputs = four(7, 5, seed=50) + [torch.tensor(6.0, dtype=F64)]

    def combo(out):
        return 0.3 * out["soft"] - 2.0 * out["relation"] + out["clip"] + 0.5 * out["roi_tag"]

    _, got_g = grads_of(
        lambda *x: combo(Fn.softclip_loss(*x, chunk_rows=3, roi_tag_weight=1.0)), inputs
    )
    _, want_g = grads_of(lambda *x: combo(R.softclip(*x, roi_tag_weight=1.0)), inputs)
    assert_grads_close(got_g, want_g, 1e-9, 1e-12)


def test_no_grad_evaluation_matches_and_skips_autograd():
    inputs = four(5, 4, seed=60) + [torch.tensor(6.0, dtype=F64)]
    with torch.no_grad():
        out = Fn.softclip_loss(*[x.requires_grad_() for x in inputs])
    assert all(v.grad_fn is None for v in out.values())
    assert_dicts_close(out, R.softclip(*[x.detach() for x in inputs]), 1e-10, 1e-12)


def test_targets_helpers_match_reference():
    r, a = feats(6, 4, seed=1), feats(6, 4, seed=2)
    s = torch.tensor(3.0, dtype=F64)
    v2l, l2v = Fn.softclip_targets(r, a, s, beta=0.4, v2l_target="R2A", l2v_target="A2A")
    eye = torch.eye(6, dtype=F64)
    torch.testing.assert_close(v2l, 0.6 * eye + 0.4 * R.softmax_rows(r, a, s))
    torch.testing.assert_close(l2v, 0.6 * eye + 0.4 * R.softmax_rows(a, a, s))
    y, _ = Fn.label_smoothing_targets(4, 0.3)
    assert math.isclose(y[0, 1].item(), 0.1, rel_tol=1e-6) and math.isclose(
        y[0, 0].item(), 0.7, rel_tol=1e-6
    )


def test_rejects_bad_shapes():
    v, t = feats(4, 3, seed=1), feats(5, 3, seed=2)
    with pytest.raises(ValueError, match="same batch size"):
        Fn.clip_loss(v, t, torch.tensor(1.0))
    with pytest.raises(TypeError, match="integer"):
        Fn.object_iou_matrix(torch.ones(2, 2), torch.ones(2, 2))


@pytest.fixture
def fused_kernels():
    """The compile-friendly kernels (what runs compiled on CUDA), evaluated eagerly."""
    previous = Fn.set_kernel_mode("fused")
    yield
    Fn.set_kernel_mode(previous)


@pytest.mark.parametrize("n", [2, 9])
@pytest.mark.parametrize(
    "opts",
    [{}, {"symmetric": False}, {"lam": 0.5, "mu": 0.0}, {"beta": 1.0, "relation_enhanced": False}],
    ids=["default", "kl", "lam-mu", "beta1"],
)
def test_fused_kernels_match_reference(fused_kernels, n, opts):
    inputs = four(n, 6, seed=70 + n) + [torch.tensor(7.0, dtype=F64)]
    got, got_g = grads_of(
        lambda *a: Fn.softclip_loss(*a, chunk_rows=4, roi_tag_weight=0.5, **opts), inputs
    )
    want, want_g = grads_of(lambda *a: R.softclip(*a, roi_tag_weight=0.5, **opts), inputs)
    assert_dicts_close(got, want, 1e-10, 1e-12)
    assert_grads_close(got_g, want_g, 1e-9, 1e-12)
    a, b = IOU_CASES["empty_sets"](n)
    for fn, ref in [
        (
            lambda *x: Fn.label_smoothing_loss(*x, alpha=0.3, chunk_rows=4),
            lambda *x: R.label_smoothing(*x, 0.3),
        ),
        (
            lambda *x: Fn.object_iou_loss(*x, a, b, beta=0.6, chunk_rows=4),
            lambda *x: R.object_iou(*x, a, b, beta=0.6),
        ),
    ]:
        got, got_g = grads_of(fn, [inputs[0], inputs[1], inputs[4]])
        want, want_g = grads_of(ref, [inputs[0], inputs[1], inputs[4]])
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        assert_grads_close(got_g, want_g, 1e-9, 1e-12)


def test_fused_kernels_confident_rows(fused_kernels):
    test_confident_logits_stay_exact_in_float32()


def test_kernel_mode_validation():
    with pytest.raises(ValueError, match="kernel mode"):
        Fn.set_kernel_mode("fast")
