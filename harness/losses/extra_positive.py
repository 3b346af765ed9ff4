"""Choosing one extra positive per image inside the batch (METHODS.md sections 3 and 5).

The scoring, selection and extra loss shared by `byol-tracin` (Zeng et al. 2023) and its
nearest-neighbour control `byol-nn` (ours):

1. score every pair (i, j) of the batch: `pairwise_tracin` (gradient influence, the paper's
   criterion) or `nearest_neighbour_scores` (target-embedding cosine, our control);
2. `select_partners`: j*(i) = argmax_{j != i} score[i, j];
3. `extra_positive_loss`: mean_i [ l(p1_i, z'2_{j*(i)}) + l(p2_i, z'1_{j*(i)}) ].

Under DDP the rows are this process's local batch and the columns the global batch gathered
from all processes; row i's own column is then i + rank * local_batch (`exclude_self_offset`).
The gathering itself is the caller's job: these are pure tensor functions.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

from byol_bench.losses.byol import EPS, byol_pair_loss, cosine_matrix
from byol_bench.losses.precision import at_least_float32, float32_math

Views = Union[Tensor, Sequence[Tensor]]
"""One (B, d) tensor, or one tensor per augmented view, all with the same B."""


def pairwise_tracin(acts: Views, grads: Views, normalize: bool = False, *,
                    acts_cols: Views | None = None, grads_cols: Views | None = None,
                    bias: bool = True, eps: float = EPS) -> Tensor:
    """Batch-wise TracIn of one Linear layer y = W a + b: T (B_rows, B_cols), no autograd history.

    T_ij = < grad_{W,b} l_i , grad_{W,b} l_j >, with l_i sample i's own loss. The layer's
    per-sample gradient is grad_W l_i = sum_u g_ui a_ui^T and grad_b l_i = sum_u g_ui, summing
    over the views u that share the layer, with a_ui its input and g_ui = dl_i / dy_ui its output
    gradient for that view. Hence, from Gram matrices only (Pruthi et al. 2020's TracIn at one
    checkpoint, adapted to a BYOL batch as METHODS.md section 3 describes for Zeng et al. 2023):

        T_ij = sum_{u, v in views} (a_ui . a_vj + 1) (g_ui . g_vj)        ("+ 1" is the bias)

    O(V^2 B_rows B_cols (d_in + d_out)) time; nothing of size B x d_in x d_out and no extra
    backward pass. This is exact only if y_i affects l_i alone (no BatchNorm or other
    cross-sample mixing after the layer), as for BYOL's predictor's last Linear. The learning-rate
    factor of TracIn is dropped: it does not change an argmax.

    Args:
        acts: layer inputs a_u, one (B, d_in) tensor per view (or a single tensor: one view).
        grads: matching output gradients g_u = dl_i/dy_ui, one (B, d_out) tensor per view; from
            `byol_loss_grad_wrt_p` or from autograd of the summed per-sample loss w.r.t. y.
        normalize: our option, off by default (raw TracIn is the paper's criterion): return the
            cosine T_ij / sqrt(T_ii T_jj), in [-1, 1], so that samples with large gradients do
            not win every argmax. A zero gradient gives 0 rather than NaN.
        acts_cols, grads_cols: the columns' views (under DDP the global batch gathered from all
            processes); both or neither; default: the rows.
        bias: whether the layer has a bias (the "+ 1" term).
        eps: floor on sqrt(T_ii T_jj) when normalising.

    Scored in float32 with autocast off, whatever the inputs' dtype or the autocast setting.
    """
    rows_a, rows_g = _views(acts, grads, "acts", "grads")
    if (acts_cols is None) != (grads_cols is None):
        raise ValueError("give both acts_cols and grads_cols, or neither")
    if acts_cols is None:
        cols_a, cols_g = rows_a, rows_g
    else:
        cols_a, cols_g = _views(acts_cols, grads_cols, "acts_cols", "grads_cols")
        if rows_a[0].shape[1:] != cols_a[0].shape[1:] or rows_g[0].shape[1:] != cols_g[0].shape[1:]:
            raise ValueError("rows and columns must have the same feature sizes")
    offset = 1.0 if bias else 0.0
    with torch.no_grad(), float32_math(rows_a[0]):
        scores = sum((a_u @ a_v.T + offset) * (g_u @ g_v.T)
                     for a_u, g_u in zip(rows_a, rows_g) for a_v, g_v in zip(cols_a, cols_g))
        if not normalize:
            return scores
        # Squared per-sample gradient norms T_ii: the diagonal of the same sum, row by row.
        sq_rows = _squared_grad_norms(rows_a, rows_g, offset)
        sq_cols = sq_rows if acts_cols is None else _squared_grad_norms(cols_a, cols_g, offset)
        denom = (sq_rows[:, None] * sq_cols[None, :]).clamp_min(0.0).sqrt().clamp_min(eps)
        return (scores / denom).clamp_(-1.0, 1.0)


def _squared_grad_norms(acts: list[Tensor], grads: list[Tensor], offset: float) -> Tensor:
    """|grad_{W,b} l_i|^2 = sum_{u,v} (a_ui . a_vi + offset)(g_ui . g_vi), shape (B,)."""
    return sum(((a_u * a_v).sum(-1) + offset) * (g_u * g_v).sum(-1)
               for a_u, g_u in zip(acts, grads) for a_v, g_v in zip(acts, grads))


def _views(acts: Views, grads: Views, acts_name: str, grads_name: str) -> tuple[list[Tensor], list[Tensor]]:
    """Normalise to two equally long lists of 2-D tensors with one batch size (float32 at least)."""
    acts_list = [acts] if isinstance(acts, Tensor) else list(acts)
    grads_list = [grads] if isinstance(grads, Tensor) else list(grads)
    if not acts_list or len(acts_list) != len(grads_list):
        raise ValueError(f"{acts_name} and {grads_name} must hold the same number (>= 1) of views, "
                         f"got {len(acts_list)} and {len(grads_list)}")
    batch = acts_list[0].shape[0]
    for a, g in zip(acts_list, grads_list):
        if a.dim() != 2 or g.dim() != 2:
            raise ValueError(f"{acts_name} and {grads_name} must be 2-D (B, d) tensors")
        if a.shape != acts_list[0].shape or g.shape != grads_list[0].shape or a.shape[0] != batch \
                or g.shape[0] != batch:
            raise ValueError(f"every view of {acts_name} / {grads_name} must have the same shape "
                             f"and batch size {batch}")
    return [at_least_float32(a) for a in acts_list], [at_least_float32(g) for g in grads_list]


def tie_break_order(num_cols: int, seed: int, step: int, device: torch.device | str = "cpu") -> Tensor:
    """A random permutation of the columns, the same on every process for a (seed, step):
    `select_partners` reads the columns in this order, so tied scores go to a uniformly random
    one of them rather than to the lowest index (which under DDP is process 0's shard)."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + step) % 2**63)
    return torch.randperm(num_cols, generator=gen).to(device, non_blocking=True)


def select_partners(scores: Tensor, exclude_self_offset: int = 0, tie_order: Tensor | None = None) -> Tensor:
    """j*(i) = argmax_{j != i + offset} scores[i, j], a LongTensor (B_rows,).

    Zeng et al. 2023's selection (METHODS.md section 3) over the whole (global) batch. Row i's
    own column is i + exclude_self_offset (rank * local_batch under DDP) and is never chosen.
    Ties go to the column that comes first in `tie_order` (a permutation of the columns, see
    `tie_break_order`; default: the lowest index, as torch.argmax).
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D (B_rows, B_cols), got shape {tuple(scores.shape)}")
    rows, cols = scores.shape
    if cols < 2:
        raise ValueError("need at least two columns to pick a partner other than oneself")
    if exclude_self_offset < 0 or exclude_self_offset + rows > cols:
        raise ValueError(f"self columns {exclude_self_offset}..{exclude_self_offset + rows - 1} "
                         f"fall outside the {cols} columns")
    idx = torch.arange(rows, device=scores.device)
    masked = scores.detach().clone()
    if not masked.is_floating_point():
        masked = masked.double()
    masked[idx, idx + exclude_self_offset] = float("-inf")
    if tie_order is None:
        partners = masked.argmax(dim=1)
    else:
        if tie_order.shape != (cols,):
            raise ValueError(f"tie_order must be a permutation of the {cols} columns")
        partners = tie_order[masked[:, tie_order].argmax(dim=1)]
    # A row whose every other score is -inf (or NaN) could land on itself: send it to a neighbour.
    clash = partners == idx + exclude_self_offset
    return torch.where(clash, (partners + 1) % cols, partners)


def nearest_neighbour_scores(z_rows: Tensor, z_cols: Tensor | None = None, eps: float = EPS) -> Tensor:
    """Cosine similarities cos(z_rows_i, z_cols_j), shape (B_rows, B_cols), no autograd history.

    The `byol-nn` control's score (ours, METHODS.md section 5): the extra positive is the
    nearest neighbour in the target embedding, as in NNCLR / Mean Shift. z_cols defaults to
    z_rows. Float32 with autocast off.
    """
    if z_cols is None:
        z_cols = z_rows
    with torch.no_grad(), float32_math(z_rows):
        return cosine_matrix(at_least_float32(z_rows), at_least_float32(z_cols), eps)


def extra_positive_loss(p1: Tensor, p2: Tensor, z1_cols: Tensor, z2_cols: Tensor,
                        partners: Tensor, eps: float = EPS) -> Tensor:
    """L_extra = mean_i [ l(p1_i, z'2_{j*(i)}) + l(p2_i, z'1_{j*(i)}) ], a scalar.

    Zeng et al. 2023's extra-positive term in the form METHODS.md section 3 fixes: BYOL's
    symmetric loss with each image's target swapped for its partner's (same scale as
    `symmetric_byol_loss`: sum of directions, mean over the batch). Target sides are detached.
    p1, p2 (B, D) are the local online predictions; z1_cols, z2_cols (B_cols, D) the target
    projections over the columns that `partners` (B,) indexes (the global batch under DDP).
    The weight lambda and the warm-up are the caller's (our choices, not the paper's).
    """
    if partners.dim() != 1 or partners.shape[0] != p1.shape[0]:
        raise ValueError(f"partners must have shape ({p1.shape[0]},), got {tuple(partners.shape)}")
    if z1_cols.shape != z2_cols.shape:
        raise ValueError("z1_cols and z2_cols must have the same shape")
    z1_partner = z1_cols.detach()[partners]
    z2_partner = z2_cols.detach()[partners]
    return (byol_pair_loss(p1, z2_partner, eps) + byol_pair_loss(p2, z1_partner, eps)).mean()
