"""The paper's classification metrics as pure functions of labels and probabilities.

Accuracy, precision, recall, specificity, F-1 and AUC (Guo et al. 2022, Eqs. 6-10), per
class and macro-averaged; the two-class task "metastatic vs not" (Table 8); ROC and
calibration curves with the expected calibration error; and a bootstrap that resamples
*patients* (images of one patient are not independent) for confidence intervals.
:mod:`scintilab.evaluation` applies them to a run's predictions and draws the figures.

Conventions: ``y_true`` holds class indices into ``classes``; ``proba`` is an (N, K)
array of class probabilities; the prediction is ``argmax(proba)`` unless given. Metrics
that are undefined on the data (a class absent from the test set) are NaN, never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from scintilab.study import CLASSES
from scintilab.utils import as_rng

#: The two-class task of the paper's Table 8: ADMet and nADMet merged into "Met".
TWO_CLASSES: tuple[str, ...] = ("NoMet", "Met")
#: Macro metrics in the order of the paper's tables (Table 4 / Table 8 columns).
MACRO_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "specificity", "f1", "auc")
#: Per-class metrics (the paper's Fig. 8).
CLASS_METRICS: tuple[str, ...] = ("precision", "recall", "specificity", "f1", "auc")


# --------------------------------------------------------------------------- basics
def _as_arrays(
    y_true: Sequence[int] | np.ndarray, proba: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    y = np.asarray(y_true).astype(int).ravel()
    if proba is None:
        return y, None
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"proba must be (N, K) with N={y.shape[0]}; got shape {p.shape}")
    return y, p


def confusion_matrix(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, num_classes: int
) -> np.ndarray:
    """Counts ``cm[i, j]`` of images of true class ``i`` predicted as class ``j``.

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        num_classes: K; the matrix is K x K even when a class never occurs.

    Returns:
        int64 array (K, K), rows = truth, columns = prediction (scikit-learn's layout).
    """
    y = np.asarray(y_true, dtype=int).ravel()
    p = np.asarray(y_pred, dtype=int).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.shape[0]} vs {p.shape[0]}")
    # bincount on the flat index is the fast path used inside the bootstrap loop.
    return np.bincount(y * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # scikit-learn's zero_division=0: a class never predicted has precision 0, not NaN,
    # so macro averages stay comparable with sklearn and with the paper.
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """One-vs-rest precision, recall, specificity, F-1 and support from a confusion matrix.

    For class k: TP = cm[k,k], FP = column k minus TP, FN = row k minus TP,
    TN = everything else (the paper's Eqs. 7-10 applied one class against the rest).

    Args:
        cm: (K, K) counts, rows = truth, columns = prediction.

    Returns:
        dict of arrays of length K: ``precision``, ``recall``, ``specificity``, ``f1``,
        ``support`` (true images per class), ``tp``, ``fp``, ``fn``, ``tn``.
        A ratio with a zero denominator is 0 (scikit-learn's ``zero_division=0``).
    """
    cm = np.asarray(cm, dtype=float)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    specificity = _safe_div(tn, tn + fp)
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)  # = 2PR/(P+R), and 0 where both are 0
    return {
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": f1,
        "support": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def binary_auc(y_binary: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney rank statistic (ties count half).

    Identical to ``sklearn.metrics.roc_auc_score`` for binary labels, but a few times
    faster, which matters inside a 1000-replicate bootstrap.

    Args:
        y_binary: 1 for positives, 0 for negatives.
        score: higher = more likely positive.

    Returns:
        The AUC, or NaN when only one class is present.
    """
    y = np.asarray(y_binary).astype(bool).ravel()
    s = np.asarray(score, dtype=float).ravel()
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks: tied scores count one half, as in sklearn
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_per_class(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """One-vs-rest AUC for each class (NaN for a class absent or alone in ``y_true``)."""
    y, p = _as_arrays(y_true, proba)
    assert p is not None
    return np.array([binary_auc(y == k, p[:, k]) for k in range(p.shape[1])])


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray | None = None,
    *,
    y_pred: Sequence[int] | np.ndarray | None = None,
    classes: Sequence[str] = CLASSES,
) -> dict[str, Any]:
    """All of the paper's metrics, macro-averaged and per class.

    Macro averages are unweighted means over classes, as scikit-learn's
    ``average="macro"``; macro F-1 is the mean of the per-class F-1 scores. For two
    classes (``len(classes) == 2``) precision, recall, specificity and F-1 are those of the
    positive class (index 1, "Met"), as the paper's Table 8 reports them, and AUC is the
    binary AUC of ``proba[:, 1]``; the per-class entries still hold both classes.

    Args:
        y_true: true class indices.
        proba: (N, K) class probabilities; needed for AUC, and for the prediction when
            ``y_pred`` is not given.
        y_pred: predicted class indices (default ``argmax(proba)``).
        classes: class names, K of them.

    Returns:
        dict with ``accuracy``, ``precision``, ``recall``, ``specificity``, ``f1``,
        ``auc`` (floats), ``per_class`` (dict metric -> {class: value}), ``confusion``
        (K x K list), ``n`` (number of images), ``classes``.
    """
    y, p = _as_arrays(y_true, proba)
    k = len(classes)
    if y_pred is None:
        if p is None:
            raise ValueError("give proba or y_pred")
        pred = p.argmax(axis=1)
    else:
        pred = np.asarray(y_pred, dtype=int).ravel()
    if p is not None and p.shape[1] != k:
        raise ValueError(f"proba has {p.shape[1]} columns but {k} classes were named")
    cm = confusion_matrix(y, pred, k)
    pc = per_class_from_confusion(cm)
    aucs = auc_per_class(y, p) if p is not None else np.full(k, np.nan)
    out: dict[str, Any] = {"n": int(y.size), "classes": list(classes)}
    out["accuracy"] = float(np.trace(cm) / cm.sum()) if cm.sum() else float("nan")
    if k == 2:
        for m in ("precision", "recall", "specificity", "f1"):
            out[m] = float(pc[m][1])
        out["auc"] = float(aucs[1])
    else:
        for m in ("precision", "recall", "specificity", "f1"):
            out[m] = float(pc[m].mean())
        # sklearn's roc_auc_score(multi_class="ovr", average="macro") is the plain mean of
        # the one-vs-rest AUCs; it refuses when a class is missing, we return NaN instead.
        out["auc"] = float(aucs.mean()) if np.all(np.isfinite(aucs)) else float("nan")
    per_class: dict[str, dict[str, float]] = {}
    for m in CLASS_METRICS:
        vals = aucs if m == "auc" else pc[m]
        per_class[m] = {c: float(v) for c, v in zip(classes, vals)}
    per_class["support"] = {c: int(v) for c, v in zip(classes, pc["support"])}
    out["per_class"] = per_class
    out["confusion"] = cm.tolist()
    return out


# --------------------------------------------------------------------------- two-class mode
def merge_labels(y_true: Sequence[int] | np.ndarray) -> np.ndarray:
    """Map 3-class labels (NoMet, ADMet, nADMet) to 2-class (NoMet=0, Met=1)."""
    return (np.asarray(y_true, dtype=int) > 0).astype(int)


def two_class(
    y_true: Sequence[int] | np.ndarray, proba: np.ndarray, method: str = "sum", threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn 3-class predictions into the metastatic-vs-not task (the paper's Table 8).

    Two ways, which differ when NoMet is the single most likely class but the two
    metastatic classes together outweigh it:

    * ``"merge"``: take the 3-class decision (argmax) and merge ADMet and nADMet.
    * ``"sum"``: P(Met) = P(ADMet) + P(nADMet); predict Met when it exceeds ``threshold``.

    Both use P(Met) as the score for the AUC. A model trained with two classes
    (``proba`` with 2 columns) passes through unchanged (labels already merged).

    Args:
        y_true: true labels, 3-class (or already 2-class when ``proba`` has 2 columns).
        proba: (N, 3) or (N, 2) probabilities.
        method: ``"sum"`` or ``"merge"``.
        threshold: decision threshold on P(Met) for ``"sum"``.

    Returns:
        ``(y2, proba2, pred2)``: merged labels, (N, 2) probabilities [P(NoMet), P(Met)],
        and the two-class predictions.
    """
    y, p = _as_arrays(y_true, proba)
    assert p is not None
    if p.shape[1] == 2:
        y2 = (y > 0).astype(int)  # accepts 3-class labels too
        return y2, p, (p[:, 1] > threshold).astype(int)
    if p.shape[1] != 3:
        raise ValueError(f"two_class expects 2 or 3 probability columns, got {p.shape[1]}")
    y2 = merge_labels(y)
    p_met = p[:, 1] + p[:, 2]
    p2 = np.stack([1.0 - p_met, p_met], axis=1)
    if method == "sum":
        pred2 = (p_met > threshold).astype(int)
    elif method == "merge":
        pred2 = (p.argmax(axis=1) > 0).astype(int)
    else:
        raise ValueError(f"unknown two-class method {method!r}; use 'sum' or 'merge'")
    return y2, p2, pred2


# --------------------------------------------------------------------------- curves
def roc_curves(
    y_true: Sequence[int] | np.ndarray, proba: np.ndarray, classes: Sequence[str] = CLASSES
) -> dict[str, dict[str, Any]]:
    """One-vs-rest ROC curve of each class (the paper's Fig. 6).

    Returns:
        ``{class: {"fpr": list, "tpr": list, "auc": float}}``; for two classes only the
        positive class (index 1) is returned. Classes absent from ``y_true`` are skipped.
    """
    from sklearn.metrics import roc_curve

    y, p = _as_arrays(y_true, proba)
    assert p is not None
    out: dict[str, dict[str, Any]] = {}
    ks = [1] if len(classes) == 2 else range(len(classes))
    for k in ks:
        pos = y == k
        if pos.all() or not pos.any():
            continue
        fpr, tpr, _ = roc_curve(pos, p[:, k])
        out[classes[k]] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": binary_auc(pos, p[:, k])}
    return out


def _calibration_bins(y: np.ndarray, p: np.ndarray, n_bins: int, y_pred: np.ndarray | None) -> tuple[np.ndarray, ...]:
    # NumPy only: the ECE runs once per bootstrap replicate, where pandas would dominate.
    pred = p.argmax(axis=1) if y_pred is None else np.asarray(y_pred, dtype=int)
    conf = p[np.arange(len(y)), pred]
    correct = (pred == y).astype(float)
    # right-closed bins so that a confidence of exactly 1.0 lands in the last bin
    idx = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    corr_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    return count, conf_sum, corr_sum


def calibration_curve(
    y_true: Sequence[int] | np.ndarray, proba: np.ndarray, n_bins: int = 10, y_pred: np.ndarray | None = None
) -> pd.DataFrame:
    """Top-label reliability table: confidence of the predicted class vs how often it is right.

    Args:
        y_true: true class indices.
        proba: (N, K) probabilities.
        n_bins: equal-width confidence bins on [0, 1] (right-closed).
        y_pred: predictions (default argmax); the confidence is ``proba[i, y_pred[i]]``.

    Returns:
        DataFrame, one row per non-empty bin: ``bin_low``, ``bin_high``, ``confidence``
        (mean), ``accuracy`` (fraction correct), ``count``.
    """
    y, p = _as_arrays(y_true, proba)
    assert p is not None
    count, conf_sum, corr_sum = _calibration_bins(y, p, n_bins, y_pred)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    keep = count > 0
    return pd.DataFrame(
        {
            "bin_low": edges[:-1][keep],
            "bin_high": edges[1:][keep],
            "confidence": conf_sum[keep] / count[keep],
            "accuracy": corr_sum[keep] / count[keep],
            "count": count[keep].astype(int),
        }
    )


def expected_calibration_error(
    y_true: Sequence[int] | np.ndarray, proba: np.ndarray, n_bins: int = 10, y_pred: np.ndarray | None = None
) -> float:
    """ECE = sum over bins of (bin share) x |accuracy - confidence| (Guo et al. 2017).

    0 for a perfectly calibrated model; the top-label form, on ``n_bins`` equal bins.
    """
    y, p = _as_arrays(y_true, proba)
    assert p is not None
    if y.size == 0:
        return float("nan")
    count, conf_sum, corr_sum = _calibration_bins(y, p, n_bins, y_pred)
    return float(np.abs(corr_sum - conf_sum).sum() / count.sum())


# --------------------------------------------------------------------------- bootstrap
def _flat_metrics(
    y: np.ndarray, p: np.ndarray, pred: np.ndarray, classes: Sequence[str], n_bins: int
) -> dict[str, float]:
    m = classification_metrics(y, p, y_pred=pred, classes=classes)
    flat = {k: m[k] for k in MACRO_METRICS}
    for metric in CLASS_METRICS:
        for c, v in m["per_class"][metric].items():
            flat[f"{metric}[{c}]"] = v
    flat["ece"] = expected_calibration_error(y, p, n_bins=n_bins, y_pred=pred)
    return flat


def bootstrap_metrics(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    groups: Sequence[str] | np.ndarray | None = None,
    *,
    y_pred: np.ndarray | None = None,
    classes: Sequence[str] = CLASSES,
    n_boot: int = 1000,
    alpha: float = 0.05,
    rng: np.random.Generator | int | None = 0,
    n_bins: int = 10,
) -> pd.DataFrame:
    """Point estimates and percentile bootstrap CIs for every metric, resampling patients.

    Each replicate draws as many patients as the test set holds, with replacement, and
    takes *all* images of every drawn patient (a patient drawn twice counts twice). That
    keeps the dependence between images of one patient (two views, augmented copies, a
    fused image) inside each replicate, so the interval is not falsely narrow.

    Args:
        y_true: true class indices.
        proba: (N, K) probabilities.
        groups: patient key per image (default: every image its own patient).
        y_pred: predictions (default argmax of ``proba``), resampled alongside.
        classes: class names.
        n_boot: number of replicates.
        alpha: 1 - confidence level (0.05 gives 95 % intervals).
        rng: randomness (a seed by default, so a report's intervals are reproducible).
        n_bins: calibration bins for the ECE.

    Returns:
        DataFrame indexed by metric name (macro ones, ``metric[class]`` per class, ``ece``)
        with columns ``estimate``, ``low``, ``high``, ``n_valid`` (replicates where the
        metric was defined, e.g. a class present).
    """
    y, p = _as_arrays(y_true, proba)
    assert p is not None
    pred = p.argmax(axis=1) if y_pred is None else np.asarray(y_pred, dtype=int)
    g = np.arange(len(y)).astype(str) if groups is None else np.asarray(groups).astype(str)
    if g.shape[0] != y.shape[0]:
        raise ValueError(f"groups has {g.shape[0]} entries for {y.shape[0]} images")
    point = _flat_metrics(y, p, pred, classes, n_bins)
    uniq, inverse = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(uniq))]
    gen = as_rng(rng)
    names = list(point)
    reps = np.full((n_boot, len(names)), np.nan)
    for b in range(n_boot):
        drawn = gen.integers(0, len(uniq), size=len(uniq))
        idx = np.concatenate([members[i] for i in drawn])
        vals = _flat_metrics(y[idx], p[idx], pred[idx], classes, n_bins)
        reps[b] = [vals[n] for n in names]
    rows = []
    for j, name in enumerate(names):
        col = reps[:, j]
        col = col[np.isfinite(col)]
        low, high = np.quantile(col, [alpha / 2, 1 - alpha / 2]) if col.size else (np.nan, np.nan)
        rows.append(
            {"metric": name, "estimate": point[name], "low": float(low), "high": float(high), "n_valid": int(col.size)}
        )
    return pd.DataFrame(rows).set_index("metric")
