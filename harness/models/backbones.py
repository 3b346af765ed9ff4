"""Encoders: torchvision ResNet-18/50 (optional small-image stem), a small CPU-sized CNN, any
timm architecture (`timm/<model>`, models/timm_backbone.py), and the plugins' backbones.

Every builder takes the normalisation spec (see norms.py) and returns an encoder whose forward
gives (B, feat_dim) features; `encoder.feat_dim` says feat_dim. `ws_gain` is the gain of the
scaled weight standardisation used by "none+ws" only (our choice; norms.WSConv2d).

A plugin registers a builder with `@BACKBONES.register("name")` in a module named by an entry
point of the group `byol_bench.backbones`. `build_encoder` calls a builder with those of
BUILDER_ARGUMENTS its signature names (in_channels always), so a builder declares what it uses.
"""
from __future__ import annotations

import inspect

import torch.nn as nn
import torchvision

from byol_bench.errors import UserError
from byol_bench.models.norms import norm_layer, parse_norm, standardise_convs, ws_gain_for
from byol_bench.registry import Registry, discover_modules

# The built-ins register below, on import; the plugins' modules on the first lookup.
BACKBONES = Registry("backbone", discover=lambda: discover_modules(None, "byol_bench.backbones"))
TIMM_PREFIX = "timm/"
# What a builder may take: the backbone section's settings, the image's channels and size.
BUILDER_ARGUMENTS = ("in_channels", "image_size", "norm", "small_stem", "gn_groups", "width", "stem",
                     "dropout", "dropout_stem", "ws_gain")


class Encoder(nn.Module):
    """A trunk producing (B, feat_dim) features; `feat_dim` is read by the heads."""

    def __init__(self, trunk: nn.Module, feat_dim: int):
        super().__init__()
        self.trunk = trunk
        self.feat_dim = feat_dim

    def forward(self, x):
        return self.trunk(x)


STEMS = ("imagenet", "small", "small-maxpool")


def resolve_stem(stem: str, small_stem: bool) -> str:
    """`backbone.stem` if given, else the older `small_stem` flag: true -> small, false -> imagenet."""
    if not stem:
        return "small" if small_stem else "imagenet"
    if stem not in STEMS:
        raise UserError(f"unknown backbone.stem {stem!r}; valid: {', '.join(STEMS)}")
    return stem


def _with_dropout(module: nn.Module, p: float) -> nn.Sequential:
    return nn.Sequential(module, nn.Dropout(p))


def _resnet(arch: str, in_channels: int, norm: str, small_stem: bool, gn_groups: int,
            stem: str = "", dropout: float = 0.0, dropout_stem: bool = False,
            ws_gain: float = 1.0) -> Encoder:
    """torchvision's ResNet with the chosen stem (see resnet18) and optional dropout."""
    kind, ws = parse_norm(norm)
    stem = resolve_stem(stem, small_stem)
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"backbone.dropout must lie in [0, 1), got {dropout}")
    net = getattr(torchvision.models, arch)(weights=None, norm_layer=norm_layer(kind, 2, gn_groups))
    if stem != "imagenet" or in_channels != 3:
        stride, k = (2, 7) if stem == "imagenet" else (1, 3)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=k, stride=stride, padding=k // 2, bias=False)
    if stem == "small":
        net.maxpool = nn.Identity()  # CIFAR/STL-style stem: keep resolution for small images
    if dropout > 0:
        # Garg & Jain's backbone (byol.py, ByolBackBone): Dropout after every residual block of
        # layer1..layer4; their loop skips the stem (children 0-3). `dropout_stem` adds it after
        # the stem's activation and pool too (METHODS.md section 6 describes it so).
        if dropout_stem:
            net.relu = _with_dropout(net.relu, dropout)  # torchvision's ResNet uses `relu` only in the stem
            if not isinstance(net.maxpool, nn.Identity):
                net.maxpool = _with_dropout(net.maxpool, dropout)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            blocks = list(getattr(net, name))
            setattr(net, name, nn.Sequential(*[m for b in blocks for m in (b, nn.Dropout(dropout))]))
    feat_dim = net.fc.in_features
    net.fc = nn.Identity()
    if ws:
        standardise_convs(net, ws_gain_for(kind, ws_gain))
    return Encoder(net, feat_dim)


@BACKBONES.register("resnet18")
def resnet18(in_channels: int = 3, norm: str = "bn", small_stem: bool = False, gn_groups: int = 32,
             stem: str = "", dropout: float = 0.0, dropout_stem: bool = False,
             ws_gain: float = 1.0) -> Encoder:
    """torchvision ResNet-18 (512-d features). stem: imagenet (7x7 stride 2 + max-pool), small
    (3x3 stride 1, no max-pool), small-maxpool (3x3 stride 1, max-pool kept: Garg & Jain's code);
    "" = small if small_stem else imagenet. dropout > 0: Dropout after each residual block
    (Garg & Jain's code used 0.15), and with dropout_stem after the stem's activation and pool."""
    return _resnet("resnet18", in_channels, norm, small_stem, gn_groups, stem, dropout, dropout_stem, ws_gain)


@BACKBONES.register("resnet50")
def resnet50(in_channels: int = 3, norm: str = "bn", small_stem: bool = False, gn_groups: int = 32,
             stem: str = "", dropout: float = 0.0, dropout_stem: bool = False,
             ws_gain: float = 1.0) -> Encoder:
    """torchvision ResNet-50 (2048-d features); stem and dropout as resnet18."""
    return _resnet("resnet50", in_channels, norm, small_stem, gn_groups, stem, dropout, dropout_stem, ws_gain)


@BACKBONES.register("small-cnn")
def small_cnn(in_channels: int = 3, norm: str = "bn", small_stem: bool = True, gn_groups: int = 32,
              width: int = 32, stem: str = "", dropout: float = 0.0, dropout_stem: bool = False,
              ws_gain: float = 1.0) -> Encoder:
    """Four 3x3 conv blocks (width, 2w, 4w, 4w) with norm + ReLU, two 2x downsamplings, global
    average pool: sized for CPU benchmarks on 16-32 px images (4*width-d features). It has no
    stem to choose and no dropout: `stem` and `dropout` are refused rather than ignored."""
    if stem or dropout:
        raise UserError("backbone.stem and backbone.dropout apply to the ResNets only, not small-cnn")
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


def check_backbone(backbone: dict, in_channels: int | None = None, image_size: int | None = None) -> None:
    """A run's `backbone` section names a backbone that can be built (UserError otherwise),
    before anything runs: a registered name, or timm/<model> with timm installed and the model
    built for this image (on the meta device: no memory, no compute)."""
    name = backbone["name"]
    if name.startswith(TIMM_PREFIX):
        from byol_bench.models.timm_backbone import check_timm_backbone
        check_timm_backbone(name[len(TIMM_PREFIX):], backbone, in_channels, image_size)
        return
    BACKBONES.canonical(name)
    if backbone.get("timm_options"):
        raise UserError(f"backbone.timm_options applies to timm/<model> backbones only, not {name!r}")


def build_encoder(backbone: dict, in_channels: int, image_size: int | None = None) -> Encoder:
    """The encoder a run's `backbone` section names: the one construction path for the
    runner and the timing tools. A builder gets those of BUILDER_ARGUMENTS it names (only
    small-cnn has a width; `ws_gain` is only in the section where it acts, see
    byol_bench.plan.grid.run_config); `image_size` is the run's (None: the builder's default)."""
    bb = backbone
    if bb["name"].startswith(TIMM_PREFIX):
        from byol_bench.models.timm_backbone import timm_encoder
        return timm_encoder(bb["name"][len(TIMM_PREFIX):], bb, in_channels, image_size)
    builder = BACKBONES.get(bb["name"])
    given = {"in_channels": in_channels, "image_size": image_size, "norm": bb["norm"],
             "small_stem": bb["small_stem"], "gn_groups": bb["gn_groups"], "width": bb["width"], "stem": bb["stem"],
             "dropout": bb["dropout"], "dropout_stem": bb["dropout_stem"], "ws_gain": bb.get("ws_gain", 1.0)}
    takes = inspect.signature(builder).parameters
    encoder = builder(**{k: v for k, v in given.items() if k in takes})
    if not isinstance(getattr(encoder, "feat_dim", None), int):
        raise TypeError(f"backbone {bb['name']!r} of {BACKBONES.origin(bb['name'])} returned "
                        f"{type(encoder).__name__} without an integer `feat_dim` (the heads' input size)")
    return encoder
