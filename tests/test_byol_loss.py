"""Golden values for BYOL's loss scale, its closed-form gradient, the EMA schedule and update."""
import math

import pytest
import torch
from torch import nn

from byol_bench.losses.byol import byol_loss_grad_wrt_p, byol_pair_loss, symmetric_byol_loss
from byol_bench.losses.ema import cosine_ema_schedule, update_ema


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


# ---- byol_pair_loss -------------------------------------------------------------------------

@pytest.mark.parametrize("p, z, expected", [
    ([1.0, 0.0], [0.0, 1.0], 2.0),     # orthogonal
    ([1.0, 0.0], [1.0, 0.0], 0.0),     # identical
    ([1.0, 0.0], [-1.0, 0.0], 4.0),    # opposite
    ([3.0, 4.0], [1.0, 0.0], 0.8),     # cos = 0.6 -> 2 - 1.2
    ([1.0, 1.0], [1.0, 0.0], 2.0 - math.sqrt(2.0)),
])
def test_pair_loss_golden(p, z, expected):
    assert byol_pair_loss(t([p]), t([z])).item() == pytest.approx(expected, abs=1e-12)


def test_pair_loss_is_per_sample_and_scale_invariant():
    p = t([[1.0, 0.0], [2.0, 0.0], [0.0, 5.0]])
    z = t([[0.0, 3.0], [7.0, 0.0], [0.0, -0.1]])
    loss = byol_pair_loss(p, z)
    assert loss.shape == (3,)
    torch.testing.assert_close(loss, t([2.0, 0.0, 4.0]))
    torch.testing.assert_close(byol_pair_loss(10 * p, 0.01 * z), loss)


def test_pair_loss_equals_squared_distance_of_unit_vectors():
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)
    expected = ((p / p.norm(dim=1, keepdim=True) - z / z.norm(dim=1, keepdim=True)) ** 2).sum(1)
    torch.testing.assert_close(byol_pair_loss(p, z), expected)


def test_pair_loss_zero_vector_has_no_nan():
    p = torch.zeros(1, 3, requires_grad=True)
    z = torch.tensor([[1.0, 2.0, 3.0]])
    loss = byol_pair_loss(p, z)
    assert loss.item() == 2.0
    loss.sum().backward()
    assert torch.isfinite(p.grad).all()


def test_pair_loss_shape_mismatch():
    with pytest.raises(ValueError):
        byol_pair_loss(torch.ones(2, 3), torch.ones(2, 4))


# ---- symmetric_byol_loss: SUM of directions, MEAN over the batch -------------------------------

def test_symmetric_loss_golden_sum_of_directions_mean_over_batch():
    # Sample 0: l(p1, z2) = 2 (orthogonal), l(p2, z1) = 4 (opposite)  -> 6
    # Sample 1: l(p1, z2) = 0 (same),       l(p2, z1) = 2 (orthogonal) -> 2
    p1 = t([[1.0, 0.0], [0.0, 2.0]])
    z2 = t([[0.0, 1.0], [0.0, 1.0]])
    p2 = t([[1.0, 0.0], [1.0, 0.0]])
    z1 = t([[-3.0, 0.0], [0.0, 1.0]])
    loss, per_sample = symmetric_byol_loss(p1, p2, z1, z2)
    torch.testing.assert_close(per_sample, t([6.0, 2.0]))
    assert loss.item() == pytest.approx(4.0)   # (6 + 2) / 2: not 2.0 (mean of directions)


def test_symmetric_loss_of_perfect_predictions_is_zero_and_worst_is_eight():
    z = t([[1.0, 2.0], [-1.0, 0.5], [0.0, 1.0]])
    loss, _ = symmetric_byol_loss(z, 2 * z, z, z)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    loss, per_sample = symmetric_byol_loss(-z, -z, z, z)
    assert loss.item() == pytest.approx(8.0)
    torch.testing.assert_close(per_sample, t([8.0, 8.0, 8.0]))


def test_symmetric_loss_pairs_p1_with_z2():
    p1, p2 = t([[1.0, 0.0]]), t([[0.0, 1.0]])
    z1, z2 = t([[0.0, 1.0]]), t([[1.0, 0.0]])
    assert symmetric_byol_loss(p1, p2, z1, z2)[0].item() == pytest.approx(0.0, abs=1e-12)
    assert symmetric_byol_loss(p1, p2, z2, z1)[0].item() == pytest.approx(4.0)


# ---- closed-form gradient --------------------------------------------------------------------

@pytest.mark.parametrize("batch, dim", [(1, 2), (5, 3), (17, 64)])
def test_closed_form_grad_matches_autograd(batch, dim):
    g = torch.Generator().manual_seed(batch * 100 + dim)
    p = (torch.randn(batch, dim, generator=g, dtype=torch.float64) * 3).requires_grad_()
    z = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    byol_pair_loss(p, z).sum().backward()
    torch.testing.assert_close(byol_loss_grad_wrt_p(p.detach(), z), p.grad, rtol=1e-12, atol=1e-12)


def test_closed_form_grad_golden_and_orthogonal_to_p():
    # p = [2, 0], z = [0, 1]: -(2/2) ([0, 1] - 0 * [1, 0]) = [0, -1]
    torch.testing.assert_close(byol_loss_grad_wrt_p(t([[2.0, 0.0]]), t([[0.0, 1.0]])), t([[0.0, -1.0]]))
    g = torch.Generator().manual_seed(1)
    p, z = torch.randn(8, 6, generator=g, dtype=torch.float64), torch.randn(8, 6, generator=g, dtype=torch.float64)
    grad = byol_loss_grad_wrt_p(p, z)
    torch.testing.assert_close((grad * p).sum(1), torch.zeros(8, dtype=torch.float64), atol=1e-12, rtol=0)
    # Gradient shrinks as 1/|p|.
    torch.testing.assert_close(byol_loss_grad_wrt_p(4 * p, z), grad / 4)


def test_closed_form_grad_float32_and_zero_p():
    g = torch.Generator().manual_seed(2)
    p = torch.randn(10, 7, generator=g).requires_grad_()
    z = torch.randn(10, 7, generator=g)
    byol_pair_loss(p, z).sum().backward()
    torch.testing.assert_close(byol_loss_grad_wrt_p(p.detach(), z), p.grad, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(byol_loss_grad_wrt_p(torch.zeros(1, 3), torch.ones(1, 3))).all()


# ---- cosine EMA schedule ----------------------------------------------------------------------

@pytest.mark.parametrize("step, total, tau_base, expected", [
    (0, 100, 0.996, 0.996),
    (50, 100, 0.996, 0.998),
    (100, 100, 0.996, 1.0),
    (25, 100, 0.996, 0.9965857864376269),    # 1 - 0.004 (cos(pi/4) + 1) / 2
    (75, 100, 0.996, 0.9994142135623731),    # 1 - 0.004 (cos(3pi/4) + 1) / 2
    (0, 10, 0.99, 0.99),
    (5, 10, 0.99, 0.995),
    (10, 10, 0.99, 1.0),
    (150, 100, 0.996, 1.0),                  # past K: clamped, stays 1
    (0, 1, 0.5, 0.5),
    (1, 1, 0.5, 1.0),
])
def test_cosine_ema_schedule_golden(step, total, tau_base, expected):
    assert cosine_ema_schedule(step, total, tau_base) == pytest.approx(expected, abs=1e-15)


def test_cosine_ema_schedule_is_monotone():
    taus = [cosine_ema_schedule(k, 37, 0.99) for k in range(38)]
    assert all(a <= b for a, b in zip(taus, taus[1:]))


@pytest.mark.parametrize("step, total, tau_base", [(0, 0, 0.99), (-1, 10, 0.99), (0, 10, 1.5)])
def test_cosine_ema_schedule_rejects_bad_arguments(step, total, tau_base):
    with pytest.raises(ValueError):
        cosine_ema_schedule(step, total, tau_base)


# ---- update_ema -------------------------------------------------------------------------------

def _linear(weight, bias):
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weight]))
        layer.bias.copy_(torch.tensor([bias]))
    return layer


def test_update_ema_tiny_linear_by_hand():
    target = _linear([1.0, 2.0], 0.5)
    online = _linear([3.0, -2.0], 1.5)
    update_ema(target, online, 0.9)
    # 0.9 * 1 + 0.1 * 3 = 1.2; 0.9 * 2 + 0.1 * (-2) = 1.6; 0.9 * 0.5 + 0.1 * 1.5 = 0.6
    torch.testing.assert_close(target.weight.data, torch.tensor([[1.2, 1.6]]))
    torch.testing.assert_close(target.bias.data, torch.tensor([0.6]))
    # Online is untouched; no autograd history on the target.
    torch.testing.assert_close(online.weight.data, torch.tensor([[3.0, -2.0]]))
    assert target.weight.grad is None and target.weight.grad_fn is None


def test_update_ema_extremes():
    target = _linear([1.0, 2.0], 0.5)
    online = _linear([3.0, -2.0], 1.5)
    update_ema(target, online, 1.0)
    torch.testing.assert_close(target.weight.data, torch.tensor([[1.0, 2.0]]))
    update_ema(target, online, 0.0)
    torch.testing.assert_close(target.weight.data, torch.tensor([[3.0, -2.0]]))
    torch.testing.assert_close(target.bias.data, torch.tensor([1.5]))


def test_update_ema_repeated_steps_converge_geometrically():
    target = _linear([0.0, 0.0], 0.0)
    online = _linear([1.0, 1.0], 1.0)
    for _ in range(3):
        update_ema(target, online, 0.5)
    torch.testing.assert_close(target.bias.data, torch.tensor([0.875]))   # 1 - 0.5^3


def test_update_ema_copies_batchnorm_buffers():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    target = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    for param in target.parameters():
        param.requires_grad_(False)
    online.train()
    online(torch.randn(8, 3))
    online(torch.randn(8, 3))
    before = [p.clone() for p in target.parameters()]
    update_ema(target, online, 0.99)
    bn_t, bn_o = target[1], online[1]
    torch.testing.assert_close(bn_t.running_mean, bn_o.running_mean)
    torch.testing.assert_close(bn_t.running_var, bn_o.running_var)
    assert bn_t.num_batches_tracked.item() == 2
    for old, new, theta in zip(before, target.parameters(), online.parameters()):
        torch.testing.assert_close(new, 0.99 * old + 0.01 * theta.detach())
    # Buffers are copies, not aliases.
    assert bn_t.running_mean.data_ptr() != bn_o.running_mean.data_ptr()


def test_update_ema_rejects_mismatched_modules():
    with pytest.raises(ValueError):
        update_ema(nn.Linear(2, 1), nn.Linear(3, 1), 0.9)
    with pytest.raises(ValueError):
        update_ema(nn.Linear(2, 1), nn.Sequential(nn.Linear(2, 1)), 0.9)
    with pytest.raises(ValueError):
        update_ema(nn.Linear(2, 1), nn.Linear(2, 1), 1.1)
