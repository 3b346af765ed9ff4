"""Optimisers and the learning-rate schedules: warm-up + cosine, no weight decay on biases and
normalisation parameters (BYOL, METHODS.md section 1). Garg & Jain's released code used a step
schedule (StepLR) and weight decay on every parameter (METHODS.md section 6): both are options
(`pretrain.lr_schedule: step`, `pretrain.weight_decay_all: true`), BYOL's the defaults."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from typing import Callable

from byol_bench.errors import UserError


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) as BYOL uses it: SGD with momentum, the update of each parameter
    scaled by trust_coef * |w| / |grad + wd w|; groups with `lars=False` (biases, norms) skip
    both the scaling and weight decay."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coef: float = 1e-3):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coef=trust_coef, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if group["lars"]:
                    d = d.add(p, alpha=group["weight_decay"])
                    w_norm, d_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d)
                    trust = torch.where((w_norm > 0) & (d_norm > 0),
                                        group["trust_coef"] * w_norm / d_norm, torch.ones_like(w_norm))
                    d = d.mul(trust)
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(d)
                p.add_(buf, alpha=-group["lr"])


def param_groups(model: nn.Module, weight_decay: float, lars: bool = False,
                 decay_all: bool = False) -> list[dict]:
    """Two groups: weights with decay; biases and normalisation parameters (1-D) without (and,
    for LARS, without trust-ratio scaling). `decay_all`: every parameter in the first group
    (torch's plain `SGD(model.parameters(), weight_decay=...)`, as Garg & Jain's code does);
    the second group is then empty."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 and not decay_all else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0, **({"lars": False} if lars else {})}]


def build_optimizer(model: nn.Module, pre: dict) -> torch.optim.Optimizer:
    name = pre["optimizer"]
    groups = param_groups(model, pre["weight_decay"], lars=name == "lars",
                          decay_all=pre.get("weight_decay_all", False))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=pre["lr"], foreach=True)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=pre["lr"], momentum=pre["momentum"], foreach=True)
    if name == "lars":
        return LARS(groups, lr=pre["lr"], momentum=pre["momentum"])
    raise UserError(f"unknown optimizer {name!r}; valid: adamw, sgd, lars")


def warmup_cosine_lr(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up from 0 to base_lr, then cosine decay to 0 at total_steps."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def step_lr(step: int, steps_per_epoch: int, step_epochs: int, gamma: float, base_lr: float,
            warmup_steps: int = 0) -> float:
    """torch's StepLR stepped once per epoch: base_lr * gamma^(epoch // step_epochs), with
    epoch = step // steps_per_epoch; an optional linear warm-up over the first warmup_steps.

    >>> step_lr(0, 10, 10, 0.5, 1.0), step_lr(99, 10, 10, 0.5, 1.0), step_lr(100, 10, 10, 0.5, 1.0)
    (1.0, 1.0, 0.5)
    """
    if steps_per_epoch < 1 or step_epochs < 1:
        raise ValueError(f"steps_per_epoch and step_epochs must be >= 1, got {steps_per_epoch}, {step_epochs}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    return base_lr * gamma ** ((step // steps_per_epoch) // step_epochs)


def lr_schedule(pre: dict, steps_per_epoch: int) -> Callable[[int], float]:
    """The pretraining LR as a function of the step, chosen once from `pretrain.lr_schedule`:
    warmup_cosine (BYOL) or step (`lr_step_epochs`, `lr_gamma`); both honour warmup_epochs."""
    total = pre["epochs"] * steps_per_epoch
    warmup = pre["warmup_epochs"] * steps_per_epoch
    kind = pre.get("lr_schedule", "warmup_cosine")
    if kind == "warmup_cosine":
        return lambda step: warmup_cosine_lr(step, total, warmup, pre["lr"])
    if kind == "step":
        if pre["lr_step_epochs"] < 1:
            raise UserError(f"pretrain.lr_step_epochs must be >= 1, got {pre['lr_step_epochs']}")
        return lambda step: step_lr(step, steps_per_epoch, pre["lr_step_epochs"], pre["lr_gamma"],
                                    pre["lr"], warmup)
    raise UserError(f"unknown pretrain.lr_schedule {kind!r}; valid: warmup_cosine, step")
