"""BYOL (Grill et al. 2020), the base every variant extends. METHODS.md section 1.

Online: encoder -> projector -> predictor; target: EMA copy of encoder + projector, no
predictor, no gradient. Loss: 2 - 2 cos(p, z'), summed over the two directions and averaged
over the batch. EMA after every optimizer step with tau_k = 1 - (1 - tau_base)(cos(pi k/K)+1)/2,
from the unwrapped online network, BatchNorm buffers copied. Garg & Jain's released code
differs (METHODS.md section 6) and is available as options: `byol.tau_schedule: constant`
(tau = tau_base at every step) and `byol.copy_target_bn_buffers: false` (the target keeps its
own BN statistics); the defaults are BYOL's.

Our choices (not from the paper): the two views go through the networks as one batch of 2B
(one forward, which DDP and throughput prefer; BatchNorm statistics pool both views), and the
head sizes of configs/default.yaml are scaled down for CPU (paper: 4096/256).

Variants override `extra_loss` (and may read `ViewOutputs`): nothing else.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from byol_bench.losses.ema import ema_tau, update_ema
from byol_bench.losses.byol import symmetric_byol_loss
from byol_bench.method import METHODS, Method, StepContext
from byol_bench.models.heads import MLPHead


class OnlineNetwork(nn.Module):
    """encoder -> projector (`net`, the part the target mirrors) -> predictor."""

    def __init__(self, encoder: nn.Module, projector: MLPHead, predictor: MLPHead):
        super().__init__()
        self.net = nn.Sequential(encoder, projector)
        self.predictor = predictor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (projection z, prediction p, predictor hidden a = input of its last Linear)."""
        z = self.net(x)
        p, a = self.predictor.forward_with_hidden(z)
        return z, p, a


@dataclass
class ViewOutputs:
    """Per-view outputs of one BYOL step (index 0 = view 1, 1 = view 2)."""
    p: tuple[torch.Tensor, torch.Tensor]        # online predictions
    z_target: tuple[torch.Tensor, torch.Tensor]  # target projections (no grad)
    pred_hidden: tuple[torch.Tensor, torch.Tensor]  # input of the predictor's last Linear
    per_sample_loss: torch.Tensor               # (B,) symmetric BYOL loss per image


@METHODS.register("byol", description="BYOL (Grill et al. 2020): 2-2cos symmetric loss, EMA target with cosine tau")
class BYOL(Method):
    """BYOL (Grill et al. 2020): 2-2cos symmetric loss, EMA target with cosine tau."""
    config_sections = ("backbone", "pretrain", "augment", "byol")

    def __init__(self, encoder: nn.Module, cfg: dict, options: dict, num_classes: int, task: str):
        super().__init__(encoder, cfg, options, num_classes, task)
        b = cfg["byol"]
        projector = MLPHead(encoder.feat_dim, b["proj_hidden"], b["proj_dim"], b["heads_norm"])
        predictor = MLPHead(b["proj_dim"], b["pred_hidden"], b["proj_dim"], b["heads_norm"])
        self.online = OnlineNetwork(encoder, projector, predictor)
        self.target = copy.deepcopy(self.online.net)
        self.target.requires_grad_(False)
        self.tau_base = b["tau_base"]
        self.tau_schedule = b["tau_schedule"]            # cosine (BYOL) | constant (Garg & Jain's code)
        self.copy_target_bn_buffers = b["copy_target_bn_buffers"]

    @property
    def encoder(self) -> nn.Module:
        return self.online.net[0]

    def to(self, device: torch.device) -> "BYOL":
        self.online.to(device)
        self.target.to(device)
        return self

    def network_states(self) -> dict[str, dict]:
        return {"online": self.online.state_dict(), "target": self.target.state_dict()}

    def load_networks(self, states: dict[str, dict]) -> None:
        self.online.load_state_dict(states["online"])
        self.target.load_state_dict(states["target"])

    def convert_sync_batchnorm(self) -> None:
        # The target normalises the same global batch as the online network: with per-GPU
        # statistics its projections would come from differently normalised features.
        super().convert_sync_batchnorm()
        self.target = nn.SyncBatchNorm.convert_sync_batchnorm(self.target)

    def forward_views(self, model: nn.Module, v1: torch.Tensor, v2: torch.Tensor) -> ViewOutputs:
        b = v1.shape[0]
        both = torch.cat([v1, v2])
        _, p, a = model(both)
        with torch.no_grad():
            z_t = self.target(both)
        _, per_sample = symmetric_byol_loss(p[:b], p[b:], z_t[:b], z_t[b:])
        return ViewOutputs(p=(p[:b], p[b:]), z_target=(z_t[:b], z_t[b:]),
                           pred_hidden=(a[:b], a[b:]), per_sample_loss=per_sample)

    def training_step(self, model, views, ctx):
        out = self.forward_views(model, views[0], views[1])
        byol = out.per_sample_loss.mean()
        extra, logs = self.extra_loss(out, ctx)
        logs = {"loss/byol": byol.detach(), **logs}
        return (byol if extra is None else byol + extra), logs

    def extra_loss(self, out: ViewOutputs, ctx: StepContext) -> tuple[torch.Tensor | None, dict]:
        """What a variant adds to the BYOL loss (vanilla BYOL: nothing)."""
        return None, {}

    def after_optimizer_step(self, ctx: StepContext) -> None:
        tau = ema_tau(self.tau_schedule, ctx.step, ctx.total_steps, self.tau_base)
        update_ema(self.target, self.online.net, tau, copy_buffers=self.copy_target_bn_buffers)
