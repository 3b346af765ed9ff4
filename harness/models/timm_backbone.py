"""`backbone.name: timm/<model>`: any timm architecture (ViT, ConvNeXt, ResNet, ...) as the encoder.

Built with `timm.create_model(model, pretrained=False, num_classes=0, in_chans=<card's channels>)`:
always from scratch (SSL from random init, and no hub access), no classifier, so its forward
gives the pooled (B, num_features) features and `num_features` is the heads' input size. Sizes:
a model whose constructor takes `img_size` (ViTs, Swin, ...) is built for the run's image size,
so its position embeddings fit a 16 px or 96 px image; CNN stems are timm's own (ImageNet
stems, 32x downsampling: at 16 px the last stage is 1x1), since timm has no common switch for
them. More arguments go in `backbone.timm_options` (e.g. `patch_size: 4` for a ViT on small
images, `output_stride: 8` for timm's ResNets, which dilates the last stages instead of
downsampling); they are part of the run's identity, as is the model's name. The other backbone
settings (norm, stem, dropout) belong to the built-in backbones: a timm model keeps its own
layers, and a setting it would ignore is refused. timm is the optional extra `timm`.
"""
from __future__ import annotations

import difflib
import functools
import json

import torch

from byol_bench.errors import UserError
from byol_bench.models.backbones import Encoder

INSTALL = 'pip install "byol-bench[timm]"'
# Arguments the harness sets itself: never from timm_options.
FIXED = ("pretrained", "num_classes", "in_chans", "img_size", "pretrained_cfg", "pretrained_cfg_overlay")
# Built-in backbone settings that do not apply to a timm model, with their defaults.
NOT_FOR_TIMM = {"norm": "bn", "stem": "", "dropout": 0.0, "dropout_stem": False}


def listing() -> str:
    """The --list line for timm/<model> (without importing timm: it is slow to import)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        installed = f"timm {version('timm')} installed"
    except PackageNotFoundError:
        installed = f"timm not installed: {INSTALL}"
    return f"any timm architecture, from scratch (backbone.timm_options: its arguments; {installed})"


def _timm():
    try:
        import timm
    except ImportError:
        raise UserError(f"backbone.name timm/<model> needs timm, which is not installed: {INSTALL}") from None
    return timm


def _arguments(model: str, backbone: dict, in_channels: int, image_size: int | None) -> dict:
    """timm.create_model's arguments for this run, after checking the model name and settings."""
    timm = _timm()
    if not timm.is_model(model):
        close = difflib.get_close_matches(model, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"unknown timm model {model!r} (backbone.name timm/{model}){hint} "
                        "timm.list_models('vit*') lists them")
    for key, default in NOT_FOR_TIMM.items():
        if backbone.get(key, default) != default:
            raise UserError(f"backbone.{key} applies to the built-in backbones, not timm/{model} (a timm model "
                            "keeps its own layers); give timm's arguments in backbone.timm_options")
    options = dict(backbone.get("timm_options") or {})
    fixed = sorted(set(options) & set(FIXED))
    if fixed:
        raise UserError(f"backbone.timm_options may not set {', '.join(fixed)}: the harness sets "
                        f"{', '.join(FIXED[:4])} (pretrained is always false: SSL from scratch)")
    kwargs = {**options, "pretrained": False, "num_classes": 0, "in_chans": in_channels}
    if image_size and _takes_img_size(model):
        kwargs["img_size"] = image_size
    return kwargs


@functools.lru_cache(maxsize=None)
def _takes_img_size(model: str) -> bool:
    """Whether the model's constructor takes `img_size` (ViTs and the like), tried on meta."""
    timm = _timm()
    try:
        with torch.device("meta"):
            timm.create_model(model, pretrained=False, num_classes=0, img_size=224)
    except TypeError as exc:
        if "img_size" in str(exc):
            return False
        raise
    return True


def timm_encoder(model: str, backbone: dict, in_channels: int, image_size: int | None = None) -> Encoder:
    """The timm model `model` as an encoder of (B, num_features) features."""
    net = _timm().create_model(model, **_arguments(model, backbone, in_channels, image_size))
    return Encoder(net, int(net.num_features))


@functools.lru_cache(maxsize=None)
def _probe(model: str, arguments: str, in_channels: int, image_size: int | None) -> str | None:
    """Why the model cannot give (1, num_features) features for this image, or None; built and
    run on the meta device (shapes only). Cached: a grid checks each run config."""
    kwargs = json.loads(arguments)
    try:
        with torch.device("meta"):
            net = _timm().create_model(model, **kwargs).eval()
            out = net(torch.zeros(1, in_channels, image_size or 224, image_size or 224))
    except Exception as exc:  # timm's own message, on one line
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if tuple(out.shape) != (1, net.num_features):
        return f"its features have shape {tuple(out.shape)}, not (batch, num_features={net.num_features})"
    return None


def check_timm_backbone(model: str, backbone: dict, in_channels: int | None, image_size: int | None) -> None:
    """UserError, before anything runs, when timm/<model> cannot be built for this image."""
    in_channels = in_channels or 3
    kwargs = _arguments(model, backbone, in_channels, image_size)
    problem = _probe(model, json.dumps(kwargs, sort_keys=True, default=str), in_channels, image_size)
    if problem:
        size = f"{image_size}x{image_size}" if image_size else "default-size"
        raise UserError(f"timm/{model} cannot encode {in_channels}-channel {size} images with "
                        f"{json.dumps(backbone.get('timm_options') or {})} as backbone.timm_options: {problem}")
