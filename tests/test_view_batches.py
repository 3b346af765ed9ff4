"""byol.view_batches: which batches BatchNorm normalises over in BYOL's forward (methods/byol.py).
The default `joint` is the path before the option existed, bit for bit; the per-view choices are
numerics-changing (per-view BatchNorm statistics), so they are opt-in and no default changed."""
import copy

import pytest
import torch

from byol_bench.config import DEFAULTS, load_config
from byol_bench.errors import UserError
from byol_bench.losses.byol import symmetric_byol_loss
from byol_bench.method import METHODS
from byol_bench.models.backbones import build_backbone


def small_byol(view_batches=None):
    cfg = copy.deepcopy(DEFAULTS)
    cfg["byol"].update(proj_hidden=16, proj_dim=8, pred_hidden=16)
    if view_batches is not None:
        cfg["byol"]["view_batches"] = view_batches
    torch.manual_seed(0)
    return METHODS.get("byol")(build_backbone("small-cnn", in_channels=1, width=4), cfg, {}, 10, "multiclass")


def views():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(6, 1, 8, 8, generator=gen), torch.randn(6, 1, 8, 8, generator=gen)


def test_joint_is_the_default_and_bit_identical_to_one_2b_batch_through_both_networks():
    assert DEFAULTS["byol"]["view_batches"] == "joint"
    m, (v1, v2) = small_byol(), views()
    out = m.forward_views(m.online, v1, v2)
    ref = small_byol()  # the pre-option path, written out
    _, p, a = ref.online(torch.cat([v1, v2]))
    with torch.no_grad():
        z = ref.target(torch.cat([v1, v2]))
    _, per_sample = symmetric_byol_loss(p[:6], p[6:], z[:6], z[6:])
    assert torch.equal(out.per_sample_loss, per_sample)
    assert torch.equal(torch.cat(out.p), p) and torch.equal(torch.cat(out.z_target), z)
    assert torch.equal(torch.cat(out.pred_hidden), a)


@pytest.mark.parametrize("mode", ["per_view_target", "per_view"])
def test_per_view_batches_normalise_each_view_by_its_own_statistics(mode):
    m, (v1, v2) = small_byol(mode), views()
    out = m.forward_views(m.online, v1, v2)
    ref = small_byol()
    with torch.no_grad():
        assert torch.equal(torch.cat(out.z_target), torch.cat([ref.target(v1), ref.target(v2)]))
    if mode == "per_view":
        assert torch.equal(out.p[0], ref.online(v1)[1]) and torch.equal(out.p[1], ref.online(v2)[1])
    joint = small_byol().forward_views(small_byol().online, v1, v2)
    assert not torch.equal(out.per_sample_loss, joint.per_sample_loss)  # BatchNorm saw other batches


def test_view_batches_takes_one_of_three_words():
    assert load_config(None, ["byol.view_batches=per_view"])["byol"]["view_batches"] == "per_view"
    with pytest.raises(UserError, match="joint"):
        load_config(None, ["byol.view_batches=split"])
