"""Encoders: torchvision ResNet-18/50 (optional small-image stem) and a small CPU-sized CNN.

Every builder takes the normalisation spec (see norms.py) and returns an encoder whose forward
gives (B, feat_dim) features; `encoder.feat_dim` says feat_dim. `ws_gain` is the gain of the
scaled weight standardisation used by "none+ws" only (our choice; norms.WSConv2d).
"""
from __future__ import annotations

import torch.nn as nn
import torchvision

from harness.models.norms import norm_layer, parse_norm, standardise_convs, ws_gain_for
from harness.registry import Registry

BACKBONES = Registry("backbone")


class Encoder(nn.Module):
    """A trunk producing (B, feat_dim) features; `feat_dim` is read by the heads."""

    def __init__(self, trunk: nn.Module, feat_dim: int):
        super().__init__()
        self.trunk = trunk
        self.feat_dim = feat_dim

    def forward(self, x):
        return self.trunk(x)


def _resnet(arch: str, in_channels: int, norm: str, small_stem: bool, gn_groups: int,
            ws_gain: float = 1.0) -> Encoder:
    kind, ws = parse_norm(norm)
    net = getattr(torchvision.models, arch)(weights=None, norm_layer=norm_layer(kind, 2, gn_groups))
    if small_stem or in_channels != 3:
        stride, k = (1, 3) if small_stem else (2, 7)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=k, stride=stride, padding=k // 2, bias=False)
    if small_stem:
        net.maxpool = nn.Identity()  # CIFAR/STL-style stem: keep resolution for small images
    feat_dim = net.fc.in_features
    net.fc = nn.Identity()
    if ws:
        standardise_convs(net, ws_gain_for(kind, ws_gain))
    return Encoder(net, feat_dim)


@BACKBONES.register("resnet18")
def resnet18(in_channels: int = 3, norm: str = "bn", small_stem: bool = False, gn_groups: int = 32,
             ws_gain: float = 1.0) -> Encoder:
    """torchvision ResNet-18 (512-d features); small_stem: 3x3 stride-1 conv, no max-pool."""
    return _resnet("resnet18", in_channels, norm, small_stem, gn_groups, ws_gain)


@BACKBONES.register("resnet50")
def resnet50(in_channels: int = 3, norm: str = "bn", small_stem: bool = False, gn_groups: int = 32,
             ws_gain: float = 1.0) -> Encoder:
    """torchvision ResNet-50 (2048-d features); small_stem: 3x3 stride-1 conv, no max-pool."""
    return _resnet("resnet50", in_channels, norm, small_stem, gn_groups, ws_gain)


@BACKBONES.register("small-cnn")
def small_cnn(in_channels: int = 3, norm: str = "bn", small_stem: bool = True, gn_groups: int = 32,
              width: int = 32, ws_gain: float = 1.0) -> Encoder:
    """Four 3x3 conv blocks (width, 2w, 4w, 4w) with norm + ReLU, two 2x downsamplings, global
    average pool: sized for CPU benchmarks on 16-32 px images (4*width-d features)."""
    kind, ws = parse_norm(norm)
    norm2d = norm_layer(kind, 2, gn_groups)
    chans = [in_channels, width, 2 * width, 4 * width, 4 * width]
    layers: list[nn.Module] = []
    for i in range(4):
        stride = 2 if i in (1, 2) else 1
        layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=stride, padding=1, bias=False),
                   norm2d(chans[i + 1]), nn.ReLU(inplace=True)]
    trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if ws:
        standardise_convs(trunk, ws_gain_for(kind, ws_gain))
    return Encoder(trunk, chans[-1])


def build_backbone(name: str, **kwargs) -> Encoder:
    return BACKBONES.get(name)(**kwargs)
