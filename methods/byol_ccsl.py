"""BYOL + CCSL, and `CrossSimilarityBYOL`, the code it shares with BYOL + CSSL (byol_cssl.py):
Garg & Jain 2022, METHODS.md section 4.

The paper's: an in-batch loss on top of BYOL that finds semantically similar pairs and pulls
them together, with the thresholds theta+ = 0.8 and theta- = 0.2 of the authors' scripts.
Ours: every formula (the paper's are unpublished and its code was never released), as
`harness.similarity_losses.cross_similarity_loss` defines them: pseudo-labels from the target
cosines S_ij = cos(z'1_i, z'2_j) (i != j; y = 1 if S >= theta+, 0 if S <= theta-, else ignored),
online cross-similarities C_ij = cos(p1_i, z'2_j) and the other view pair, summed;
CCSL = mean_{y=1} (1 - C) + mean_{y=0} max(0, C - margin); CSSL = BCE(sigmoid(C / t + b), y);
an empty labelled set gives 0. Also ours: L = L_byol + lam * L_cross with lam = 1.0, margin 0,
t = 0.1, b = 0, and the columns being the global batch under DDP, each mean taken over the
global set of labelled pairs. Logged per epoch: the fractions of off-diagonal pairs labelled
positive and negative.
"""
from __future__ import annotations

import torch

from harness.errors import UserError
from harness.method import METHODS, StepContext
from harness.similarity_losses import THETA_NEG, THETA_POS, cross_similarity_loss
from methods.byol import BYOL, ViewOutputs


class CrossSimilarityBYOL(BYOL):
    """BYOL + lam * cross_similarity_loss(kind); `loss_options` are passed to it from the options."""
    kind = "ccsl"
    loss_options: tuple[str, ...] = ()
    options = {"theta_pos": THETA_POS, "theta_neg": THETA_NEG, "lam": 1.0}

    def __init__(self, encoder, cfg, options, num_classes, task):
        super().__init__(encoder, cfg, options, num_classes, task)
        self._sums: dict[str, torch.Tensor | float] = {}

    @classmethod
    def configure(cls, run_config: dict) -> None:
        opt, name = run_config["method_options"], run_config["method"]
        if not opt["theta_neg"] < opt["theta_pos"]:
            raise UserError(f"method_options.{name}: need theta_neg < theta_pos, "
                            f"got {opt['theta_neg']} and {opt['theta_pos']}")
        if opt["lam"] < 0:
            raise UserError(f"method_options.{name}.lam must be >= 0, got {opt['lam']}")
        if opt.get("temperature", 1.0) <= 0:
            raise UserError(f"method_options.{name}.temperature must be > 0, got {opt['temperature']}")

    def extra_loss(self, out: ViewOutputs, ctx: StepContext):
        p1, p2 = out.p
        z1, z2 = (z.detach() for z in out.z_target)
        z1_cols = z2_cols = None
        if ctx.world_size > 1:
            z1_cols, z2_cols = ctx.gather(torch.cat([z1, z2], dim=1)).chunk(2, dim=1)
        loss, stats = cross_similarity_loss(
            self.kind, p1, p2, z1, z2, z1_cols, z2_cols, theta_pos=self.opt["theta_pos"],
            theta_neg=self.opt["theta_neg"], self_offset=ctx.rank * p1.shape[0],
            reduce_sum=ctx.reduce_sum if ctx.world_size > 1 else None, world_size=ctx.world_size,
            **{k: self.opt[k] for k in self.loss_options})
        for key, value in {**stats, "steps": 1.0}.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        return self.opt["lam"] * loss, {f"loss/{self.kind}": loss.detach()}

    def epoch_logs(self, reduce_sum=lambda t: t) -> dict[str, float]:
        """Per epoch: mean share of the off-diagonal pairs labelled positive / negative (the
        fractions are already the global batch's: their counts were reduced in the loss)."""
        sums, self._sums = {k: float(v) for k, v in self._sums.items()}, {}  # one sync per epoch
        steps = sums.pop("steps", 0.0)
        return {f"{self.kind}/{key}": value / steps for key, value in sums.items()} if steps else {}


@METHODS.register("byol-ccsl", description="BYOL + CCSL, cross-cosine loss on in-batch pairs labelled by "
                  "target cosine (Garg & Jain 2022; thresholds 0.8/0.2 theirs, formula ours)")
class BYOLCCSL(CrossSimilarityBYOL):
    """BYOL + CCSL (Garg & Jain 2022; formula ours, see the module doc)."""
    kind = "ccsl"
    loss_options = ("margin",)
    options = {**CrossSimilarityBYOL.options, "margin": 0.0}
