"""`CrossSimilarityBYOL`: BYOL + lam * an in-batch cross-similarity loss (Garg & Jain 2022;
METHODS.md section 4), the base of `byol-ccsl` (byol_ccsl.py) and `byol-cssl` (byol_cssl.py).

The loss itself is `byol_bench.losses.cross_similarity.cross_similarity_loss`; see byol_ccsl.py for
which parts are the paper's and which are ours.
"""
from __future__ import annotations

import torch

from byol_bench.errors import UserError
from byol_bench.losses.cross_similarity import THETA_NEG, THETA_POS, cross_similarity_loss
from byol_bench.method import StepContext
from byol_bench.methods.byol import BYOL, ViewOutputs


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
