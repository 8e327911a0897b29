"""Score predictions: the paper's metrics, by class and macro, with patient-bootstrap CIs.

Guo et al. 2022 report accuracy, precision, recall, specificity, F-1 and AUC (their Eqs.
6-10), macro-averaged over the three classes (Table 4), per class (Fig. 8), and for the
two-class task "metastatic vs not" (Table 8, Fig. 10). This module computes all of them
(the formulas are in :mod:`scintilab.metrics`, named here too) from a table of per-image
predictions (a run directory's ``predictions.csv``), adds what a
clinician-researcher needs to trust the numbers on a small test set, namely
confidence intervals from a bootstrap that resamples *patients* (images of one patient
are not independent: views, augmented copies) and a calibration curve with its expected
calibration error, and builds the figures (ROC, confusion matrix, per-class bars,
calibration).

Conventions: ``y_true`` holds class indices into ``classes``; ``proba`` is an (N, K)
array of class probabilities; the prediction is ``argmax(proba)`` unless given. Metrics
that are undefined on the data (a class absent from the test set) are NaN, never a guess.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab.errors import InputError

# the metric functions, part of this module's API (notebooks and tests call ``evaluation.<name>``)
from scintilab.metrics import (
    CLASS_METRICS,
    MACRO_METRICS,
    TWO_CLASSES,
    auc_per_class,
    binary_auc,
    bootstrap_metrics,
    calibration_curve,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    merge_labels,
    per_class_from_confusion,
    roc_curves,
    two_class,
)
from scintilab.provenance import jsonable
from scintilab.runs import (
    NONFINITE_STATUS,
    PREDICTIONS_FILE,
    load_predictions,
    nonfinite_message,
    read_info,
    run_policy,
)

#: Column headers as the paper prints them.
PAPER_NAMES: dict[str, str] = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "specificity": "Specificity",
    "f1": "F-1 score",
    "auc": "AUC",
    "ece": "ECE",
}


#: Guo et al. 2022's published scores, for side-by-side tables (test split of D3).
PAPER_TABLE4: dict[str, dict[str, float]] = {
    "Classifier-inRAC (paper)": {
        "accuracy": 0.7782,
        "precision": 0.7799,
        "recall": 0.7823,
        "f1": 0.7764,
        "auc": 0.8364,
    },
    "Classifier-outRAC (paper)": {"accuracy": 0.6725, "precision": 0.7233, "recall": 0.6831, "f1": 0.6723},
}
#: Table 8: two-class (metastatic vs not) scores of Classifier-inRAC.
PAPER_TABLE8: dict[str, float] = {
    "accuracy": 0.8310,
    "precision": 0.8696,
    "recall": 0.8696,
    "f1": 0.8696,
    "auc": 0.8147,
}


# --------------------------------------------------------------------------- predictions tables
def probability_columns(df: pd.DataFrame) -> list[str]:
    """The ``p_<class>`` columns of a predictions table, in model-output order."""
    cols = [c for c in df.columns if c.startswith("p_")]
    if not cols:
        raise ValueError("predictions table has no p_<class> probability columns")
    return cols


def aggregate_by_study(df: pd.DataFrame) -> pd.DataFrame:
    """Average class probabilities over all images of a study (views, augmented copies).

    The paper scores single images; a clinician reads a study. This gives one row per
    study (first row's metadata, mean probabilities, re-taken argmax prediction).
    """
    pcols = probability_columns(df)
    meta = df.groupby("study_key", sort=False).first()
    probs = df.groupby("study_key", sort=False)[pcols].mean()
    out = meta.drop(columns=pcols).join(probs).reset_index()
    classes = [c[2:] for c in pcols]
    out["pred"] = np.asarray(classes)[out[pcols].to_numpy().argmax(axis=1)]
    out["kind"] = "study"
    out["aug"] = "mean"
    return out


def nonfinite_rows(df: pd.DataFrame) -> int:
    """How many rows of a predictions table hold a NaN or infinite probability."""
    p = df[probability_columns(df)].to_numpy(dtype=float)
    return int((~np.isfinite(p)).any(axis=1).sum())


def _finite_predictions(run_dir: Path) -> pd.DataFrame:
    """A run's predictions table; a run that went NaN/inf is refused in one sentence (issue 30).

    A run that training stopped on non-finite numbers has no predictions: the sentence it
    recorded is raised. A table with NaN/inf probabilities (a run trained before the guard
    existed, or an edited table) is refused naming the epochs run, instead of failing deep
    in scikit-learn.

    Raises:
        InputError: no readable predictions, or non-finite ones.
    """
    try:
        info = read_info(run_dir)
    except InputError:  # a bare predictions table can still be scored
        info = {}
    if info.get("status") == NONFINITE_STATUS:
        raise InputError(run_dir, (info.get("nonfinite") or {}).get("message", "training stopped on NaN/inf numbers"))
    df = load_predictions(run_dir)
    bad = nonfinite_rows(df)
    if bad:
        raise InputError(
            run_dir / PREDICTIONS_FILE,
            f"{bad} of {len(df)} rows have NaN/inf probabilities: "
            + nonfinite_message(info.get("epochs_run"), "outputs", run_policy(info) if info else None, after=True),
        )
    return df


def arrays_from_predictions(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(y_true, proba, patient_keys, classes)`` from a predictions table.

    The table needs ``true`` (class name), ``patient_key`` and ``p_<class>`` columns.
    """
    pcols = probability_columns(df)
    bad = nonfinite_rows(df)
    if bad:  # scikit-learn would stop on them with a traceback; say what it is instead
        from scintilab.runs import nonfinite_message

        raise ValueError(
            f"{bad} of {len(df)} predictions have NaN/inf probabilities: {nonfinite_message(None, 'outputs', None)}"
        )
    classes = [c[2:] for c in pcols]
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(df["true"]) - set(lookup))
    if unknown and len(classes) == 2:
        # a 2-class model scored against 3-class names: merge ADMet/nADMet into Met
        y = np.array([0 if t == classes[0] else 1 for t in df["true"]])
    elif unknown:
        raise ValueError(f"labels {unknown} are not among the model's classes {classes}")
    else:
        y = df["true"].map(lookup).to_numpy()
    return y.astype(int), df[pcols].to_numpy(dtype=float), df["patient_key"].astype(str).to_numpy(), classes


def evaluate_predictions(
    df: pd.DataFrame,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    rng: np.random.Generator | int | None = 0,
    n_bins: int = 10,
    two_class_threshold: float = 0.5,
) -> dict[str, Any]:
    """Every metric, with CIs, from a predictions table (rows = images or studies).

    Args:
        df: predictions with ``true``, ``patient_key`` and ``p_<class>`` columns.
        n_boot: bootstrap replicates (0 skips the intervals).
        alpha: 1 - confidence level.
        rng: bootstrap randomness.
        n_bins: calibration bins.
        two_class_threshold: threshold on P(Met) for the summed-probability two-class mode.

    Returns:
        JSON-ready dict: ``classes``, ``n_images``, ``n_patients``, ``metrics`` (macro point
        estimates + ``per_class`` + ``confusion``), ``ci`` ({metric: [low, high]}),
        ``roc``, ``calibration`` (records), ``ece``, and ``two_class`` with entries
        ``sum`` and ``merge`` (3-class models) or ``model`` (2-class models), each holding
        ``metrics`` and ``ci``.
    """
    y, p, groups, classes = arrays_from_predictions(df)
    out: dict[str, Any] = {
        "classes": classes,
        "n_images": int(len(y)),
        "n_patients": int(len(np.unique(groups))),
        "alpha": alpha,
        "n_boot": n_boot,
    }
    out["metrics"] = classification_metrics(y, p, classes=classes)
    out["ece"] = expected_calibration_error(y, p, n_bins=n_bins)
    out["roc"] = roc_curves(y, p, classes)
    out["calibration"] = calibration_curve(y, p, n_bins=n_bins).to_dict(orient="records")
    out["ci"] = _ci_dict(y, p, groups, None, classes, n_boot, alpha, rng, n_bins)
    modes = ["model"] if len(classes) == 2 else ["sum", "merge"]
    out["two_class"] = {}
    for mode in modes:
        y2, p2, pred2 = two_class(y, p, method="sum" if mode == "model" else mode, threshold=two_class_threshold)
        entry = {"metrics": classification_metrics(y2, p2, y_pred=pred2, classes=TWO_CLASSES)}
        entry["ece"] = expected_calibration_error(y2, p2, n_bins=n_bins, y_pred=pred2)
        entry["roc"] = roc_curves(y2, p2, TWO_CLASSES)
        entry["ci"] = _ci_dict(y2, p2, groups, pred2, TWO_CLASSES, n_boot, alpha, rng, n_bins)
        out["two_class"][mode] = entry
    return out


def _ci_dict(y, p, groups, pred, classes, n_boot, alpha, rng, n_bins) -> dict[str, list[float]]:
    if n_boot <= 0:
        return {}
    table = bootstrap_metrics(
        y, p, groups, y_pred=pred, classes=classes, n_boot=n_boot, alpha=alpha, rng=rng, n_bins=n_bins
    )
    return {name: [row.low, row.high] for name, row in table.iterrows()}


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    per: str = "image",
    n_boot: int = 1000,
    alpha: float = 0.05,
    rng: np.random.Generator | int | None = 0,
    write: bool = False,
    two_class_threshold: float = 0.5,
) -> dict[str, Any]:
    """Score a run directory's ``predictions.csv`` (never re-trains).

    Args:
        run_dir: a folder written by :func:`scintilab.training.train`.
        split: which rows to score (``"test"``; ``"all"`` for every row).
        per: ``"image"`` (the paper's unit) or ``"study"`` (probabilities averaged per study).
        n_boot: bootstrap replicates for the CIs.
        alpha: 1 - confidence level.
        rng: bootstrap randomness.
        write: also write the result to ``metrics.json`` in the run directory.
        two_class_threshold: threshold on P(Met) for the summed-probability two-class mode.

    Returns:
        The dict of :func:`evaluate_predictions`, plus ``run`` (the run's name), ``split``
        and ``per``.

    Raises:
        InputError: the folder holds no readable predictions table, training stopped on
            NaN/inf numbers, or the predictions hold NaN/inf probabilities.
    """
    run_dir = Path(run_dir)
    df = _finite_predictions(run_dir)
    if split != "all" and "split" in df.columns:
        df = df[df["split"] == split]
    if df.empty:
        from scintilab.errors import InputError

        raise InputError(run_dir / "predictions.csv", f"no rows for split {split!r}")
    if per == "study":
        df = aggregate_by_study(df)
    elif per != "image":
        raise ValueError(f"per must be 'image' or 'study', not {per!r}")
    result = evaluate_predictions(df, n_boot=n_boot, alpha=alpha, rng=rng, two_class_threshold=two_class_threshold)
    result.update({"run": run_dir.name, "split": split, "per": per})
    if write:
        (run_dir / "metrics.json").write_text(json.dumps(jsonable(result), indent=1))
    return result


def threshold_table(
    result_or_y: Any,
    p_met: np.ndarray | None = None,
    thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
) -> pd.DataFrame:
    """Sensitivity, specificity, PPV and NPV of "metastatic" at several thresholds on P(Met).

    Clinicians choose an operating point (a screening read wants high sensitivity); the
    paper reports only the argmax decision.

    Args:
        result_or_y: merged labels (0 NoMet, 1 Met), or a predictions DataFrame (``true``
            and ``p_*`` columns; P(Met) = 1 - P(NoMet)).
        p_met: P(Met) per image when labels are given.
        thresholds: decision thresholds.

    Returns:
        DataFrame indexed by threshold.
    """
    if isinstance(result_or_y, pd.DataFrame):
        y = (result_or_y["true"] != "NoMet").to_numpy().astype(int)
        p_met = 1.0 - result_or_y["p_NoMet"].to_numpy(dtype=float)
    else:
        y = np.asarray(result_or_y, dtype=int)
    assert p_met is not None
    rows = []
    for t in thresholds:
        pred = (p_met > t).astype(int)
        cm = confusion_matrix(y, pred, 2)
        tn, fp, fn, tp = cm.ravel()
        rows.append(
            {
                "threshold": t,
                "sensitivity": tp / (tp + fn) if tp + fn else np.nan,
                "specificity": tn / (tn + fp) if tn + fp else np.nan,
                "PPV": tp / (tp + fp) if tp + fp else np.nan,
                "NPV": tn / (tn + fn) if tn + fn else np.nan,
                "called metastatic": int(tp + fp),
            }
        )
    return pd.DataFrame(rows).set_index("threshold")


def paper_comparison(result: Mapping[str, Any], name: str = "this run", two_class: str | None = None) -> pd.DataFrame:
    """Our estimates with CIs next to the paper's Table 4 (or Table 8 when ``two_class``)."""
    ours = metrics_table({name: result}, metrics=("accuracy", "precision", "recall", "f1", "auc"), two_class=two_class)
    ref = PAPER_TABLE8 if two_class else PAPER_TABLE4["Classifier-inRAC (paper)"]
    label = "Classifier-inRAC, Table 8 (paper)" if two_class else "Classifier-inRAC, Table 4 (paper)"
    paper = pd.DataFrame(
        {
            PAPER_NAMES[k]: [f"{ref[k]:.4f}" if k in ref else "n/a"]
            for k in ("accuracy", "precision", "recall", "f1", "auc")
        },
        index=[label],
    )
    return pd.concat([paper, ours])


# --------------------------------------------------------------------------- tables
def _fmt(value: float, ci: Sequence[float] | None, digits: int) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    s = f"{value:.{digits}f}"
    if ci is not None and len(ci) == 2 and ci[0] is not None and np.isfinite(ci[0]):
        s += f" ({ci[0]:.{digits - 1}f}-{ci[1]:.{digits - 1}f})"
    return s


def metrics_table(
    results: Mapping[str, Mapping[str, Any]],
    *,
    metrics: Sequence[str] = MACRO_METRICS,
    two_class: str | None = None,
    with_ci: bool = True,
    digits: int = 4,
) -> pd.DataFrame:
    """The paper's Table 4 layout: one row per classifier (run), one column per metric.

    Args:
        results: ``{row name: evaluate_run/evaluate_predictions result}``.
        metrics: columns, in order (``ece`` allowed).
        two_class: ``None`` for the multiclass metrics, else ``"sum"``, ``"merge"`` or
            ``"model"`` for the Table 8 layout.
        with_ci: append "(low-high)" to each cell.
        digits: decimals of the estimate (the paper prints 4).

    Returns:
        DataFrame of strings, index "Classifier", columns named as in the paper.
    """
    rows = {}
    for name, res in results.items():
        src = res
        if two_class is not None:
            entry = res["two_class"]
            src = entry[two_class] if two_class in entry else next(iter(entry.values()))
        m, ci = src["metrics"], src.get("ci", {})
        cells = {}
        for k in metrics:
            val = src.get("ece") if k == "ece" else m.get(k)
            cells[PAPER_NAMES.get(k, k)] = _fmt(np.nan if val is None else val, ci.get(k) if with_ci else None, digits)
        rows[name] = cells
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "Classifier"
    return table


def per_class_table(result: Mapping[str, Any], *, with_ci: bool = True, digits: int = 4) -> pd.DataFrame:
    """The paper's Fig. 8 as a table: one row per class, one column per metric."""
    m, ci = result["metrics"], result.get("ci", {})
    rows = {}
    for c in m["classes"]:
        rows[c] = {
            PAPER_NAMES[k]: _fmt(m["per_class"][k][c], ci.get(f"{k}[{c}]") if with_ci else None, digits)
            for k in CLASS_METRICS
        }
        rows[c]["Images"] = str(m["per_class"]["support"][c])
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "Class"
    return table


# --------------------------------------------------------------------------- figures (plotly)
def roc_figure(roc: Mapping[str, Mapping[str, Any]], title: str = "ROC (one vs rest)"):
    """Plotly ROC curves, one per class, AUC in the legend (the paper's Fig. 6)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, c in roc.items():
        fig.add_trace(go.Scatter(x=c["fpr"], y=c["tpr"], mode="lines", name=f"{name} (AUC {c['auc']:.3f})"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "grey"}, name="chance"))
    fig.update_layout(
        title=title,
        xaxis_title="False positive rate (1 - specificity)",
        yaxis_title="True positive rate (recall)",
        width=520,
        height=460,
        xaxis={"range": [0, 1]},
        yaxis={"range": [0, 1.02]},
    )
    return fig


def confusion_figure(
    cm: Sequence[Sequence[int]], classes: Sequence[str], title: str = "Confusion matrix", normalize: bool = False
):
    """Plotly heat map of a confusion matrix (rows = truth), counts written in each cell."""
    import plotly.graph_objects as go

    cm = np.asarray(cm, dtype=float)
    z = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    text = [
        [(f"{int(cm[i, j])}<br>{z[i, j]:.0%}" if normalize else f"{int(cm[i, j])}") for j in range(cm.shape[1])]
        for i in range(cm.shape[0])
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(classes),
            y=list(classes),
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
        )
    )
    fig.update_layout(
        title=title, xaxis_title="Predicted", yaxis_title="True", width=440, height=420, yaxis={"autorange": "reversed"}
    )
    return fig


def per_class_figure(result: Mapping[str, Any], title: str = "Per-class scores"):
    """Grouped bars of precision/recall/specificity/F-1/AUC per class with CI whiskers (Fig. 8)."""
    import plotly.graph_objects as go

    m, ci = result["metrics"], result.get("ci", {})
    fig = go.Figure()
    for k in CLASS_METRICS:
        vals = [m["per_class"][k][c] for c in m["classes"]]
        lows = [ci.get(f"{k}[{c}]", [None, None])[0] for c in m["classes"]]
        highs = [ci.get(f"{k}[{c}]", [None, None])[1] for c in m["classes"]]
        err = None
        if all(v is not None and np.isfinite(v) for v in lows + highs):
            err = {
                "type": "data",
                "symmetric": False,
                "array": [h - v for h, v in zip(highs, vals)],
                "arrayminus": [v - lo for v, lo in zip(vals, lows)],
            }
        fig.add_trace(go.Bar(name=PAPER_NAMES[k], x=m["classes"], y=vals, error_y=err))
    fig.update_layout(title=title, barmode="group", yaxis={"range": [0, 1.05], "title": "score"}, width=640, height=420)
    return fig


def calibration_figure(result: Mapping[str, Any], title: str = "Calibration (top label)"):
    """Reliability diagram: accuracy vs confidence per bin, point size = images, ECE in title."""
    import plotly.graph_objects as go

    table = pd.DataFrame(result["calibration"])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "grey"}, name="perfect"))
    if not table.empty:
        size = 8 + 30 * np.sqrt(table["count"] / table["count"].max())
        fig.add_trace(
            go.Scatter(
                x=table["confidence"],
                y=table["accuracy"],
                mode="lines+markers",
                marker={"size": size},
                name="model",
                text=[f"{n} images" for n in table["count"]],
            )
        )
    ece = result.get("ece")
    fig.update_layout(
        title=f"{title}: ECE {ece:.3f}" if ece is not None and np.isfinite(ece) else title,
        xaxis_title="confidence of predicted class",
        yaxis_title="fraction correct",
        xaxis={"range": [0, 1]},
        yaxis={"range": [0, 1.02]},
        width=480,
        height=440,
    )
    return fig


# --------------------------------------------------------------------------- CLI
def cli_main(argv: list[str]) -> int:
    """``scintilab evaluate RUN_DIR [RUN_DIR ...]``: metrics with CIs for each run."""
    parser = argparse.ArgumentParser(
        prog="scintilab evaluate", description="Score run directories (Table 4 layout, 95% CIs by patient)."
    )
    parser.add_argument("runs", nargs="+", help="run directories written by 'scintilab train'")
    parser.add_argument("--per", choices=["image", "study"], default="image", help="scoring unit")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (resampling patients)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--two-class", choices=["sum", "merge"], default=None, help="also print the two-class table (Table 8)"
    )
    parser.add_argument("--write", action="store_true", help="(re)write metrics.json in each run directory")
    args = parser.parse_args(argv)
    results, failed = {}, []
    for r in args.runs:
        try:
            results[Path(r).name] = evaluate_run(r, per=args.per, n_boot=args.n_boot, rng=args.seed, write=args.write)
        except InputError as exc:  # one bad run folder does not stop the others
            failed.append((r, exc.problem))
    if results:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(metrics_table(results))
            if args.two_class:
                print(metrics_table(results, two_class=args.two_class))
    for r, why in failed:
        print(f"skipped {r}: {why}")
    return 0 if results else 1


__all__ = [
    "CLASS_METRICS",
    "MACRO_METRICS",
    "PAPER_NAMES",
    "PAPER_TABLE4",
    "PAPER_TABLE8",
    "TWO_CLASSES",
    "aggregate_by_study",
    "arrays_from_predictions",
    "auc_per_class",
    "binary_auc",
    "bootstrap_metrics",
    "calibration_curve",
    "calibration_figure",
    "classification_metrics",
    "cli_main",
    "confusion_figure",
    "confusion_matrix",
    "evaluate_predictions",
    "evaluate_run",
    "expected_calibration_error",
    "merge_labels",
    "metrics_table",
    "nonfinite_rows",
    "paper_comparison",
    "per_class_figure",
    "per_class_from_confusion",
    "per_class_table",
    "probability_columns",
    "roc_curves",
    "roc_figure",
    "threshold_table",
    "two_class",
]
