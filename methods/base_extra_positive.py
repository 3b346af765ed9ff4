"""`ExtraPositiveBYOL`: BYOL + BYOL's loss towards one extra positive per image (METHODS.md
sections 3 and 5), the base of `byol-tracin` (byol_tracin.py) and its `byol-nn` control (byol_nn.py).

Each image i gets a partner j*(i) = argmax_{j != i} S_ij from a subclass's score S; the extra term
is mean_i [l(p1_i, z'2_j*) + l(p2_i, z'1_j*)] (`byol_bench.losses.extra_positive`). Ours (the paper
does not give them): `lam` (1.0), L = L_byol + lam * L_extra; `warmup_frac` (0.1), the extra term
off for the first 10% of the steps; scores in float32 under no_grad with autocast off; under DDP
the columns are the global batch (one all_gather); tied scores go to a uniformly random partner
(a column order drawn from the run seed and step, the same on every process). Monitoring only,
never trained on: per epoch, how often the partner shares the true label (`partner_same_label`;
images without a label are left out).
"""
from __future__ import annotations

import abc

import torch
from torch import Tensor

from byol_bench.errors import UserError
from byol_bench.method import StepContext
from byol_bench.losses.extra_positive import extra_positive_loss, select_partners, tie_break_order
from byol_bench.methods.byol import BYOL, ViewOutputs


class ExtraPositiveBYOL(BYOL, metaclass=abc.ABCMeta):
    """BYOL + lam * the loss towards one extra positive per image; subclasses define the score.

    `score_features(out)` gives the per-sample tensors the score needs beyond the target
    projections; rows = [z'1, z'2, *score_features] of this process's batch travel as one
    all_gather to give the columns, and `score(rows, cols)` turns them into the (B, B_global)
    matrix that `select_partners` reads.
    """
    options = {"lam": 1.0, "warmup_frac": 0.1}

    def __init__(self, encoder, cfg, options, num_classes, task):
        super().__init__(encoder, cfg, options, num_classes, task)
        self._sums: dict[str, Tensor] = {}

    @classmethod
    def configure(cls, run_config: dict) -> None:
        opt, name = run_config["method_options"], run_config["method"]
        if opt["lam"] < 0:
            raise UserError(f"method_options.{name}.lam must be >= 0, got {opt['lam']}")
        if not 0.0 <= opt["warmup_frac"] <= 1.0:
            raise UserError(f"method_options.{name}.warmup_frac must lie in [0, 1], got {opt['warmup_frac']}")

    def score_features(self, out: ViewOutputs) -> list[Tensor]:
        """Detached float32 (B, d) tensors the score needs besides z'1, z'2."""
        return []

    @abc.abstractmethod
    def score(self, rows: list[Tensor], cols: list[Tensor]) -> Tensor:
        """Scores (B, B_cols) from [z'1, z'2, *score_features] of the rows and of the columns."""

    @torch.no_grad()
    def partner_scores(self, out: ViewOutputs, ctx: StepContext) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(scores (B, B_global), (z'1, z'2) over the global batch), float32, no autograd history."""
        rows = [z.detach().float() for z in out.z_target] + self.score_features(out)
        cols = rows
        if ctx.world_size > 1:
            widths = [t.shape[1] for t in rows]
            cols = list(ctx.gather(torch.cat(rows, dim=1)).split(widths, dim=1))
        return self.score(rows, cols), (cols[0], cols[1])

    def extra_loss(self, out: ViewOutputs, ctx: StepContext) -> tuple[Tensor | None, dict]:
        if ctx.progress < self.opt["warmup_frac"]:
            return None, {}
        batch = out.p[0].shape[0]
        scores, (z1_cols, z2_cols) = self.partner_scores(out, ctx)
        order = tie_break_order(scores.shape[1], ctx.seed, ctx.step, scores.device)
        partners = select_partners(scores, exclude_self_offset=ctx.rank * batch, tie_order=order)
        loss = extra_positive_loss(out.p[0], out.p[1], z1_cols, z2_cols, partners)
        self._record(loss, partners, ctx)
        return self.opt["lam"] * loss, {}

    @torch.no_grad()
    def _record(self, loss: Tensor, partners: Tensor, ctx: StepContext) -> None:
        """Device-side sums for `epoch_logs` (no host sync in the step)."""
        figures = {"loss/extra": loss.detach().float(), "extra/active_steps": torch.ones((), device=loss.device)}
        if ctx.labels is not None:
            same, known = partner_label_agreement(ctx.labels, ctx.gather(ctx.labels), partners)
            figures.update({"extra/partner_same_label": same, "extra/labelled_rows": known})
        for key, value in figures.items():
            self._sums[key] = self._sums.get(key, 0) + value

    def epoch_logs(self, reduce_sum=lambda t: t) -> dict[str, float]:
        """Per epoch, over the steps with the extra term on: its mean loss and the share of
        partners with the same true label (among rows where both labels are known), over the
        global batch (sums over processes; the loss is averaged over them)."""
        keys = ("loss/extra", "extra/active_steps", "extra/partner_same_label", "extra/labelled_rows")
        device = next(self.target.parameters()).device  # NCCL reduces device tensors only
        sums = torch.stack([torch.as_tensor(self._sums.get(k, 0.0), dtype=torch.float64, device=device)
                            for k in keys])
        sums = dict(zip(keys, reduce_sum(sums).tolist()))  # one reduction, one host sync per epoch
        self._sums = {}
        logs = {}
        if sums.get("extra/active_steps"):
            logs["loss/extra"] = sums["loss/extra"] / sums["extra/active_steps"]
        if sums.get("extra/labelled_rows"):
            logs["extra/partner_same_label"] = sums["extra/partner_same_label"] / sums["extra/labelled_rows"]
        return logs


def partner_label_agreement(labels: Tensor, labels_cols: Tensor, partners: Tensor) -> tuple[Tensor, Tensor]:
    """(#rows whose partner has the same label, #rows where both labels are known), as tensors.

    Multiclass labels are (B,) ints, multilabel ones (B, L) 0/1 rows ("same" = identical rows);
    -1 marks an image without a label (the unlabeled split), which counts in neither number.
    """
    mine, theirs = labels, labels_cols[partners]
    if mine.dim() == 1:
        known, same = (mine >= 0) & (theirs >= 0), mine == theirs
    else:
        known, same = (mine >= 0).all(1) & (theirs >= 0).all(1), (mine == theirs).all(1)
    return (same & known).sum(), known.sum()
