"""Evaluation protocols: label subsets, the test-label seal, kNN/linear against references,
and every protocol running end to end on a tiny encoder without touching test labels early."""
import copy

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from byol_bench.config import DEFAULTS
from byol_bench.data import DatasetCard, LoadedDataset
from byol_bench.evaluation import PROTOCOLS, EvalContext
from byol_bench.evaluation.context import SealedLabels
from byol_bench.evaluation.finetune import stratified_subset
from byol_bench.evaluation.knn import weighted_knn_scores
from byol_bench.data.images import array_to_channels
from byol_bench.evaluation.transfer import parse_pair
from byol_bench.models.backbones import build_backbone
from byol_bench.errors import UserError


def test_stratified_subset_is_stratified_deterministic_and_method_independent():
    labels = np.repeat(np.arange(5), [100, 50, 20, 9, 1])
    a = stratified_subset(labels, 10, seed=3)
    b = stratified_subset(labels, 10, seed=3)   # what a second method gets at the same seed
    c = stratified_subset(labels, 10, seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    counts = np.bincount(labels[a], minlength=5)
    assert counts.tolist() == [10, 5, 2, 1, 1]    # round(10%) and at least one per class
    assert len(np.unique(a)) == len(a)
    assert np.array_equal(stratified_subset(labels, 100, 0), np.arange(len(labels)))
    one = stratified_subset(labels, 1, 0)
    assert set(labels[one]) == set(range(5))


def test_stratified_subset_multilabel_uses_first_positive_as_stratum():
    y = np.zeros((40, 3), dtype=np.float32)
    y[:20, 0] = 1
    y[20:30, 2] = 1     # 10 with label 2, 10 with none
    idx = stratified_subset(y, 50, 0)
    assert len(idx) == 20
    assert (y[idx, 0] == 1).sum() == 10 and (y[idx, 2] == 1).sum() == 5


def test_weighted_knn_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    train, query = torch.randn(30, 4, generator=g), torch.randn(7, 4, generator=g)
    y = torch.randint(0, 3, (30,), generator=g)
    onehot = torch.nn.functional.one_hot(y, 3).float()
    got = weighted_knn_scores(train, onehot, query, k=5, temperature=0.1, chunk=3)
    tn, qn = torch.nn.functional.normalize(train, dim=1), torch.nn.functional.normalize(query, dim=1)
    for i in range(7):
        sims = [(float(qn[i] @ tn[j]), j) for j in range(30)]
        top = sorted(sims, reverse=True)[:5]
        votes = np.zeros(3)
        for s, j in top:
            votes[int(y[j])] += np.exp(s / 0.1)
        np.testing.assert_allclose(got[i].numpy(), votes / votes.sum(), rtol=1e-4)


def test_sealed_labels_refuse_every_read_of_test():
    labels = SealedLabels({"train": np.arange(3), "test": np.arange(2)})
    assert labels["train"].tolist() == [0, 1, 2]
    for read in (lambda: labels["test"], lambda: labels.get("test"), lambda: list(labels.items()),
                 lambda: list(labels.values())):
        with pytest.raises(PermissionError):
            read()


def tiny_context(task="multiclass", channels=1, seed=0, protocols_cfg=None):
    rng = np.random.default_rng(0)
    n = {"train": 60, "val": 30, "test": 30}
    classes = ["a", "b", "c"]
    card = DatasetCard(name="tiny", loader="sklearn-digits", task=task, image_size=8, channels=channels,
                       mean=(0.5,) * channels, std=(0.25,) * channels, classes=tuple(classes))
    images = {k: rng.integers(0, 256, (v, channels, 8, 8), dtype=np.uint8) for k, v in n.items()}
    if task == "multiclass":
        labels = {k: rng.integers(0, 3, v).astype(np.int64) for k, v in n.items()}
    else:
        labels = {k: (rng.random((v, 3)) < 0.4).astype(np.float32) for k, v in n.items()}
        for k in labels:
            labels[k][0], labels[k][1] = 1, 0   # both classes present in every label column
    # Signal: class brightens the image, so a trained encoder can do better than chance.
    data = LoadedDataset(card, images, labels, classes)
    cfg = copy.deepcopy(DEFAULTS)
    cfg["eval"]["linear"]["max_iter"] = 20
    cfg["eval"]["finetune"]["epochs"] = 2
    cfg["eval"]["semi"]["fractions"] = [10, 100]
    torch.manual_seed(0)
    enc = build_backbone("small-cnn", in_channels=channels, width=4)
    return EvalContext(enc, data, cfg, seed, Accelerator(cpu=True), load_dataset=lambda name: data)


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_every_protocol_runs_and_scores_test_once_with_labels_sealed(task):
    ctx = tiny_context(task)
    ctx.cfg["eval"]["transfer"]["pairs"] = ["tiny->tiny"]
    from byol_bench.data import DATASETS
    if "tiny" not in DATASETS:
        DATASETS.add("tiny", ctx.data.card)
    result = {}
    for name in ("linear", "knn", "semi", "transfer"):
        result.update(PROTOCOLS.get(name)(ctx))
    metric = "balanced_accuracy" if task == "multiclass" else "mean_auroc"
    for key in ("linear", "knn", "semi10", "semi100", "transfer-tiny-linear", "transfer-tiny-finetune"):
        assert np.isfinite(result[f"{key}/{metric}"]), key
    assert ctx.tested == {"linear", "knn", "semi10", "semi100", "transfer-tiny-linear", "transfer-tiny-finetune"}
    assert ctx.data.labels.sealed
    if task == "multilabel":
        assert "linear/auroc/0" in result


def test_a_protocol_peeking_at_test_labels_fails():
    ctx = tiny_context()
    with pytest.raises(PermissionError):
        ctx.labels("test")
    with pytest.raises(PermissionError):
        ctx.data.labels["test"]
    ctx.score_test("linear", np.zeros((30, 3)))
    with pytest.raises(RuntimeError, match="scored the test split twice"):
        ctx.score_test("linear", np.zeros((30, 3)))


def test_transfer_helpers():
    rgb = np.full((2, 3, 4, 4), 100, dtype=np.uint8)
    assert array_to_channels(rgb, 1).shape == (2, 1, 4, 4)
    assert array_to_channels(rgb, 1)[0, 0, 0, 0] == 100
    assert array_to_channels(array_to_channels(rgb, 1), 3).shape == (2, 3, 4, 4)
    assert parse_pair("digits->stl10") == ("digits", "stl10")
    with pytest.raises(UserError, match="must look like"):
        parse_pair("digits")


def test_linear_cpu_threads_sets_the_fits_threads_and_restores_them():
    """eval.linear.cpu_threads = 1 gives exactly the probe run under torch.set_num_threads(1)
    (a change of thread count, not of method), and the run's thread count is back afterwards."""
    from byol_bench.config import config_hash
    before = torch.get_num_threads()
    one = tiny_context()
    one.cfg["eval"]["linear"]["cpu_threads"] = 1
    with_option = PROTOCOLS.get("linear")(one)
    assert torch.get_num_threads() == before
    ref = tiny_context()
    torch.set_num_threads(1)
    try:
        reference = PROTOCOLS.get("linear")(ref)
    finally:
        torch.set_num_threads(before)
    assert with_option == reference and one.info == ref.info
    assert config_hash(one.cfg) == config_hash(tiny_context().cfg)  # how fast, not what: out of the identity
