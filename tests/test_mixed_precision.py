"""Mixed precision and per-run state (issue 8, items 4-6): partner scores and pseudo-labels are
float32 under bf16 autocast, ties go to a random partner rather than the lowest column, a step
the fp16 GradScaler skips advances neither the EMA nor the step count, and SyncBatchNorm comes
back out as a local BatchNorm with the same outputs."""
import copy

import pytest
import torch
from accelerate import Accelerator
from accelerate.optimizer import AcceleratedOptimizer

from benchmarks.step import build_method
from byol_bench.config import load_config
from byol_bench.method import StepContext
from byol_bench.models.sync_batchnorm import revert_sync_batchnorm
from byol_bench.losses.extra_positive import select_partners, tie_break_order
from byol_bench.losses.cross_similarity import cross_similarity_loss, pseudo_labels
from byol_bench.training.loop import train_step

SMALL = load_config(None, ["backbone.width=8", "byol.proj_hidden=32", "byol.proj_dim=16", "byol.pred_hidden=24"])
BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def _ctx(**kw):
    return StepContext(epoch=0, step=3, total_steps=10, total_epochs=1, seed=5, **kw)


@pytest.mark.parametrize("name", ["byol-nn", "byol-tracin"])
def test_partners_under_bf16_autocast_equal_the_float32_ones(name):
    torch.manual_seed(0)
    method = build_method(name, SMALL, channels=3, options={"warmup_frac": 0.0})
    g = torch.Generator().manual_seed(2)
    views = [torch.randn(128, 3, 12, 12, generator=g) for _ in range(2)]
    out = method.forward_views(method.online, *views)
    ctx = _ctx()
    order = tie_break_order(128, ctx.seed, ctx.step)
    scores32, _ = method.partner_scores(out, ctx)
    with torch.autocast(**BF16):
        scores16, _ = method.partner_scores(out, ctx)
    assert scores16.dtype == torch.float32
    torch.testing.assert_close(scores16, scores32)
    assert torch.equal(select_partners(scores16, 0, order), select_partners(scores32, 0, order))


def test_pseudo_labels_and_cross_similarity_under_bf16_autocast_equal_the_float32_ones():
    g = torch.Generator().manual_seed(3)
    # Low-dimensional vectors: cosines spread over [-1, 1], many pairs near 0.8 and 0.2.
    p1, p2, z1, z2 = (torch.randn(128, 4, generator=g) for _ in range(4))
    pos32, neg32 = pseudo_labels(z1, z2)
    loss32, stats32 = cross_similarity_loss("cssl", p1, p2, z1, z2)
    with torch.autocast(**BF16):
        pos16, neg16 = pseudo_labels(z1, z2)
        loss16, stats16 = cross_similarity_loss("cssl", p1, p2, z1, z2)
    assert pos32.any() and neg32.any()
    assert torch.equal(pos16, pos32) and torch.equal(neg16, neg32)
    assert loss16.dtype == torch.float32
    torch.testing.assert_close(loss16, loss32)
    assert stats16 == stats32


def test_tied_scores_go_to_a_random_partner_not_to_process_zero():
    """All scores equal: argmax would send every row to column 0 (process 0's shard under DDP).
    With the tie-break order, the partners of process 1's rows spread over both shards, never
    land on the row itself, and are the same for the same (seed, step)."""
    rows, cols = 64, 128
    scores = torch.zeros(rows, cols)
    order = tie_break_order(cols, seed=0, step=11)
    partners = select_partners(scores, exclude_self_offset=64, tie_order=order)
    assert not torch.any(partners == torch.arange(rows) + 64)
    assert torch.equal(partners, select_partners(scores, 64, tie_break_order(cols, seed=0, step=11)))
    # Ties go to the first tied column in a random order: each row's partner is that order's
    # first column other than itself, so the rows share one or two partners per step, and over
    # steps the choice is uniform over the columns.
    firsts = torch.stack([select_partners(scores, 64, tie_break_order(cols, 0, step))[0] for step in range(400)])
    assert (firsts < 64).float().mean().item() == pytest.approx(0.5, abs=0.1)
    assert len(set(firsts.tolist())) > 80
    assert torch.all(select_partners(scores, 64) == 0)  # the old behaviour, without an order


def test_a_step_the_grad_scaler_skips_advances_neither_the_ema_nor_the_step():
    torch.manual_seed(0)
    method = build_method("byol", SMALL, channels=3)
    accelerator = Accelerator(cpu=True)
    scaler = torch.amp.GradScaler("cpu")
    accelerator.scaler = scaler
    model = accelerator.prepare_model(method.online)
    optimizer = AcceleratedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), scaler=scaler)
    accelerator._optimizers.append(optimizer)
    views = [torch.randn(8, 3, 12, 12) for _ in range(2)]
    ctx = _ctx()
    target_before = copy.deepcopy(method.target.state_dict())
    online_before = copy.deepcopy(method.online.state_dict())

    class Diverging:  # the method's loss times inf: every gradient is inf or NaN
        def __getattr__(self, name):
            return getattr(method, name)

        def training_step(self, model, views, ctx):
            loss, logs = method.training_step(model, views, ctx)
            return loss * float("inf"), logs

    train_step(Diverging(), model, optimizer, accelerator, views, ctx, lr=0.1)
    assert accelerator.optimizer_step_was_skipped
    assert ctx.step == 3
    for key, value in method.target.state_dict().items():
        if value.is_floating_point() and "running" not in key:
            assert torch.equal(value, target_before[key]), key
    for key, value in method.online.state_dict().items():
        if value.is_floating_point() and "running" not in key:
            assert torch.equal(value, online_before[key]), key

    train_step(method, model, optimizer, accelerator, views, ctx, lr=0.1)
    assert not accelerator.optimizer_step_was_skipped and ctx.step == 4
    assert any(not torch.equal(v, target_before[k]) for k, v in method.target.state_dict().items()
               if v.is_floating_point())


def test_reverted_sync_batchnorm_is_a_local_batchnorm_with_the_same_outputs():
    torch.manual_seed(0)
    method = build_method("byol", SMALL, channels=3)
    encoder = method.encoder
    x = torch.randn(6, 3, 12, 12)
    encoder.train()
    encoder(x)  # running statistics that are not the initial ones
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(encoder))
    local = revert_sync_batchnorm(synced)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in local.modules())
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())  # left as it was
    assert revert_sync_batchnorm(encoder) is encoder  # nothing to revert: no copy
    for mode in ("eval", "train"):
        encoder.train(mode == "train"), local.train(mode == "train")
        torch.testing.assert_close(local(x), encoder(x))
