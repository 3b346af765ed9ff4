"""CCSL / CSSL (our definitions, METHODS.md section 4): golden values by hand and a loop reference."""
import math

import pytest
import torch
import torch.nn.functional as F

from byol_bench.losses.cross_similarity import ccsl_loss, cross_similarity_loss, cssl_loss, pseudo_labels


def softplus(x):
    return math.log1p(math.exp(x))


def t(rows, dtype=torch.float64):
    return torch.tensor(rows, dtype=dtype)


# ---- pseudo_labels ----------------------------------------------------------------------------

def test_pseudo_labels_3x3_golden():
    z1 = t([[1.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    z2 = t([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
    # S = [[1, 0, .6], [.6, .8, 1], [0, 1, .8]]; the diagonal is excluded.
    pos, neg = pseudo_labels(z1, z2)
    assert pos.tolist() == [[False, False, False], [False, False, True], [False, True, False]]
    assert neg.tolist() == [[False, True, False], [False, False, False], [True, False, False]]
    assert pos.dtype == torch.bool and neg.dtype == torch.bool


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pseudo_label_thresholds_are_inclusive(dtype):
    # cos([1, 0], [4, 3]) = 0.8 and cos([1, 0], [3, 4]) = 0.6, exactly in floating point.
    z1 = t([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype)
    z2 = t([[1.0, 0.0], [4.0, 3.0], [3.0, 4.0]], dtype)
    pos, neg = pseudo_labels(z1, z2, theta_pos=0.8, theta_neg=0.6)
    assert pos[0].tolist() == [False, True, False]       # S = 0.8 >= theta+
    assert neg[0].tolist() == [False, False, True]       # S = 0.6 <= theta-
    pos, neg = pseudo_labels(z1, z2, theta_pos=0.8 + 1e-6, theta_neg=0.6 - 1e-6)
    assert not pos[0].any() and not neg[0].any()


def test_pseudo_labels_exclude_self_column_with_offset():
    z = t([[1.0, 0.0]] * 5)                         # every pair is S = 1
    pos, neg = pseudo_labels(z[2:4], z, self_offset=2)
    assert pos.tolist() == [[True, True, False, True, True], [True, True, True, False, True]]
    assert not neg.any()


def test_pseudo_labels_have_no_autograd_history_and_validate():
    z = torch.randn(3, 4, requires_grad=True)
    pos, neg = pseudo_labels(z, z)
    assert not pos.requires_grad and not (pos & neg).any()
    with pytest.raises(ValueError):
        pseudo_labels(z, z, theta_pos=0.5, theta_neg=0.5)
    with pytest.raises(ValueError):
        pseudo_labels(z, z, self_offset=1)


# ---- ccsl_loss / cssl_loss on a hand-made 3x3 ------------------------------------------------

POS = torch.tensor([[False, False, False], [False, False, True], [False, True, False]])
NEG = torch.tensor([[False, True, False], [False, False, False], [True, False, False]])
C = t([[0.9, 0.5, -0.2], [0.1, 0.3, 0.4], [-0.3, 0.7, 0.0]])


@pytest.mark.parametrize("margin, expected", [
    (0.0, 0.7),     # pos: ((1 - .4) + (1 - .7)) / 2 = .45; neg: (max(0, .5) + max(0, -.3)) / 2 = .25
    (0.4, 0.5),     # neg: (max(0, .1) + 0) / 2 = .05
    (-0.5, 1.05),   # neg: (1.0 + 0.2) / 2 = .6
])
def test_ccsl_golden_3x3(margin, expected):
    assert ccsl_loss(C, POS, NEG, margin=margin).item() == pytest.approx(expected, abs=1e-12)


def test_cssl_golden_3x3():
    # t = 0.1: positives have logits 4 and 7, negatives 5 and -3.
    expected = (softplus(-4) + softplus(-7) + softplus(5) + softplus(-3)) / 4
    assert expected == pytest.approx(1.268591023608611)
    assert cssl_loss(C, POS, NEG).item() == pytest.approx(expected, abs=1e-12)
    # Temperature and bias: logits C / 0.5 + 1 -> pos 1.8, 2.4; neg 2.0, 0.4.
    expected = (softplus(-1.8) + softplus(-2.4) + softplus(2.0) + softplus(0.4)) / 4
    assert cssl_loss(C, POS, NEG, temperature=0.5, bias=1.0).item() == pytest.approx(expected, abs=1e-12)


def test_ccsl_one_sided_label_sets():
    no = torch.zeros_like(POS)
    assert ccsl_loss(C, POS, no).item() == pytest.approx(0.45)
    assert ccsl_loss(C, no, NEG).item() == pytest.approx(0.25)
    assert cssl_loss(C, POS, no).item() == pytest.approx((softplus(-4) + softplus(-7)) / 2)


@pytest.mark.parametrize("loss_fn", [ccsl_loss, cssl_loss])
def test_empty_label_sets_give_zero_and_a_finite_gradient(loss_fn):
    sim = C.clone().requires_grad_()
    no = torch.zeros_like(POS)
    loss = loss_fn(sim, no, no)
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert torch.equal(sim.grad, torch.zeros_like(C))


def test_losses_reject_bad_shapes():
    with pytest.raises(ValueError):
        ccsl_loss(C, POS[:2], NEG)
    with pytest.raises(ValueError):
        cssl_loss(C, POS, NEG[:, :2])
    with pytest.raises(ValueError):
        cssl_loss(C, POS, NEG, temperature=0.0)


# ---- cross_similarity_loss: both view pairs, summed ----------------------------------------------

def _two_by_two():
    z1 = t([[1.0, 0.0], [0.0, 1.0]])
    z2 = t([[1.0, 0.0], [1.0, 0.0]])
    p1 = t([[0.0, 1.0], [1.0, 1.0]]).requires_grad_()
    p2 = t([[1.0, 0.0], [-1.0, 0.0]]).requires_grad_()
    return p1, p2, z1, z2


def test_cross_similarity_ccsl_2x2_golden():
    # Direction 1, S = cos(z1_i, z2_j): (0,1) = 1 -> pos, (1,0) = 0 -> neg.
    #   C = cos(p1_i, z2_j): (0,1) = 0 -> 1 - 0 = 1;  (1,0) = 1/sqrt2 -> max(0, .707) = .707
    # Direction 2, S = cos(z2_i, z1_j): (0,1) = 0 -> neg, (1,0) = 1 -> pos.
    #   C = cos(p2_i, z1_j): (0,1) = 0 -> 0;          (1,0) = -1 -> 1 - (-1) = 2
    p1, p2, z1, z2 = _two_by_two()
    loss, stats = cross_similarity_loss("ccsl", p1, p2, z1, z2)
    assert loss.item() == pytest.approx(3.0 + 1.0 / math.sqrt(2.0), abs=1e-12)
    assert {k: float(v) for k, v in stats.items()} == {"pos_fraction": 0.5, "neg_fraction": 0.5}
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 and not v.requires_grad for v in stats.values())


def test_cross_similarity_cssl_2x2_golden():
    p1, p2, z1, z2 = _two_by_two()
    loss, _ = cross_similarity_loss("cssl", p1, p2, z1, z2)
    # Direction 1: pos logit 0, neg logit 10/sqrt2; direction 2: neg logit 0, pos logit -10.
    expected = (math.log(2) + softplus(10 / math.sqrt(2))) / 2 + (math.log(2) + softplus(10)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert loss.item() == pytest.approx(9.229128268558158, abs=1e-12)


def test_cross_similarity_all_ignored_is_zero_and_backward_works():
    p1, p2, _, _ = _two_by_two()
    z = t([[1.0, 0.0], [3.0, 4.0]])               # off-diagonal S = 0.6: neither label
    for kind in ("ccsl", "cssl"):
        loss, stats = cross_similarity_loss(kind, p1, p2, z, z)
        assert loss.item() == 0.0
        assert {k: float(v) for k, v in stats.items()} == {"pos_fraction": 0.0, "neg_fraction": 0.0}
        loss.backward()
        assert torch.equal(p1.grad, torch.zeros_like(p1)) and torch.isfinite(p2.grad).all()
        p1.grad = p2.grad = None
    # A batch of one has no off-diagonal pair at all.
    loss, stats = cross_similarity_loss("ccsl", p1[:1], p2[:1], z[:1], z[:1])
    assert loss.item() == 0.0 and {k: float(v) for k, v in stats.items()} == {"pos_fraction": 0.0, "neg_fraction": 0.0}


def test_cross_similarity_gradient_reaches_predictions_only():
    g = torch.Generator().manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(6, 3, generator=g).requires_grad_() for _ in range(4))
    loss, _ = cross_similarity_loss("ccsl", p1, p2, z1, z2, theta_pos=0.3, theta_neg=-0.3)
    loss.backward()
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0
    assert z1.grad is None and z2.grad is None


def test_cross_similarity_rejects_unknown_kind():
    p1, p2, z1, z2 = _two_by_two()
    with pytest.raises(ValueError):
        cross_similarity_loss("ccssl", p1, p2, z1, z2)


# ---- brute-force double-loop reference --------------------------------------------------------

def _cos(a, b):
    return F.cosine_similarity(a, b, dim=0, eps=1e-12)


def reference_direction(kind, p, z_rows, z_cols, theta_pos, theta_neg, offset, margin, temperature, bias):
    pos_terms, neg_terms = [], []
    for i in range(p.shape[0]):
        for j in range(z_cols.shape[0]):
            if j == i + offset:
                continue
            s = _cos(z_rows[i], z_cols[j]).item()
            c = _cos(p[i], z_cols[j])
            if s >= theta_pos:
                pos_terms.append(1 - c if kind == "ccsl" else F.softplus(-(c / temperature + bias)))
            elif s <= theta_neg:
                neg_terms.append(torch.clamp(c - margin, min=0) if kind == "ccsl"
                                 else F.softplus(c / temperature + bias))
    zero = p.sum() * 0
    if kind == "ccsl":
        mean = lambda terms: torch.stack(terms).mean() if terms else zero
        return mean(pos_terms) + mean(neg_terms), len(pos_terms), len(neg_terms)
    terms = pos_terms + neg_terms
    return (torch.stack(terms).mean() if terms else zero), len(pos_terms), len(neg_terms)


def _two_clustered_views(n, dim, generator, noise):
    """Target projections of two views of n images from 3 classes: both label sets occur."""
    centers = torch.randn(3, dim, generator=generator, dtype=torch.float64)
    labels = torch.arange(n) % 3
    return tuple(centers[labels] + noise * torch.randn(n, dim, generator=generator, dtype=torch.float64)
                 for _ in range(2))


@pytest.mark.parametrize("kind", ["ccsl", "cssl"])
@pytest.mark.parametrize("seed, margin, temperature, bias, theta_pos, theta_neg", [
    (0, 0.0, 0.1, 0.0, 0.8, 0.2),
    (1, 0.1, 0.5, -1.0, 0.8, 0.2),
    (2, -0.2, 0.2, 0.5, 0.5, -0.1),
])
def test_cross_similarity_matches_double_loop(kind, seed, margin, temperature, bias, theta_pos, theta_neg):
    g = torch.Generator().manual_seed(seed)
    n, dim = 9, 5
    z1, z2 = _two_clustered_views(n, dim, g, 0.3)
    p1 = torch.randn(n, dim, generator=g, dtype=torch.float64).requires_grad_()
    p2 = torch.randn(n, dim, generator=g, dtype=torch.float64).requires_grad_()
    kw = dict(theta_pos=theta_pos, theta_neg=theta_neg, margin=margin, temperature=temperature, bias=bias)
    loss, stats = cross_similarity_loss(kind, p1, p2, z1, z2, **kw)
    ref1, pos1, neg1 = reference_direction(kind, p1, z1, z2, theta_pos, theta_neg, 0, margin, temperature, bias)
    ref2, pos2, neg2 = reference_direction(kind, p2, z2, z1, theta_pos, theta_neg, 0, margin, temperature, bias)
    assert pos1 + pos2 > 0 and neg1 + neg2 > 0          # both label sets are exercised
    torch.testing.assert_close(loss, ref1 + ref2, rtol=1e-12, atol=1e-12)
    pairs = 2 * n * (n - 1)
    assert float(stats["pos_fraction"]) == pytest.approx((pos1 + pos2) / pairs)
    assert float(stats["neg_fraction"]) == pytest.approx((neg1 + neg2) / pairs)
    got = torch.autograd.grad(loss, (p1, p2))
    want = torch.autograd.grad(ref1 + ref2, (p1, p2))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["ccsl", "cssl"])
def test_cross_similarity_local_rows_against_global_columns(kind):
    """The DDP case: local rows, gathered columns, self column at i + offset."""
    g = torch.Generator().manual_seed(7)
    n, local, offset, dim = 12, 4, 4, 5
    z1_all, z2_all = _two_clustered_views(n, dim, g, 0.3)
    p1 = torch.randn(local, dim, generator=g, dtype=torch.float64).requires_grad_()
    p2 = torch.randn(local, dim, generator=g, dtype=torch.float64).requires_grad_()
    rows = slice(offset, offset + local)
    loss, stats = cross_similarity_loss(kind, p1, p2, z1_all[rows], z2_all[rows], z1_all, z2_all,
                                        self_offset=offset)
    ref1, pos1, neg1 = reference_direction(kind, p1, z1_all[rows], z2_all, 0.8, 0.2, offset, 0.0, 0.1, 0.0)
    ref2, pos2, neg2 = reference_direction(kind, p2, z2_all[rows], z1_all, 0.8, 0.2, offset, 0.0, 0.1, 0.0)
    assert pos1 + pos2 > 0 and neg1 + neg2 > 0
    torch.testing.assert_close(loss, ref1 + ref2, rtol=1e-12, atol=1e-12)
    assert float(stats["pos_fraction"]) == pytest.approx((pos1 + pos2) / (2 * local * (n - 1)))
    assert float(stats["neg_fraction"]) == pytest.approx((neg1 + neg2) / (2 * local * (n - 1)))
