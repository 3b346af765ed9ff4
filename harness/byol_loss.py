"""BYOL's loss, its gradient, the target network's EMA schedule and update (METHODS.md section 1).

Everything here is the canonical BYOL of Grill et al. 2020, not a choice of ours:

- one direction: l(p, z') = 2 - 2 cos(p, z') = || p/|p| - z'/|z'| ||^2;
- symmetric:     L = mean_i [ l(p1_i, z'2_i) + l(p2_i, z'1_i) ]  (SUM of the two directions,
  MEAN over the batch; averaging the directions instead halves the gradient at a fixed learning
  rate, which is why the tests pin this scale with golden values);
- EMA:           xi <- tau xi + (1 - tau) theta after every optimizer step, with
  tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2.

Small pure functions so that a test can pin each one by hand; the BYOL base class calls them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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


def cosine_ema_schedule(step: int, total_steps: int, tau_base: float) -> float:
    """BYOL's target-momentum schedule: tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2.

    Grill et al. 2020: tau_0 = tau_base, rising to tau_K = 1 (k = step, K = total_steps).
    Steps past K are clamped to K (tau stays 1) rather than letting the cosine come back down.

    >>> cosine_ema_schedule(0, 100, 0.996), cosine_ema_schedule(50, 100, 0.996), cosine_ema_schedule(100, 100, 0.996)
    (0.996, 0.998, 1.0)
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if not 0.0 <= tau_base <= 1.0:
        raise ValueError(f"tau_base must lie in [0, 1], got {tau_base}")
    k = min(step, total_steps)
    return 1.0 - (1.0 - tau_base) * (math.cos(math.pi * k / total_steps) + 1.0) / 2.0


def ema_tau(schedule: str, step: int, total_steps: int, tau_base: float) -> float:
    """The target momentum at `step`: "cosine" (BYOL, `cosine_ema_schedule`) or "constant"
    (tau_base at every step, as Garg & Jain's released byol.py does; METHODS.md section 6).

    >>> ema_tau("constant", 0, 100, 0.996), ema_tau("constant", 99, 100, 0.996)
    (0.996, 0.996)
    """
    if schedule == "cosine":
        return cosine_ema_schedule(step, total_steps, tau_base)
    if schedule == "constant":
        if not 0.0 <= tau_base <= 1.0:
            raise ValueError(f"tau_base must lie in [0, 1], got {tau_base}")
        return tau_base
    raise ValueError(f"unknown EMA schedule {schedule!r}; valid: cosine, constant")


@torch.no_grad()
def update_ema(target: nn.Module, online: nn.Module, tau: float, copy_buffers: bool = True) -> None:
    """In place: xi <- tau xi + (1 - tau) theta for every parameter; buffers copied from online
    (unless `copy_buffers` is False: then the target's buffers are left as they are, as in
    Garg & Jain's released code, whose target keeps the BN statistics it accumulates itself).

    BYOL's target update (Grill et al. 2020). `target` and `online` must have the same structure
    (same parameter and buffer names and shapes, in the same order); pass the *unwrapped* online
    module under DDP. Buffers (BatchNorm running_mean / running_var / num_batches_tracked) are
    copied, not averaged (METHODS.md section 1). Runs under no_grad with torch._foreach ops:
    one fused kernel launch per list instead of one per tensor.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")
    target_params = _matching(target.named_parameters(), online.named_parameters(), "parameter")
    target_buffers = _matching(target.named_buffers(), online.named_buffers(), "buffer")
    if target_params:
        xi = [t for t, _ in target_params]
        theta = [o for _, o in target_params]
        torch._foreach_mul_(xi, tau)
        torch._foreach_add_(xi, theta, alpha=1.0 - tau)
    if copy_buffers:
        for t, o in target_buffers:
            t.copy_(o)


def _matching(target_named, online_named, kind: str) -> list[tuple[Tensor, Tensor]]:
    """Pair target and online tensors by position, checking names and shapes agree."""
    target_named, online_named = list(target_named), list(online_named)
    if len(target_named) != len(online_named):
        raise ValueError(f"target has {len(target_named)} {kind}s, online has {len(online_named)}")
    pairs = []
    for (t_name, t), (o_name, o) in zip(target_named, online_named):
        if t_name != o_name or t.shape != o.shape:
            raise ValueError(f"{kind} mismatch: target {t_name} {tuple(t.shape)} "
                             f"vs online {o_name} {tuple(o.shape)}")
        pairs.append((t, o))
    return pairs
