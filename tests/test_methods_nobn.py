"""BN-free BYOL (Garg & Jain Table 1): configure sets the norms, the encoders hold no BatchNorm,
and a sample's features do not depend on the batch it is in."""
import pytest
import torch
from torch import nn

from benchmarks.step import build_method
from byol_bench.config import load_config
from byol_bench.errors import UserError
from byol_bench.method import METHODS
from byol_bench.models.norms import WSConv2d, uses_batch_statistics

VARIANTS = {"byol-nobn-none": "none", "byol-nobn-none-ws": "none+ws", "byol-nobn-ln": "ln",
            "byol-nobn-ln-ws": "ln+ws", "byol-nobn-gn": "gn", "byol-nobn-gn-ws": "gn+ws",
            "byol-nobn": "gn+ws"}
SMALL = ["backbone.width=8", "byol.proj_hidden=32", "byol.proj_dim=16", "byol.pred_hidden=32"]


def _run_config(name, options=None):
    cfg = load_config(None, SMALL)
    cls = METHODS.get(name)
    rc = {"method": name, "method_options": cls.resolve_options(name, options),
          "backbone": dict(cfg["backbone"]), "byol": dict(cfg["byol"])}
    cls.configure(rc)
    return rc


def test_every_variant_is_registered_with_a_description():
    names = METHODS.select("byol-nobn*")
    assert sorted(names) == sorted(VARIANTS)
    assert all(METHODS.describe(n) for n in names)


@pytest.mark.parametrize("name, norm", VARIANTS.items())
def test_configure_sets_encoder_norm_and_keeps_bn_in_heads_by_default(name, norm):
    rc = _run_config(name)
    assert rc["backbone"]["norm"] == norm
    assert rc["byol"]["heads_norm"] == "bn"  # the authors' code kept BN in the heads


def test_heads_norm_option_and_its_validation():
    assert _run_config("byol-nobn-ln", {"heads_norm": "gn"})["byol"]["heads_norm"] == "gn"
    with pytest.raises(UserError, match="heads_norm must be one of"):
        _run_config("byol-nobn", {"heads_norm": "gn+ws"})
    with pytest.raises(UserError, match="unknown option"):
        _run_config("byol-nobn", {"norm": "bn"})


@pytest.mark.parametrize("backbone", ["small-cnn", "resnet18"])
@pytest.mark.parametrize("name, norm", VARIANTS.items())
def test_encoder_holds_no_batchnorm(name, norm, backbone):
    method = build_method(name, load_config(None, SMALL + [f"backbone.name={backbone}"]), channels=3)
    modules = list(method.encoder.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules)
    assert not uses_batch_statistics(method.encoder) and not uses_batch_statistics(method.target[0])
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(c, WSConv2d) == norm.endswith("+ws") for c in convs)
    groups = [m for m in modules if isinstance(m, nn.GroupNorm)]
    if norm.startswith("none"):
        assert not groups
    else:
        assert groups and all(g.num_channels % g.num_groups == 0 for g in groups)
        assert all((g.num_groups == 1) == norm.startswith("ln") for g in groups)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_features_do_not_depend_on_the_batch(name, mode):
    torch.manual_seed(0)
    encoder = build_method(name, load_config(None, SMALL), channels=3).encoder
    getattr(encoder, mode)()
    x = torch.randn(6, 3, 12, 12)
    with torch.no_grad():
        batch = encoder(x)
        alone = torch.cat([encoder(x[i:i + 1]) for i in range(len(x))])
        other = encoder(torch.cat([x[:1], 5 * torch.randn(9, 3, 12, 12)]))[:1]
    torch.testing.assert_close(alone, batch, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(other, batch[:1], rtol=1e-5, atol=1e-5)


def test_resnet18_gn_ws_features_do_not_depend_on_the_batch_but_bn_does():
    torch.manual_seed(0)
    cfg = load_config(None, SMALL + ["backbone.name=resnet18"])
    x = torch.randn(4, 3, 16, 16)
    for name, independent in (("byol-nobn", True), ("byol", False)):
        encoder = build_method(name, cfg, channels=3).encoder.train()
        with torch.no_grad():
            batch, alone = encoder(x), torch.cat([encoder(x[i:i + 2]) for i in (0, 2)])
        assert torch.allclose(alone, batch, rtol=1e-4, atol=1e-5) == independent


def test_nobn_method_trains_a_step():
    torch.manual_seed(0)
    from byol_bench.method import StepContext
    method = build_method("byol-nobn-ln-ws", load_config(None, SMALL), channels=3)
    x = [torch.randn(8, 3, 12, 12) for _ in range(2)]
    loss, logs = method.training_step(method.online, x, StepContext(0, 0, 10, 1))
    loss.backward()
    assert torch.isfinite(loss) and set(logs) == {"loss/byol"}
