"""BYOL's loss and its gradient (METHODS.md section 1); the target's EMA is in byol_bench.losses.ema.

Everything here is the canonical BYOL of Grill et al. 2020, not a choice of ours:

- one direction: l(p, z') = 2 - 2 cos(p, z') = || p/|p| - z'/|z'| ||^2;
- symmetric:     L = mean_i [ l(p1_i, z'2_i) + l(p2_i, z'1_i) ]  (SUM of the two directions,
  MEAN over the batch; averaging the directions instead halves the gradient at a fixed learning
  rate, which is why the tests pin this scale with golden values);

Small pure functions so that a test can pin each one by hand; the BYOL base class calls them.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

EPS = 1e-12
"""Floor on vector norms: a zero vector normalises to zero (cosine 0, loss 2) instead of NaN."""


def byol_pair_loss(p: Tensor, z: Tensor, eps: float = EPS) -> Tensor:
    """Per-sample BYOL loss of one direction, shape (B,): l_i = 2 - 2 cos(p_i, z_i).

    Grill et al. 2020. `z` is used as given: callers pass the detached target projection.
    Norms are floored at `eps` (F.normalize), so a zero row gives loss 2 and finite gradients.

    >>> byol_pair_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
    tensor([2.])
    """
    if p.shape != z.shape:
        raise ValueError(f"p and z must have the same shape, got {tuple(p.shape)} and {tuple(z.shape)}")
    p_hat = F.normalize(p, dim=-1, eps=eps)
    z_hat = F.normalize(z, dim=-1, eps=eps)
    return 2.0 - 2.0 * (p_hat * z_hat).sum(dim=-1)


def cosine_matrix(rows: Tensor, cols: Tensor, eps: float = EPS) -> Tensor:
    """cos(rows_i, cols_j), shape (B_rows, B_cols), in the inputs' dtype, autograd kept.

    >>> cosine_matrix(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 3.0]]))
    tensor([[1., 0.]])
    """
    return F.normalize(rows, dim=-1, eps=eps) @ F.normalize(cols, dim=-1, eps=eps).T


def symmetric_byol_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor,
                        eps: float = EPS) -> tuple[Tensor, Tensor]:
    """BYOL's symmetric loss: (L, per_sample) with per_sample_i = l(p1_i, z2_i) + l(p2_i, z1_i).

    L = mean_i per_sample_i: the two directions are SUMMED and the batch is AVERAGED
    (Grill et al. 2020; METHODS.md section 1). `per_sample` (B,) is each image's own loss l_i,
    the quantity whose gradients TracIn compares. p_v is the online prediction of view v,
    z_v the (detached) target projection of view v.
    """
    per_sample = byol_pair_loss(p1, z2, eps) + byol_pair_loss(p2, z1, eps)
    return per_sample.mean(), per_sample


def byol_loss_grad_wrt_p(p: Tensor, z: Tensor, eps: float = EPS) -> Tensor:
    """Closed-form gradient of l(p, z) = 2 - 2 cos(p, z) with respect to p, shape (B, D).

    dl/dp = -(2 / |p|) (z_hat - (p_hat . z_hat) p_hat), the derivative of the cosine: a vector
    orthogonal to p whose length falls as 1/|p|. Standard calculus, not a paper's choice. Norms
    are floored at `eps` like `byol_pair_loss`, so for |p| > eps it equals autograd of that
    function; it needs no backward pass, which is what makes batch-wise TracIn cheap.
    """
    if p.shape != z.shape:
        raise ValueError(f"p and z must have the same shape, got {tuple(p.shape)} and {tuple(z.shape)}")
    p_norm = p.norm(dim=-1, keepdim=True).clamp_min(eps)
    p_hat = p / p_norm
    z_hat = F.normalize(z, dim=-1, eps=eps)
    cos = (p_hat * z_hat).sum(dim=-1, keepdim=True)
    return -(2.0 / p_norm) * (z_hat - cos * p_hat)
