"""Fixed, seeded, stratified (and optionally grouped) splits.

Split seeds come from the dataset card and never from the run seed, so every run of every
method is scored on the same test set and seeds pair up across methods.
"""
from __future__ import annotations

import numpy as np


def stratified_split(labels: np.ndarray, fractions: dict[str, float], seed: int,
                     groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Split indices 0..N-1 into named parts with the given fractions (summing to 1).

    Stratified by `labels` (1-D class ids; for multilabel pass any 1-D stratum such as the
    first positive label). With `groups`, whole groups move together: each group is assigned
    by its first member's label, so no group spans two parts. Returns sorted index arrays.
    """
    labels = np.asarray(labels)
    names = list(fractions)
    fr = np.array([fractions[n] for n in names], dtype=float)
    if np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    if groups is None:
        groups = np.arange(len(labels))
    uniq, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    group_label = labels[first]
    group_size = np.bincount(inverse)
    assigned = np.empty(len(uniq), dtype=int)
    for cls in np.unique(group_label):
        members = np.flatnonzero(group_label == cls)
        members = members[rng.permutation(len(members))]
        # Fill parts to their share of images (not groups), in order.
        sizes = group_size[members]
        targets = np.cumsum(fr) * sizes.sum()
        cum = np.cumsum(sizes) - sizes / 2.0
        assigned[members] = np.minimum(np.searchsorted(targets, cum, side="right"), len(names) - 1)
    part_of_image = assigned[inverse]
    return {n: np.flatnonzero(part_of_image == k) for k, n in enumerate(names)}


def label_strata(labels: np.ndarray) -> np.ndarray:
    """A 1-D stratum per example: the class for multiclass; for multi-hot (N, L) labels the
    first positive label, or L for none ("No Finding")."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels
    positive = labels > 0
    return np.where(positive.any(axis=1), positive.argmax(axis=1), labels.shape[1])


def carve_pool(labels: np.ndarray, fractions: dict[str, float], seed: int,
               groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Carve the labelled pool into the card's numeric splits (stratified, grouped if given).

    A thin wrapper over `stratified_split` taking multiclass or multi-hot labels.
    """
    return stratified_split(label_strata(labels), fractions, seed, groups)
