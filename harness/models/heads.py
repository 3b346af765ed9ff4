"""BYOL's MLP heads: Linear(d, h) -> norm -> ReLU -> Linear(h, o) (Grill et al. 2020)."""
from __future__ import annotations

import torch
import torch.nn as nn

from byol_bench.models.norms import norm_layer


class MLPHead(nn.Module):
    """Two-layer MLP. `forward_with_hidden` also returns the input of the last Linear, which
    TracIn needs (the per-sample gradient of that layer is g_i a_i^T)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, norm: str = "bn"):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden_dim), norm_layer(norm, dims=1)(hidden_dim),
                                    nn.ReLU(inplace=True))
        self.last = nn.Linear(hidden_dim, out_dim)

    def forward_with_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.hidden(x)
        return self.last(a), a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.hidden(x))
