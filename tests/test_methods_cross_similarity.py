"""byol-ccsl and byol-cssl as methods: a step gives a finite loss (also when no pair is labelled),
the term is lam * cross_similarity_loss, the per-epoch label fractions, DDP columns, options."""
import pytest
import torch

from benchmarks.step import build_method
from byol_bench.losses.byol import symmetric_byol_loss
from byol_bench.config import load_config
from byol_bench.errors import UserError
from byol_bench.method import StepContext
from byol_bench.losses.cross_similarity import cross_similarity_loss, pseudo_labels

SMALL = load_config(None, ["backbone.width=8", "byol.proj_hidden=32", "byol.proj_dim=16", "byol.pred_hidden=32"])
KIND_OPTIONS = {"byol-ccsl": ("ccsl", {"margin": 0.1}), "byol-cssl": ("cssl", {"temperature": 0.2, "bias": 0.3})}


def _method(name, **options):
    torch.manual_seed(0)
    return build_method(name, SMALL, channels=3, options=options)


def _views(batch, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 12, 12, generator=g) for _ in range(2)]


def _ctx(**kw):
    return StepContext(epoch=0, step=0, total_steps=10, total_epochs=1, **kw)


@pytest.mark.parametrize("name", list(KIND_OPTIONS))
def test_step_is_byol_plus_lam_times_the_cross_similarity_loss(name):
    kind, extra_options = KIND_OPTIONS[name]
    options = {"lam": 0.7, "theta_pos": 0.3, "theta_neg": 0.0, **extra_options}
    method = _method(name, **options)
    views = _views(8)
    loss, logs = method.training_step(method.online, views, _ctx())
    out = method.forward_views(method.online, *views)
    byol, _ = symmetric_byol_loss(out.p[0], out.p[1], *out.z_target)
    cross, stats = cross_similarity_loss(kind, out.p[0], out.p[1], *out.z_target, theta_pos=0.3,
                                         theta_neg=0.0, **extra_options)
    torch.testing.assert_close(loss, byol + 0.7 * cross)
    torch.testing.assert_close(logs[f"loss/{kind}"], cross.detach())
    assert stats["pos_fraction"] + stats["neg_fraction"] > 0  # the test labels some pairs
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in method.online.parameters() if p.grad is not None)
    logs = method.epoch_logs()
    assert logs == pytest.approx({f"{kind}/pos_fraction": float(stats["pos_fraction"]),
                                  f"{kind}/neg_fraction": float(stats["neg_fraction"])})
    assert method.epoch_logs() == {}


@pytest.mark.parametrize("name", list(KIND_OPTIONS))
def test_no_labelled_pair_gives_a_finite_loss_equal_to_byol(name):
    kind, _ = KIND_OPTIONS[name]
    method = _method(name, theta_pos=2.0, theta_neg=-2.0)  # no cosine reaches either threshold
    views = _views(6)
    loss, logs = method.training_step(method.online, views, _ctx())
    out = method.forward_views(method.online, *views)
    byol, _ = symmetric_byol_loss(out.p[0], out.p[1], *out.z_target)
    assert torch.isfinite(loss) and logs[f"loss/{kind}"] == 0
    torch.testing.assert_close(loss, byol)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in method.online.parameters() if p.grad is not None)
    assert method.epoch_logs() == {f"{kind}/pos_fraction": 0.0, f"{kind}/neg_fraction": 0.0}


@pytest.mark.parametrize("name", list(KIND_OPTIONS))
def test_ddp_columns_are_gathered_and_self_is_excluded(name):
    """Rank 1 of 2 whose other rank holds this batch shifted by one, both views the same image:
    row i's copy (column i - 1 mod B, cosine 1) is a positive, its own column i + B is in neither
    set, and the method's loss and fractions are those of the global columns."""
    kind, extra_options = KIND_OPTIONS[name]
    method, batch = _method(name, **extra_options), 5
    x = _views(batch)[0]
    # The other rank's rows are a permutation of these against the same columns, so its pair
    # counts equal ours: the all_reduce(SUM) of the counts is twice the local ones.
    ctx = _ctx(rank=1, world_size=2, gather=lambda t: torch.cat([t.roll(-1, 0), t]),
               reduce_sum=lambda t: 2 * t)
    loss, _ = method.training_step(method.online, [x, x], ctx)
    out = method.forward_views(method.online, x, x)
    z1, z2 = out.z_target
    z1_cols, z2_cols = torch.cat([z1.roll(-1, 0), z1]), torch.cat([z2.roll(-1, 0), z2])
    expected, stats = cross_similarity_loss(kind, out.p[0], out.p[1], z1, z2, z1_cols, z2_cols,
                                            self_offset=batch, **extra_options)
    byol, _ = symmetric_byol_loss(out.p[0], out.p[1], z1, z2)
    torch.testing.assert_close(loss, byol + expected)
    assert method.epoch_logs() == pytest.approx({f"{kind}/{k}": float(v) for k, v in stats.items()})
    pos, neg = pseudo_labels(z1, z2_cols, self_offset=batch)
    rows = torch.arange(batch)
    assert pos[rows, (rows - 1) % batch].all()
    assert not (pos | neg)[rows, rows + batch].any()


@pytest.mark.parametrize("options, message", [({"theta_pos": 0.2, "theta_neg": 0.5}, "theta_neg < theta_pos"),
                                               ({"lam": -0.1}, "lam must be >= 0")])
def test_bad_options_are_user_errors(options, message):
    for name in KIND_OPTIONS:
        with pytest.raises(UserError, match=message):
            build_method(name, SMALL, channels=3, options=options)
    with pytest.raises(UserError, match="temperature must be > 0"):
        build_method("byol-cssl", SMALL, channels=3, options={"temperature": 0.0})
    with pytest.raises(UserError, match="unknown option"):
        build_method("byol-ccsl", SMALL, channels=3, options={"temperature": 0.1})
