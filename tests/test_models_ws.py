"""Weight standardisation: `none+ws` uses scaled WS (gain / sqrt(fan_in), our choice after
Brock et al. 2021) so deep encoders without a norm layer stay finite at initialisation; with a
norm layer after the conv, plain WS is kept."""
import math

import pytest
import torch

from benchmarks.step import build_method
from byol_bench.config import load_config
from byol_bench.errors import UserError

from byol_bench.models.backbones import build_backbone
from byol_bench.models.norms import WSConv2d, ws_gain_for


def _features(arch: str, norm: str, autocast: bool, **kwargs) -> torch.Tensor:
    torch.manual_seed(0)
    enc = build_backbone(arch, in_channels=3, norm=norm, small_stem=True, **kwargs).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = enc(x)
    assert out.dtype == (torch.bfloat16 if autocast else torch.float32)  # autocast really ran
    return out.float()


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_none_ws_resnets_give_finite_features_of_moderate_scale_at_init(arch, autocast):
    """Plain WS gave ResNet-18 features with std ~1.5e21 and ResNet-50 NaN here."""
    f = _features(arch, "none+ws", autocast)
    assert torch.isfinite(f).all()
    assert 1e-3 <= f.std().item() <= 1e3, f.std().item()


def _expected_std(conv: WSConv2d, scale: float) -> torch.Tensor:
    """std of the standardised weight: `scale` * sqrt(var / (var + eps)) per output channel."""
    var = conv.weight.detach().flatten(1).var(1, unbiased=False)
    return scale * torch.sqrt(var / (var + WSConv2d.eps))


def _convs(arch: str, norm: str, **kwargs) -> list[WSConv2d]:
    enc = build_backbone(arch, in_channels=3, norm=norm, small_stem=True, **kwargs)
    return [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.mark.parametrize("norm", ["gn+ws", "ln+ws", "bn+ws"])
def test_ws_followed_by_a_norm_layer_stays_plain(norm):
    convs = _convs("resnet18", norm, ws_gain=3.0)
    assert convs and all(isinstance(c, WSConv2d) and c.gain is None for c in convs)
    w = convs[5].standardised_weight().detach().flatten(1)
    torch.testing.assert_close(w.std(1, unbiased=False), _expected_std(convs[5], 1.0), rtol=1e-5, atol=0)


@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_none_ws_weight_is_standardised_times_gain_over_sqrt_fan_in(gain):
    convs = _convs("resnet18", "none+ws", ws_gain=gain)
    assert convs and all(isinstance(c, WSConv2d) and c.gain == gain for c in convs)
    for conv in (convs[0], convs[5]):   # the stem (fan_in 27) and a 3x3 conv of layer1 (576)
        w = conv.standardised_weight().detach().flatten(1)
        fan_in = conv.in_channels * 9
        torch.testing.assert_close(w.mean(1), torch.zeros(len(w)), atol=1e-6, rtol=0)
        torch.testing.assert_close(w.std(1, unbiased=False), _expected_std(conv, gain / math.sqrt(fan_in)),
                                   rtol=1e-5, atol=0)


def test_ws_gain_is_a_checked_config_value_that_reaches_the_encoder():
    cfg = load_config(None, ["backbone.width=4", "backbone.ws_gain=0.5", "byol.proj_hidden=16",
                             "byol.pred_hidden=16", "byol.proj_dim=8"])
    method = build_method("byol-nobn-none-ws", cfg, channels=3)
    gains = {m.gain for m in method.encoder.modules() if isinstance(m, WSConv2d)}
    assert gains == {0.5}
    assert {m.gain for m in build_method("byol-nobn-gn-ws", cfg, channels=3).encoder.modules()
            if isinstance(m, WSConv2d)} == {None}
    with pytest.raises(UserError, match="backbone.ws_gain"):
        load_config(None, ["backbone.ws_gain=big"])
    with pytest.raises(UserError, match="backbone.ws_gain must be a positive number"):
        ws_gain_for("none", 0.0)
