"""Injectable normalisation for encoders: BatchNorm, GroupNorm, LayerNorm, none, +/- weight standardisation.

A norm spec is a string: "bn" (vanilla), "gn", "ln", "none", each optionally with "+ws"
(weight-standardised convolutions), e.g. "gn+ws". Garg & Jain's Table 1 ablates exactly these.
"none+ws" uses scaled WS (gain / sqrt(fan_in), our choice; see WSConv2d).
LN for conv features is GroupNorm(1, C) (normalises over C, H, W); GN uses the largest divisor
of C not above `gn_groups` (default 32), so the group count always divides the channels.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from byol_bench.errors import UserError

NORM_KINDS = ("bn", "gn", "ln", "none")


def parse_norm(spec: str) -> tuple[str, bool]:
    """"gn+ws" -> ("gn", True). Raises UserError for anything else."""
    kind, _, suffix = spec.partition("+")
    if kind not in NORM_KINDS or suffix not in ("", "ws"):
        valid = ", ".join(k + s for k in NORM_KINDS for s in ("", "+ws"))
        raise UserError(f"unknown normalisation {spec!r}; valid: {valid}")
    return kind, suffix == "ws"


def largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def norm_layer(kind: str, dims: int = 2, gn_groups: int = 32) -> Callable[[int], nn.Module]:
    """A factory `channels -> module` (the shape torchvision's `norm_layer` argument takes) for
    conv features (dims=2, (B, C, H, W)) or MLP features (dims=1, (B, C)). LN is GroupNorm(1, C)
    for conv features (over C, H, W) and LayerNorm for MLP features."""
    if kind == "bn":
        return nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    if kind == "gn":
        return lambda c: nn.GroupNorm(largest_divisor_at_most(c, gn_groups), c)
    if kind == "ln":
        return (lambda c: nn.GroupNorm(1, c)) if dims == 2 else nn.LayerNorm
    if kind == "none":
        return lambda c: nn.Identity()
    raise UserError(f"unknown normalisation {kind!r}; valid: {', '.join(NORM_KINDS)}")


class WSConv2d(nn.Conv2d):
    """Conv2d whose weight is standardised per output channel over its fan-in at every forward
    (zero mean, unit variance, eps 1e-5; Qiao et al. 2019).

    `gain` None: plain WS, for convs followed by a normalisation layer (gn+ws, ln+ws, bn+ws),
    which cancels any weight scale. `gain` a number: scaled WS (Brock et al. 2021, NF-ResNets),
    the standardised weight times gain / sqrt(fan_in), so a conv keeps its input's second moment
    instead of multiplying it by the fan-in; without a norm layer after the conv (`none+ws`) the
    plain version overflows with depth (ResNet-18 features ~1e21, ResNet-50 NaN at initialisation).
    Scaling `none+ws` is OUR choice, not Garg & Jain's (METHODS.md section 2); the gain is a fixed
    constant (backbone.ws_gain), not NF-ResNets' learnable per-channel gain.
    """

    eps = 1e-5

    def __init__(self, *args, gain: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.gain = gain

    def standardised_weight(self) -> torch.Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        w = (w - mean) / torch.sqrt(var + self.eps)
        if self.gain is not None:
            w = w * (self.gain / math.sqrt(math.prod(w.shape[1:])))  # fan_in = C_in/groups * kh * kw
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.standardised_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.gain is None else f", scaled_ws_gain={self.gain}")


def standardise_convs(module: nn.Module, gain: float | None = None) -> nn.Module:
    """Replace every nn.Conv2d in `module` by a WSConv2d with the same weights (in place).
    `gain` None: plain WS (a norm layer follows each conv); a number: scaled WS (no norm layer)."""
    for name, child in module.named_children():
        if type(child) is nn.Conv2d:
            ws = WSConv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                          child.padding, child.dilation, child.groups, child.bias is not None,
                          child.padding_mode, gain=gain)
            ws.load_state_dict(child.state_dict())
            setattr(module, name, ws)
        else:
            standardise_convs(child, gain)
    return module


def ws_gain_for(kind: str, gain: float) -> float | None:
    """The WSConv2d gain for norm `kind`: scaled WS only where no norm layer follows the conv."""
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0:
        raise UserError(f"backbone.ws_gain must be a positive number, got {gain!r}")
    return float(gain) if kind == "none" else None


def uses_batch_statistics(module: nn.Module) -> bool:
    """True when some layer couples the samples of a batch (any BatchNorm)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
