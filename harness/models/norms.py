"""Injectable normalisation for encoders: BatchNorm, GroupNorm, LayerNorm, none, +/- weight standardisation.

A norm spec is a string: "bn" (vanilla), "gn", "ln", "none", each optionally with "+ws"
(weight-standardised convolutions), e.g. "gn+ws". Garg & Jain's Table 1 ablates exactly these.
LN for conv features is GroupNorm(1, C) (normalises over C, H, W); GN uses the largest divisor
of C not above `gn_groups` (default 32), so the group count always divides the channels.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.errors import UserError

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
    (zero mean, unit variance, eps 1e-5; Qiao et al. 2019)."""

    eps = 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return self._conv_forward(x, (w - mean) / torch.sqrt(var + self.eps), self.bias)


def standardise_convs(module: nn.Module) -> nn.Module:
    """Replace every nn.Conv2d in `module` by a WSConv2d with the same weights (in place)."""
    for name, child in module.named_children():
        if type(child) is nn.Conv2d:
            ws = WSConv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                          child.padding, child.dilation, child.groups, child.bias is not None,
                          child.padding_mode)
            ws.load_state_dict(child.state_dict())
            setattr(module, name, ws)
        else:
            standardise_convs(child)
    return module


def uses_batch_statistics(module: nn.Module) -> bool:
    """True when some layer couples the samples of a batch (any BatchNorm)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
