"""BYOL's target network: the EMA schedule and update (METHODS.md section 1).

Canonical BYOL (Grill et al. 2020): xi <- tau xi + (1 - tau) theta after every optimizer step,
with tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2; "constant" is Garg & Jain's code's.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


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
