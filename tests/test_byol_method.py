"""The BYOL base as the runner drives it: loss scale, target without gradient, EMA after a step."""
import copy

import pytest
import torch

from byol_bench.losses.ema import cosine_ema_schedule
from byol_bench.config import DEFAULTS
from byol_bench.method import METHODS, StepContext
from byol_bench.models.backbones import build_backbone


def small_byol(tau_base=0.9):
    methods = METHODS
    cfg = copy.deepcopy(DEFAULTS)
    cfg["byol"].update(proj_hidden=16, proj_dim=8, pred_hidden=16, tau_base=tau_base)
    torch.manual_seed(0)
    enc = build_backbone("small-cnn", in_channels=1, width=4)
    return methods.get("byol")(enc, cfg, {}, 10, "multiclass")


def step(method, opt, views, k, total):
    ctx = StepContext(epoch=0, step=k, total_steps=total, total_epochs=1)
    loss, logs = method.training_step(method.online, views, ctx)
    opt.zero_grad()
    loss.backward()
    opt.step()
    method.after_optimizer_step(ctx)
    return loss, logs


def test_target_gets_no_gradient_and_is_not_optimised():
    m = small_byol()
    views = [torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)]
    loss, logs = m.training_step(m.online, views, StepContext(0, 0, 10, 1))
    loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in m.target.parameters())
    assert all(p.grad is not None for p in m.online.parameters())
    online_ids = {id(p) for p in m.online.parameters()}
    assert not online_ids & {id(p) for p in m.target.parameters()}
    # The loss is the symmetric sum: in [0, 8], and equal to the logged BYOL term.
    assert 0.0 <= loss.item() <= 8.0
    assert torch.isclose(loss.detach(), logs["loss/byol"])


def test_ema_moves_the_target_by_the_scheduled_tau_after_a_step():
    m = small_byol(tau_base=0.9)
    opt = torch.optim.SGD(m.online.parameters(), lr=0.5)
    before_target = [p.detach().clone() for p in m.target.parameters()]
    views = [torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)]
    step(m, opt, views, k=0, total=4)
    tau = cosine_ema_schedule(0, 4, 0.9)
    assert tau == pytest.approx(0.9)
    moved = 0
    for t_old, t_new, o in zip(before_target, m.target.parameters(), m.online.net.parameters()):
        expected = tau * t_old + (1 - tau) * o.detach()
        torch.testing.assert_close(t_new, expected)
        moved += int(not torch.equal(t_new, t_old))
    assert moved > 0
    # BatchNorm buffers are copied from the online network.
    for (name, b_t), (_, b_o) in zip(m.target.named_buffers(), m.online.net.named_buffers()):
        assert torch.equal(b_t, b_o), name


def test_initial_target_equals_online_and_loss_is_deterministic():
    a, b = small_byol(), small_byol()
    for p_t, p_o in zip(a.target.parameters(), a.online.net.parameters()):
        assert torch.equal(p_t, p_o)
    torch.manual_seed(1)
    views = [torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)]
    la, _ = a.training_step(a.online, views, StepContext(0, 0, 1, 1))
    lb, _ = b.training_step(b.online, views, StepContext(0, 0, 1, 1))
    assert la.item() == lb.item()
