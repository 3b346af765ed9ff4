"""byol-tracin and byol-nn: the method's TracIn score equals brute-force per-sample-gradient
TracIn on a real small model, selection never picks self (also under a simulated DDP offset),
warm-up, loss scale, and the partner-label monitoring (labels never trained on)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.step import build_method
from byol_bench.losses.byol import symmetric_byol_loss
from byol_bench.config import load_config
from byol_bench.errors import UserError
from byol_bench.method import StepContext
from byol_bench.losses.extra_positive import extra_positive_loss, select_partners
from byol_bench.training.loader import monitoring_labels
import byol_bench.methods.base_extra_positive
from byol_bench.methods.base_extra_positive import partner_label_agreement

SMALL = load_config(None, ["backbone.width=8", "byol.proj_hidden=32", "byol.proj_dim=16", "byol.pred_hidden=24"])


def _method(name, **options):
    torch.manual_seed(0)
    return build_method(name, SMALL, channels=3, options={"warmup_frac": 0.0, **options})


def _views(batch, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 12, 12, generator=g) for _ in range(2)]


def _ctx(step=0, total=10, **kw):
    return StepContext(epoch=0, step=step, total_steps=total, total_epochs=1, **kw)


def method_partners(method, out, ctx):
    """The partners the method's extra_loss picks for `out`."""
    scores, _ = method.partner_scores(out, ctx)
    return select_partners(scores, exclude_self_offset=ctx.rank * out.p[0].shape[0])


def _per_sample_gradients_of_last_linear(method, out):
    """Brute force: one backward per sample of l_i through the real model (BN in the heads
    included), the gradient of the predictor's last Linear (weight and bias), flattened."""
    last = method.online.predictor.last
    rows = []
    for loss_i in out.per_sample_loss:
        gw, gb = torch.autograd.grad(loss_i, [last.weight, last.bias], retain_graph=True)
        rows.append(torch.cat([gw.flatten(), gb]))
    return torch.stack(rows)


@pytest.mark.parametrize("batch", [2, 5, 16])
@pytest.mark.parametrize("normalize", [False, True])
def test_tracin_score_equals_brute_force_per_sample_gradients(batch, normalize):
    method = _method("byol-tracin", normalize=normalize)
    method.online.train()  # BatchNorm in the heads: batch statistics, the harder case
    out = method.forward_views(method.online, *_views(batch))
    scores, (z1_cols, z2_cols) = method.partner_scores(out, _ctx())
    grads = _per_sample_gradients_of_last_linear(method, out)
    expected = grads @ grads.T
    if normalize:
        norms = grads.norm(dim=1)
        expected = expected / (norms[:, None] * norms[None, :])
    assert scores.dtype == torch.float32 and not scores.requires_grad
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())
    torch.testing.assert_close(z1_cols, out.z_target[0])
    torch.testing.assert_close(z2_cols, out.z_target[1])


def test_nn_score_is_the_sum_of_the_four_view_pair_cosines():
    method = _method("byol-nn")
    out = method.forward_views(method.online, *_views(6))
    scores, _ = method.partner_scores(out, _ctx())
    z1, z2 = out.z_target
    expected = sum(F.cosine_similarity(u[:, None], v[None], dim=-1) for u in (z1, z2) for v in (z1, z2))
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def _duplicating_gather(t):
    """A fake all_gather of two processes whose other rank holds the same batch: rank 1's own
    columns are B..2B-1 and columns 0..B-1 are exact copies of them."""
    return torch.cat([t.clone(), t])


@pytest.mark.parametrize("name", ["byol-tracin", "byol-nn"])
def test_selection_never_picks_self_under_a_ddp_offset(name, monkeypatch):
    """Through the method's training step, on rank 1 of 2: spy on the partners it uses."""
    chosen = []

    def spy(p1, p2, z1_cols, z2_cols, partners):
        chosen.append(partners)
        return extra_positive_loss(p1, p2, z1_cols, z2_cols, partners)

    monkeypatch.setattr(byol_bench.methods.base_extra_positive, "extra_positive_loss", spy)
    method, batch = _method(name), 7
    ctx = _ctx(rank=1, world_size=2, gather=_duplicating_gather)
    loss, _ = method.training_step(method.online, _views(batch), ctx)
    loss.backward()
    (partners,) = chosen
    assert partners.shape == (batch,) and partners.max() < 2 * batch
    assert not (partners == torch.arange(batch) + batch).any()  # own columns are B..2B-1
    if name == "byol-nn":  # the exact copy of oneself on the other rank is the nearest neighbour
        assert torch.equal(partners, torch.arange(batch))


@pytest.mark.parametrize("name", ["byol-tracin", "byol-nn"])
def test_selection_never_picks_self_single_process(name):
    method = _method(name)
    out = method.forward_views(method.online, *_views(9, seed=3))
    partners = method_partners(method, out, _ctx())
    assert not (partners == torch.arange(9)).any()


@pytest.mark.parametrize("name", ["byol-tracin", "byol-nn"])
def test_loss_is_byol_plus_lam_times_the_extra_positive_loss(name):
    method = _method(name, lam=0.5)
    views = _views(8)
    torch.manual_seed(5)
    loss, logs = method.training_step(method.online, views, _ctx())
    torch.manual_seed(5)
    out = method.forward_views(method.online, *views)
    partners = method_partners(method, out, _ctx())
    byol, _ = symmetric_byol_loss(out.p[0], out.p[1], *out.z_target)
    extra = extra_positive_loss(out.p[0], out.p[1], *out.z_target, partners)
    torch.testing.assert_close(loss, byol + 0.5 * extra)
    torch.testing.assert_close(logs["loss/byol"], byol.detach())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in method.online.parameters() if p.grad is not None)


def test_warmup_keeps_the_extra_term_off_then_on():
    method = build_method("byol-tracin", SMALL, channels=3)  # default warmup_frac 0.1
    assert method.opt["warmup_frac"] == 0.1
    out = method.forward_views(method.online, *_views(4))
    assert method.extra_loss(out, _ctx(step=9, total=100)) == (None, {})
    assert method.epoch_logs() == {}
    extra, _ = method.extra_loss(out, _ctx(step=10, total=100))
    assert extra is not None and torch.isfinite(extra)
    assert set(method.epoch_logs()) == {"loss/extra"}  # no labels given: no agreement figure


def test_epoch_logs_report_partner_label_agreement_and_reset():
    method = _method("byol-nn")
    views = _views(6)
    labels = torch.tensor([0, 0, 1, 1, -1, 2])
    for _ in range(2):
        method.training_step(method.online, views, _ctx(labels=labels))
    out = method.forward_views(method.online, *views)
    partners = method_partners(method, out, _ctx())
    same, known = partner_label_agreement(labels, labels, partners)
    logs = method.epoch_logs()
    assert logs["extra/partner_same_label"] == pytest.approx(float(same) / float(known))
    assert logs["loss/extra"] > 0
    assert method.epoch_logs() == {}


def test_partner_label_agreement_skips_unlabeled_and_handles_multilabel():
    labels = torch.tensor([0, 1, 1, -1, 2])
    same, known = partner_label_agreement(labels, labels, torch.tensor([4, 2, 1, 0, 3]))
    assert (int(same), int(known)) == (2, 3)  # rows 1, 2 agree; row 0 disagrees; rows 3, 4 touch -1
    multi = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    same, known = partner_label_agreement(multi, multi, torch.tensor([1, 2, 0, 0]))
    assert (int(same), int(known)) == (1, 3)


def test_monitoring_labels_mark_unlabeled_images_with_minus_one():
    data = SimpleNamespace(labels={"train": np.array([3, 1])},
                           images={"train": np.zeros((2, 1, 4, 4)), "unlabeled": np.zeros((3, 1, 4, 4))})
    assert monitoring_labels(data).tolist() == [3, 1, -1, -1, -1]
    multi = SimpleNamespace(labels={"train": np.ones((2, 3), np.float32)}, images={"train": np.zeros((2, 1, 4, 4))})
    assert monitoring_labels(multi).shape == (2, 3)


@pytest.mark.parametrize("options, message", [({"lam": -1.0}, "lam must be >= 0"),
                                               ({"warmup_frac": 1.5}, "warmup_frac must lie in")])
def test_bad_options_are_user_errors(options, message):
    with pytest.raises(UserError, match=message):
        build_method("byol-tracin", SMALL, channels=3, options=options)
