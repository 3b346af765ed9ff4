"""CCSL and CSSL: in-batch similarity losses on top of BYOL (Garg & Jain 2022; METHODS.md section 4).

What is the paper's: both losses find semantically similar pairs *within the batch* and pull
their representations together, on top of BYOL; the authors' scripts use two thresholds,
theta+ = 0.8 and theta- = 0.2. What is OURS: every formula below. The paper's exact
formulas were never published and its code was never released, so this module is the
harness's definition, not a reproduction:

- pseudo-labels from the target network, no gradient: S_ij = cos(z'1_i, z'2_j), i != j;
  y_ij = 1 if S_ij >= theta+, y_ij = 0 if S_ij <= theta-, otherwise the pair is ignored.
  The diagonal (the true positive pair) stays with the BYOL term;
- online cross-similarities C_ij = cos(p1_i, z'2_j), and the same for the other view pair;
- CCSL (cross-cosine): mean over y=1 of (1 - C_ij) + mean over y=0 of max(0, C_ij - m), m = 0;
- CSSL (cross-sigmoid): binary cross-entropy of sigmoid(C_ij / t + b) against y_ij, t = 0.1, b = 0;
- the two view pairs are summed, like BYOL's two directions; an empty labelled set gives 0.

Under DDP the columns (z'_cols) may be the global batch gathered from all processes; row i's
own column is then i + self_offset. Each mean is over the *global* set of labelled pairs
(`reduce_sum` adds the pair counts of all processes), so the loss and its DDP-averaged gradient
do not depend on the process count. Similarities are computed in float32 with autocast off.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from byol_bench.losses.byol import EPS, cosine_matrix
from byol_bench.losses.precision import at_least_float32, float32_math

THETA_POS = 0.8
"""theta+ from the authors' scripts (the paper's value)."""
THETA_NEG = 0.2
"""theta- from the authors' scripts (the paper's value)."""


def pseudo_labels(z1: Tensor, z2_cols: Tensor, theta_pos: float = THETA_POS,
                  theta_neg: float = THETA_NEG, self_offset: int = 0,
                  eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Boolean (pos_mask, neg_mask), each (B_rows, B_cols), from S_ij = cos(z1_i, z2_cols_j).

    Ours (METHODS.md section 4; the thresholds are the authors'): pos = S >= theta_pos,
    neg = S <= theta_neg, both inclusive; pairs in between are ignored. Row i's own column
    i + self_offset is in neither mask. Computed in float32 without autograd history.
    """
    if not theta_neg < theta_pos:
        raise ValueError(f"need theta_neg < theta_pos, got {theta_neg} and {theta_pos}")
    rows, cols = z1.shape[0], z2_cols.shape[0]
    if self_offset < 0 or self_offset + rows > cols:
        raise ValueError(f"self columns {self_offset}..{self_offset + rows - 1} "
                         f"fall outside the {cols} columns")
    with torch.no_grad(), float32_math(z1):
        sim = cosine_matrix(at_least_float32(z1), at_least_float32(z2_cols), eps)
        off_diagonal = torch.ones_like(sim, dtype=torch.bool)
        idx = torch.arange(rows, device=sim.device)
        off_diagonal[idx, idx + self_offset] = False
        return (sim >= theta_pos) & off_diagonal, (sim <= theta_neg) & off_diagonal


def _masked_sum(values: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, values, torch.zeros_like(values)).sum()


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of values[mask]; exactly 0 (with a zero gradient, not NaN) when the mask is empty."""
    return _masked_sum(values, mask) / mask.sum().clamp_min(1)


def ccsl_terms(sim: Tensor, pos_mask: Tensor, neg_mask: Tensor, margin: float = 0.0) -> list[tuple[Tensor, Tensor]]:
    """CCSL's two means as (masked sum, its mask): over y=1 of 1 - C, over y=0 of max(0, C - m)."""
    return [(1.0 - sim, pos_mask), (torch.clamp(sim - margin, min=0.0), neg_mask)]


def cssl_terms(sim: Tensor, pos_mask: Tensor, neg_mask: Tensor, temperature: float = 0.1,
               bias: float = 0.0) -> list[tuple[Tensor, Tensor]]:
    """CSSL's one mean as (values, mask): BCE(sigmoid(C / t + b), y) over the labelled pairs."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = sim / temperature + bias
    bce = F.binary_cross_entropy_with_logits(logits, pos_mask.to(logits.dtype), reduction="none")
    return [(bce, pos_mask | neg_mask)]


def ccsl_loss(sim: Tensor, pos_mask: Tensor, neg_mask: Tensor, margin: float = 0.0) -> Tensor:
    """CCSL (cross-cosine similarity loss), ours: a cosine-embedding loss over labelled pairs.

    L = mean_{y_ij=1} (1 - C_ij) + mean_{y_ij=0} max(0, C_ij - margin), with C = `sim` the online
    cross-similarities. Each mean over an empty set contributes exactly 0 (METHODS.md section 4;
    the paper's formula is unpublished). The masks must be disjoint.
    """
    _check_shapes(sim, pos_mask, neg_mask)
    return sum(_masked_mean(v, m) for v, m in ccsl_terms(sim, pos_mask, neg_mask, margin))


def cssl_loss(sim: Tensor, pos_mask: Tensor, neg_mask: Tensor, temperature: float = 0.1,
              bias: float = 0.0) -> Tensor:
    """CSSL (cross-sigmoid similarity loss), ours: binary cross-entropy on the labelled pairs.

    L = mean_{labelled ij} BCE(sigmoid(C_ij / t + b), y_ij), y_ij = 1 on `pos_mask` and 0 on
    `neg_mask`, computed with logits for stability; 0 when no pair is labelled (METHODS.md
    section 4; the paper's formula is unpublished). The masks must be disjoint.
    """
    _check_shapes(sim, pos_mask, neg_mask)
    return sum(_masked_mean(v, m) for v, m in cssl_terms(sim, pos_mask, neg_mask, temperature, bias))


def _check_shapes(sim: Tensor, pos_mask: Tensor, neg_mask: Tensor) -> None:
    if sim.shape != pos_mask.shape or sim.shape != neg_mask.shape:
        raise ValueError("sim, pos_mask and neg_mask must have the same shape")


def cross_similarity_loss(kind: str, p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor,
                          z1_cols: Tensor | None = None, z2_cols: Tensor | None = None, *,
                          theta_pos: float = THETA_POS, theta_neg: float = THETA_NEG,
                          self_offset: int = 0, margin: float = 0.0, temperature: float = 0.1,
                          bias: float = 0.0, eps: float = EPS,
                          reduce_sum: Callable[[Tensor], Tensor] | None = None,
                          world_size: int = 1) -> tuple[Tensor, dict[str, Tensor]]:
    """The CCSL or CSSL term over both view pairs, summed: (loss, stats). Ours (section 4).

    Direction 1: C_ij = cos(p1_i, z'2_j) labelled by S_ij = cos(z'1_i, z'2_j).
    Direction 2: C_ij = cos(p2_i, z'1_j) labelled by S_ij = cos(z'2_i, z'1_j).
    loss = loss_1 + loss_2 (summed like BYOL's two directions); the caller adds lambda * loss.

    Args:
        kind: "ccsl" (uses `margin`) or "cssl" (uses `temperature`, `bias`).
        p1, p2: online predictions of the local batch, (B, D).
        z1, z2: detached target projections of the local batch, (B, D): the label rows.
        z1_cols, z2_cols: target projections of the columns (the global batch under DDP),
            default z1, z2; row i's own column is i + self_offset.
        reduce_sum, world_size: under DDP, the all_reduce(SUM) over the `world_size` processes.
            Each mean is then sum over this process's rows / number of labelled pairs over ALL
            rows, times `world_size`: DDP averages the gradients over processes, so the
            effective loss is the mean over the global set of pairs, as on one process.
    Returns:
        loss: scalar tensor (gradient flows into p1, p2 only; targets are detached).
        stats: {"pos_fraction", "neg_fraction"}: the share of the global batch's off-diagonal
            pairs, over both directions, labelled positive / negative, as detached 0-d float
            tensors (no device sync in the training step; the caller converts once per epoch).
    """
    if kind not in ("ccsl", "cssl"):
        raise ValueError(f"kind must be 'ccsl' or 'cssl', got {kind!r}")
    z1_cols = z1 if z1_cols is None else z1_cols
    z2_cols = z2 if z2_cols is None else z2_cols
    if z1_cols.shape != z2_cols.shape:
        raise ValueError("z1_cols and z2_cols must have the same shape")
    with float32_math(p1):
        p1, p2 = at_least_float32(p1), at_least_float32(p2)
        z1, z2, z1_cols, z2_cols = (at_least_float32(z.detach()) for z in (z1, z2, z1_cols, z2_cols))
        terms, n_pos, n_neg = [], 0, 0
        for p, z_rows, z_cols in ((p1, z1, z2_cols), (p2, z2, z1_cols)):
            pos, neg = pseudo_labels(z_rows, z_cols, theta_pos, theta_neg, self_offset, eps)
            sim = cosine_matrix(p, z_cols, eps)
            if kind == "ccsl":
                terms += ccsl_terms(sim, pos, neg, margin)
            else:
                terms += cssl_terms(sim, pos, neg, temperature, bias)
            n_pos, n_neg = n_pos + pos.sum(), n_neg + neg.sum()
        # One reduction carries every mean's pair count and the two label counts.
        counts = torch.stack([m.sum() for _, m in terms] + [n_pos, n_neg]).float()
        if reduce_sum is not None:
            counts = reduce_sum(counts)
        loss = sum(world_size * _masked_sum(v, m) / c.clamp_min(1) for (v, m), c in zip(terms, counts))
    # Reduced counts cover every process's rows (the global batch, = the columns).
    rows, cols = (z1 if reduce_sum is None else z1_cols).shape[0], z1_cols.shape[0]
    pairs = max(2 * rows * (cols - 1), 1)
    stats = {"pos_fraction": (counts[-2] / pairs).detach(), "neg_fraction": (counts[-1] / pairs).detach()}
    return loss, stats
