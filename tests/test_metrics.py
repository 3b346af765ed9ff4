"""byol_bench.evaluation.metrics: golden values by hand, and agreement with scikit-learn as an independent reference."""
import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from byol_bench.evaluation.metrics import (balanced_accuracy, binary_auroc, class_probabilities, compute_metrics,
                                        label_probabilities, macro_f1, sigmoid, softmax)


# ---------------------------------------------------------------- binary AUROC (rank formula)

@pytest.mark.parametrize("y, s, expected", [
    ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),            # perfect
    ([0, 0, 1, 1], [0.8, 0.9, 0.1, 0.2], 0.0),            # inverted
    ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),            # all tied
    ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),          # 3 of 4 pos/neg pairs ordered
    ([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.9], 0.875),          # one pos/neg tie counts 1/2: 3.5 / 4
    ([1, 0, 0, 0], [0.3, 0.1, 0.3, 0.7], 0.5),            # 1 win + 1 tie/2 + 1 loss over 3
])
def test_binary_auroc_hand_computed(y, s, expected):
    assert binary_auroc(np.array(y), np.array(s)) == pytest.approx(expected)


def test_binary_auroc_is_nan_with_one_class():
    assert math.isnan(binary_auroc(np.ones(4), np.arange(4.0)))
    assert math.isnan(binary_auroc(np.zeros(4), np.arange(4.0)))


def pairwise_auroc(y, s):
    """Brute force: the fraction of (positive, negative) pairs ordered correctly, ties 1/2."""
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size


@pytest.mark.parametrize("seed", range(8))
def test_binary_auroc_matches_sklearn_and_pair_counting(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=60)
    y[:2] = [0, 1]
    s = np.round(rng.normal(size=60) + 0.7 * y, 1)  # rounding makes many ties
    assert binary_auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert binary_auroc(y, s) == pytest.approx(pairwise_auroc(y, s), abs=1e-12)


def test_binary_auroc_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        binary_auroc(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))


# ---------------------------------------------------------------- balanced accuracy, macro-F1

Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 1, 0])


def test_balanced_accuracy_hand_computed():
    # recalls: class 0 2/3, class 1 2/2, class 2 0/1
    assert balanced_accuracy(Y_TRUE, Y_PRED) == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_balanced_accuracy_ignores_classes_only_predicted():
    # class 2 never occurs in y_true: recalls 1/2 and 2/2 only
    assert balanced_accuracy(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])) == pytest.approx(0.75)


def test_macro_f1_hand_computed():
    # F1 = 2TP / (2TP + FP + FN): class 0 4/6, class 1 4/5, class 2 0/1
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx((4 / 6 + 4 / 5 + 0) / 3)


def test_macro_f1_counts_classes_only_predicted_as_zero():
    # class 0 2/3, class 1 1, class 2 (predicted once, never true) 0
    assert macro_f1(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])) == pytest.approx(5 / 9)


@pytest.mark.parametrize("seed", range(6))
def test_balanced_accuracy_and_macro_f1_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 5, size=40)
    y_pred = np.where(rng.random(40) < 0.5, y_true, rng.integers(0, 6, size=40))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when y_pred has classes y_true lacks
        expected_bacc = balanced_accuracy_score(y_true, y_pred)
    assert balanced_accuracy(y_true, y_pred) == pytest.approx(expected_bacc)
    assert macro_f1(y_true, y_pred) == pytest.approx(
        f1_score(y_true, y_pred, average="macro", zero_division=0))


# ---------------------------------------------------------------- score conventions

def test_softmax_and_sigmoid_are_stable_and_correct():
    z = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    p = softmax(z)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1.0)
    assert np.allclose(p[1], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    assert np.allclose(sigmoid(np.array([-1000.0, 0.0, 2.0, 1000.0])),
                       [0.0, 0.5, 1 / (1 + math.exp(-2)), 1.0])


def test_class_probabilities_keeps_distributions_and_softmaxes_logits():
    probs = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert class_probabilities(probs) is probs
    logits = np.array([[2.0, -1.0], [0.3, 0.4]])
    assert np.allclose(class_probabilities(logits), softmax(logits))
    # entries in [0, 1] that do not sum to 1 are logits too
    unnormalized = np.array([[0.2, 0.3], [0.9, 0.9]])
    assert np.allclose(class_probabilities(unnormalized), softmax(unnormalized))


def test_label_probabilities_treats_anything_outside_unit_range_as_logits():
    probs = np.array([[0.1, 0.9]])
    assert label_probabilities(probs) is probs
    logits = np.array([[-0.5, 0.9]])
    assert np.allclose(label_probabilities(logits), sigmoid(logits))


# ---------------------------------------------------------------- compute_metrics, multiclass

def random_multiclass(seed, n=80, k=4):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    return y, logits


def test_multiclass_keys_and_types():
    y, logits = random_multiclass(0)
    metrics = compute_metrics("multiclass", y, logits)
    assert set(metrics) == {"accuracy", "balanced_accuracy", "macro_f1", "macro_auroc"}
    assert all(type(v) is float for v in metrics.values())


@pytest.mark.parametrize("seed", range(4))
def test_multiclass_matches_sklearn_from_logits_and_probabilities(seed):
    y, logits = random_multiclass(seed)
    probs = softmax(logits)
    pred = logits.argmax(axis=1)
    expected = {
        "accuracy": np.mean(pred == y),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "macro_f1": f1_score(y, pred, average="macro", zero_division=0),
        "macro_auroc": roc_auc_score(y, probs, multi_class="ovr", average="macro"),
    }
    assert compute_metrics("multiclass", y, logits) == pytest.approx(expected)
    assert compute_metrics("multiclass", y, probs) == pytest.approx(expected)


def test_multiclass_auroc_softmaxes_logits_rather_than_ranking_them_raw():
    # One-vs-rest AUROC is not invariant to softmax (it mixes columns), so the rule matters.
    y, logits = random_multiclass(7, n=30, k=3)
    raw = np.mean([binary_auroc(y == c, logits[:, c]) for c in range(3)])
    soft = np.mean([binary_auroc(y == c, softmax(logits)[:, c]) for c in range(3)])
    assert raw != pytest.approx(soft)
    assert compute_metrics("multiclass", y, logits)["macro_auroc"] == pytest.approx(soft)


def test_multiclass_auroc_averages_only_classes_present():
    y = np.array([0, 0, 1, 1, 0, 1])  # class 2 absent: its AUROC is undefined and skipped
    probs = np.array([[.7, .2, .1], [.5, .3, .2], [.2, .7, .1], [.4, .5, .1], [.3, .3, .4], [.1, .1, .8]])
    expected = np.mean([binary_auroc(y == 0, probs[:, 0]), binary_auroc(y == 1, probs[:, 1])])
    assert compute_metrics("multiclass", y, probs)["macro_auroc"] == pytest.approx(expected)


def test_multiclass_auroc_is_nan_when_no_class_has_both_outcomes():
    metrics = compute_metrics("multiclass", np.zeros(3, dtype=int), np.eye(3))
    assert math.isnan(metrics["macro_auroc"])
    assert metrics["accuracy"] == pytest.approx(1 / 3)


def test_multiclass_perfect_predictions():
    y = np.array([0, 1, 2, 1])
    metrics = compute_metrics("multiclass", y, np.eye(3)[y] * 5.0)
    assert metrics == pytest.approx({"accuracy": 1.0, "balanced_accuracy": 1.0, "macro_f1": 1.0,
                                     "macro_auroc": 1.0})


# ---------------------------------------------------------------- compute_metrics, multilabel

def random_multilabel(seed, n=50, labels=5):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < 0.4).astype(int)
    y[0], y[1] = 0, 1  # both outcomes for every label
    return y, rng.normal(size=(n, labels)) + 1.2 * y


@pytest.mark.parametrize("seed", range(4))
def test_multilabel_matches_sklearn(seed):
    y, logits = random_multilabel(seed)
    metrics = compute_metrics("multilabel", y, logits)
    assert set(metrics) == {"mean_auroc", "accuracy"} | {f"auroc/{j}" for j in range(5)}
    for j in range(5):
        assert metrics[f"auroc/{j}"] == pytest.approx(roc_auc_score(y[:, j], logits[:, j]))
    assert metrics["mean_auroc"] == pytest.approx(roc_auc_score(y, logits, average="macro"))
    assert metrics["accuracy"] == pytest.approx(np.mean((logits >= 0) == y))
    # the same scores as probabilities give the same numbers
    assert compute_metrics("multilabel", y, sigmoid(logits)) == pytest.approx(metrics)


def test_multilabel_accuracy_hand_computed_on_logits():
    y = np.array([[0, 1], [1, 1]])
    logits = np.array([[-1.0, 2.0], [0.0, -3.0]])  # sigmoid(0) = 0.5 counts as positive
    assert compute_metrics("multilabel", y, logits)["accuracy"] == pytest.approx(3 / 4)


def test_multilabel_constant_label_is_nan_and_left_out_of_the_mean():
    y = np.array([[0, 1, 1], [1, 1, 0], [0, 1, 1], [1, 1, 0]])
    probs = np.array([[.1, .5, .9], [.8, .5, .2], [.3, .5, .6], [.7, .5, .4]])
    metrics = compute_metrics("multilabel", y, probs)
    assert math.isnan(metrics["auroc/1"])
    assert metrics["auroc/0"] == 1.0 and metrics["auroc/2"] == 1.0
    assert metrics["mean_auroc"] == 1.0


# ---------------------------------------------------------------- input errors

@pytest.mark.parametrize("task, y, scores", [
    ("regression", [0, 1], [[0.5, 0.5], [0.5, 0.5]]),
    ("multiclass", [0, 1, 1], [[0.5, 0.5], [0.5, 0.5]]),
    ("multiclass", [0, 2], [[0.5, 0.5], [0.5, 0.5]]),
    ("multiclass", [0, 1], [[np.nan, 0.5], [0.5, 0.5]]),
    ("multilabel", [[0, 1]], [[0.5, 0.5, 0.5]]),
    ("multiclass", np.zeros(0, dtype=int), np.zeros((0, 2))),
])
def test_bad_inputs_raise_value_error(task, y, scores):
    with pytest.raises(ValueError):
        compute_metrics(task, y, scores)
