"""`byol-nn`, our control for `byol-tracin` (METHODS.md section 5; no paper has it).

The extra positive is the nearest neighbour in the target embedding (as in NNCLR / Mean Shift),
everything else as `byol-tracin` (same selection, loss, lam, warmup_frac, logs: ExtraPositiveBYOL).
It tells whether TracIn beats the obvious choice. With two views the score is ours too: the sum
of the target cosines over the four view pairs, S_ij = sum_{u,v} cos(z'_ui, z'_vj), the analogue
of TracIn's two-view sum.
"""
from __future__ import annotations

from byol_bench.method import METHODS
from byol_bench.losses.extra_positive import nearest_neighbour_scores
from byol_bench.methods.base_extra_positive import ExtraPositiveBYOL


@METHODS.register("byol-nn", description="control (ours): BYOL + an extra positive per image, the "
                  "nearest neighbour in target-embedding cosine; otherwise as byol-tracin")
class BYOLNearestNeighbour(ExtraPositiveBYOL):
    """Control (ours): the extra positive is the target-embedding nearest neighbour."""

    def score(self, rows, cols):
        return sum(nearest_neighbour_scores(u, v) for u in rows[:2] for v in cols[:2])
