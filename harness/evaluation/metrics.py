"""Classification metrics from numpy arrays: the numbers every evaluation protocol reports.

One door, `compute_metrics(task, y_true, scores)`, returns a flat dict of floats for
run.json (`"<protocol>/<metric>"` once the protocol prefixes it). The pieces it is built from
are small pure functions: AUROC, balanced accuracy and macro-F1 are scikit-learn's, wrapped
for the one-class rule (NaN where a label has one class in y_true); the tests pin them with
hand computations.

Score conventions (scores are whatever the probe or the fine-tuned head emits):
- multiclass: a row counts as probabilities when every entry lies in [0, 1] and the row sums
  to 1 (within 1e-3); otherwise the row is logits and is softmaxed before the one-vs-rest AUROC.
  Predictions are the argmax either way (softmax keeps it).
- multilabel: scores count as probabilities when every entry lies in [0, 1]; any entry outside
  that range marks the whole array as logits, which pass through a sigmoid before the 0.5
  threshold. AUROC is unchanged by the sigmoid (it is monotone), so only `accuracy` depends on
  the rule. Logits that all happen to lie in [0, 1] are therefore read as probabilities.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

TASKS = ("multiclass", "multilabel")


def binary_auroc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for the 0/1 labels `y_true`: sklearn's
    `roc_auc_score` (the trapezoidal ROC area, so a tie between a positive and a negative counts
    1/2), or NaN when only one class is present, where sklearn raises instead. Equals the
    Mann-Whitney rank form (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg) (Hanley & McNeil 1982,
    Radiology 143:29-36), which this module computed before (tests/test_metrics_sklearn.py).
    """
    y_true = np.asarray(y_true).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if y_true.shape != scores.shape:
        raise ValueError(f"y_true has {y_true.size} entries, scores {scores.size}")
    n_pos = int(y_true.sum())
    if n_pos == 0 or n_pos == y_true.size:
        return float("nan")
    from sklearn.metrics import roc_auc_score  # here: importing sklearn.metrics costs ~0.5 s at plan time
    return float(roc_auc_score(y_true, scores))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax exp(z_k - max z) / sum_j exp(z_j - max z); the shift avoids overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise 1 / (1 + exp(-z)), written via tanh so large |z| does not overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * logits))


def class_probabilities(scores: np.ndarray) -> np.ndarray:
    """Multiclass scores as probabilities: unchanged if each row already is a distribution
    (entries in [0, 1], row sum 1 within 1e-3), softmaxed otherwise."""
    in_unit_range = bool(np.all((scores >= 0.0) & (scores <= 1.0)))
    if in_unit_range and np.allclose(scores.sum(axis=1), 1.0, rtol=0.0, atol=1e-3):
        return scores
    return softmax(scores)


def label_probabilities(scores: np.ndarray) -> np.ndarray:
    """Multilabel scores as probabilities: unchanged if all lie in [0, 1], sigmoid otherwise."""
    if np.all((scores >= 0.0) & (scores <= 1.0)):
        return scores
    return sigmoid(scores)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes present in y_true of recall_c = |pred = c and true = c| / |true = c|
    (Brodersen et al. 2010, ICPR): sklearn's `balanced_accuracy_score` (adjusted=False).
    Classes that are only predicted have no recall and do not count.
    """
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        # sklearn warns "y_pred contains classes not in y_true": they do not count, as intended.
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y_true, y_pred))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean over the classes present in y_true or y_pred of F1_c = 2 TP / (2 TP + FP + FN):
    sklearn's `f1_score(average="macro", zero_division=0)`. A class that is never predicted
    scores 0 (its precision is undefined), and it still counts in the mean.
    """
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def one_vs_rest_aurocs(y_true: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """AUROC of column c against "true class is c", for every class c (NaN where y_true has
    only positives or only negatives for c). Column c must score class c."""
    return np.array([binary_auroc(y_true == c, probabilities[:, c])
                     for c in range(probabilities.shape[1])])


def mean_defined(values: np.ndarray) -> float:
    """Mean over the non-NaN entries; NaN (without numpy's empty-slice warning) if there are none."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def multiclass_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """accuracy, balanced_accuracy, macro_f1 on argmax predictions; macro_auroc = mean one-vs-rest
    AUROC on softmaxed scores over the classes with both positives and negatives in y_true
    (sklearn's `roc_auc_score(multi_class="ovr")` when every class is present)."""
    if scores.ndim != 2 or y_true.ndim != 1 or scores.shape[0] != y_true.shape[0]:
        raise ValueError(f"multiclass wants y_true (N,) and scores (N, K); got {y_true.shape}, {scores.shape}")
    y_true = y_true.astype(np.int64)
    if y_true.min() < 0 or y_true.max() >= scores.shape[1]:
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}) for {scores.shape[1]} score columns")
    y_pred = scores.argmax(axis=1)
    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred),
        "macro_auroc": mean_defined(one_vs_rest_aurocs(y_true, class_probabilities(scores))),
    }


def multilabel_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """mean_auroc over labels with both classes present, `auroc/<j>` for every label j (NaN when
    label j is constant in y_true, so the keys are the same in every run), and accuracy = mean
    over labels of the per-label accuracy of (probability >= 0.5)."""
    if scores.ndim != 2 or scores.shape != y_true.shape:
        raise ValueError(f"multilabel wants y_true and scores of one shape (N, L); got {y_true.shape}, {scores.shape}")
    y_true = y_true.astype(bool)
    aurocs = np.array([binary_auroc(y_true[:, j], scores[:, j]) for j in range(scores.shape[1])])
    # Every label has N entries, so the mean of per-label accuracies is the mean over all entries.
    predicted = label_probabilities(scores) >= 0.5
    metrics = {"mean_auroc": mean_defined(aurocs), "accuracy": float(np.mean(predicted == y_true))}
    metrics.update({f"auroc/{j}": float(a) for j, a in enumerate(aurocs)})
    return metrics


def compute_metrics(task: str, y_true, scores) -> dict[str, float]:
    """The metrics of one evaluation, as a flat dict of floats.

    task "multiclass": y_true int (N,), scores (N, K) -> accuracy, balanced_accuracy, macro_f1,
    macro_auroc. task "multilabel": y_true 0/1 (N, L), scores (N, L) -> mean_auroc, accuracy,
    auroc/0 ... auroc/<L-1>. See the module docstring for how logits are told from probabilities.
    """
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.shape[0] == 0:
        raise ValueError("no samples to score")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    if task == "multiclass":
        return multiclass_metrics(y_true, scores)
    if task == "multilabel":
        return multilabel_metrics(y_true, scores)
    raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")


def higher_is_better(metric: str) -> bool:
    """Scores (accuracy, AUROC, F1) rank high; anything named a loss or an error ranks low."""
    return not re.search(r"(loss|error|err)$", metric)
