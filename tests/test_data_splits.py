"""Fixed splits: deterministic, disjoint, covering, stratified, grouped."""
import numpy as np
import pytest

from byol_bench.data.splits import carve_pool, label_strata, stratified_split


def _check_partition(parts, n):
    allidx = np.concatenate(list(parts.values()))
    assert len(allidx) == n and len(np.unique(allidx)) == n  # disjoint and covering


def test_deterministic_disjoint_covering_and_stratified():
    labels = np.repeat(np.arange(4), 50)
    fr = {"train": 0.7, "val": 0.1, "test": 0.2}
    a = stratified_split(labels, fr, seed=3)
    b = stratified_split(labels, fr, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in fr)
    _check_partition(a, len(labels))
    for k, f in fr.items():
        assert np.array_equal(np.bincount(labels[a[k]], minlength=4), np.full(4, round(50 * f)))
    c = stratified_split(labels, fr, seed=4)
    assert not np.array_equal(a["test"], c["test"])


def test_grouped_split_keeps_groups_whole():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 60, 300).astype(str)
    labels = np.array([int(g) % 3 for g in groups])
    parts = stratified_split(labels, {"train": 0.8, "val": 0.2}, seed=0, groups=groups)
    _check_partition(parts, len(labels))
    assert not set(groups[parts["train"]]) & set(groups[parts["val"]])
    assert 0.6 < len(parts["train"]) / 300 < 0.95


def test_label_strata_for_multilabel():
    y = np.array([[0, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=np.float32)
    assert label_strata(y).tolist() == [1, 3, 0]
    parts = carve_pool(np.tile(y, (10, 1)), {"train": 0.5, "val": 0.5}, seed=0)
    _check_partition(parts, 30)


def test_bad_fractions():
    with pytest.raises(ValueError):
        stratified_split(np.zeros(4), {"train": 0.5}, seed=0)
