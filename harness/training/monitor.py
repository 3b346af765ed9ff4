"""Collapse signals on a fixed batch of validation images, once per epoch.

Two figures that tell a collapsing run from a healthy one before any evaluation:

- `normalized_std`: the mean over dimensions of the per-dimension standard deviation of
  z / ||z|| (SimSiam, Chen & He 2021, section 4.1; the usual collapse check of BYOL-style
  methods). About 1/sqrt(d) for spread-out d-dimensional outputs, 0 when every image maps to
  the same direction.
- `rankme`: the effective rank of the embedding matrix (Garrido et al. 2023, "RankMe"): exp of
  the entropy of its singular values normalised to sum 1 (epsilon 1e-7, as theirs). 1 for a
  constant output, up to min(N, d) for a full-rank one.

>>> z = torch.eye(4)
>>> round(normalized_std(z), 4), round(rankme(z), 4)
(0.433, 4.0)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

RANKME_EPS = 1e-7      # Garrido et al. 2023, eq. 1
MONITOR_IMAGES = 512   # the first this many val images: the same batch every epoch


def normalized_std(z: torch.Tensor) -> float:
    """Mean over dimensions of the std over samples of the L2-normalised rows of `z` (N, d)."""
    z = F.normalize(z.double(), dim=1)
    return z.std(dim=0, unbiased=False).mean().item()


def rankme(z: torch.Tensor, eps: float = RANKME_EPS) -> float:
    """exp(-sum p_k log p_k), p_k = sigma_k / ||sigma||_1 + eps, over the singular values of `z`."""
    sigma = torch.linalg.svdvals(z.double())
    p = sigma / sigma.sum().clamp_min(torch.finfo(torch.float64).tiny) + eps
    return torch.exp(-(p * p.log()).sum()).item()


@torch.no_grad()
def collapse_figures(encoder: nn.Module, head: nn.Module, images: torch.Tensor) -> dict[str, float]:
    """The figures on `images` (normalised, on the networks' device): the normalised std of the
    projections head(encoder(images)) and RankMe of the encoder's representations and of the
    projections. One encoder forward serves both.

    Eval mode (BatchNorm's running statistics, which change nothing), float32 with autocast
    off, no random number drawn: training continues exactly as without the monitor."""
    modes = [(m, m.training) for m in (encoder, head)]
    for module, _ in modes:
        module.eval()
    try:
        with torch.autocast(images.device.type, enabled=False):
            features = encoder(images)
            projections = head(features).float().cpu()
            features = features.float().cpu()
    finally:
        for module, was_training in modes:
            module.train(was_training)
    return {"monitor/proj_std": normalized_std(projections), "monitor/rankme": rankme(features),
            "monitor/rankme_proj": rankme(projections)}
