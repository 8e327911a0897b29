"""The ceiling: how well the generator's own truth tells NoMet, ADMet and nADMet apart.

Issue 25, item 1. ADMet and nADMet overlap on purpose (:mod:`scintilab.synth.lesions`), so
nobody knew how high an image model's accuracy *can* go on a synthetic cohort. Here a
gradient-boosting classifier reads what a perfect reader would see in the image, taken
from ``truth/<study_id>.json`` rather than from pixels: every visible lesion's size, area,
shape, region, uptake, lytic rim or cold centre, the benign skeletal findings, a
superscan, the true BSI. Its out-of-fold accuracy, with folds grouped by patient, is the
best an image model can hope for on that cohort; an image model's accuracy divided by it
says how much of the learnable signal the model found.

What a feature may not be: the label, the patient, anything drawn *because of* the class
rather than seen in the image (the generator's per-class parameters, the variety record,
the missing posterior view, which the generator takes from ADMet patients only), nor
anything a reader cannot see (lesions with no pixel, demographics from the header). The
model and its settings are fixed here, not chosen per cohort (:data:`MODEL_SETTINGS`),
so a reporting cohort measured with it tunes nothing.

Validation against the truth lives in :mod:`scintilab.synth`, never in the analysis; the
truth is read with :func:`scintilab.lesion_agreement.truth_files`, the one truth reader.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from scintilab.anatomy import REGIONS
from scintilab.errors import InputError
from scintilab.lesion_agreement import truth_files
from scintilab.metrics import bootstrap_metrics, classification_metrics, two_class
from scintilab.study import CLASSES, SHAPE_CLASSES

#: Uptake (counts, the conjugate-view peak above the bone) from which a lesion counts as
#: bright: the tail of both classes' uptake mixtures (medians 78-85, tails 220-260).
BRIGHT_UPTAKE = 150.0

#: Columns of :func:`truth_features` that are keys, never features.
KEY_COLUMNS: tuple[str, ...] = ("study_key", "patient", "visit", "label")

#: The features, in table order (see :func:`study_features`).
FEATURES: tuple[str, ...] = (
    "n_lesions",
    "n_cold",
    "n_lytic_rim",
    "frac_lytic_rim",
    "n_bright",
    "size_mm_mean",
    "size_mm_median",
    "size_mm_max",
    "area_mm2_total",
    "area_mm2_mean",
    "area_mm2_max",
    "uptake_mean",
    "uptake_median",
    "uptake_max",
    *(f"n_shape_{s}" for s in SHAPE_CLASSES),
    *(f"frac_shape_{s}" for s in SHAPE_CLASSES),
    *(f"n_region_{r}" for r in REGIONS),
    *(f"frac_region_{r}" for r in REGIONS),
    "n_benign_skeletal",
    "superscan",
    "true_bsi",
)

#: The ceiling model, fixed once (compared with scikit-learn's defaults on the demo cohort,
#: seed 0, a tuning seed; never on a reporting seed). Small leaves and shrinkage because a
#: fold trains the ADMet/nADMet split on a few dozen patients.
MODEL_SETTINGS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_iter": 200,
    "max_leaf_nodes": 8,
    "min_samples_leaf": 5,
    "l2_regularization": 1.0,
}

#: Cross-validation reshuffles whose accuracies show how much the fold draw moves the figure.
REPEATS = 5


def visible_lesions(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lesions of one truth record that a reader could see: those painted on a pixel.

    A lesion moved out of the field is already gone from the record; one too small for the
    matrix paints no pixel (``pixels`` 0) and is invisible to any image model.
    """
    return [les for les in record.get("lesions", []) if int(les.get("pixels", 0)) > 0]


def _stats(values: Sequence[float], prefix: str, what: Sequence[str] = ("mean", "median", "max")) -> dict[str, float]:
    arr = np.asarray(values, float)
    funcs = {"mean": np.mean, "median": np.median, "max": np.max, "total": np.sum}
    # a study without lesions reads 0, which no lesion has: trees split it off
    return {f"{prefix}_{w}": float(funcs[w](arr)) if arr.size else 0.0 for w in what}


def study_features(record: Mapping[str, Any]) -> dict[str, float]:
    """The features of one study from its truth record (:data:`FEATURES`, in that order).

    Args:
        record: one ``truth/<study_id>.json`` as the generator wrote it.

    Returns:
        feature name -> value. Counts and shares over the visible lesions
        (:func:`visible_lesions`); uptake over the hot ones (a cold lesion has none); areas
        in mm^2 from the painted pixels and the study's PixelSpacing, so the matrix does
        not change them; the benign findings on bone (the injection site, urine and bags
        are off the skeleton); ``superscan`` 1 where diffuse marrow uptake was drawn.
    """
    les = visible_lesions(record)
    n = len(les)
    sr, sc = (float(v) for v in record.get("pixel_spacing", (1.0, 1.0)))
    hot = [float(x["uptake"]) for x in les if not x.get("cold")]
    out: dict[str, float] = {
        "n_lesions": float(n),
        "n_cold": float(sum(bool(x.get("cold")) for x in les)),
        "n_lytic_rim": float(sum(bool(x.get("lytic_rim")) for x in les)),
    }
    out["frac_lytic_rim"] = out["n_lytic_rim"] / n if n else 0.0
    out["n_bright"] = float(sum(u >= BRIGHT_UPTAKE for u in hot))
    out.update(_stats([float(x["size_mm"]) for x in les], "size_mm"))
    out.update(_stats([int(x["pixels"]) * sr * sc for x in les], "area_mm2", ("total", "mean", "max")))
    out.update(_stats(hot, "uptake"))
    for key, names in (("shape", SHAPE_CLASSES), ("region", REGIONS)):
        counts = {v: sum(x.get(key) == v for x in les) for v in names}
        out.update({f"n_{key}_{v}": float(c) for v, c in counts.items()})
        out.update({f"frac_{key}_{v}": c / n if n else 0.0 for v, c in counts.items()})
    out["n_benign_skeletal"] = float(sum(b.get("bone") is not None for b in record.get("benign", [])))
    out["superscan"] = float("superscan" in record)
    out["true_bsi"] = float(record.get("true_bsi", 0.0))
    return {k: out[k] for k in FEATURES}


def truth_features(cohort_dir: str | Path) -> pd.DataFrame:
    """One row per study of a generated cohort: keys, label and :data:`FEATURES`.

    Args:
        cohort_dir: a folder written by :func:`scintilab.synth.cohort.write_cohort` (its
            ``truth/`` is read; no ingest needed).

    Returns:
        DataFrame with ``study_key`` (pseudonymous, as the manifest keys studies),
        ``patient`` (the grouping key: studies of one patient share it), ``visit``,
        ``label`` (one of :data:`scintilab.study.CLASSES`) and the features, sorted by
        patient and visit.

    Raises:
        InputError: the folder holds no truth records, or a record without a known label.
    """
    truth_dir = Path(cohort_dir) / "truth"
    records = truth_files(truth_dir)
    if not records:
        raise InputError(truth_dir, "holds no truth records (<study_id>.json): not a generated cohort")
    rows = []
    for key, (rec, path) in records.items():
        if rec.get("label") not in CLASSES:
            raise InputError(path, f"label {rec.get('label')!r} is not one of {', '.join(CLASSES)}")
        rows.append(
            {
                "study_key": key,
                "patient": str(rec.get("patient_id") or rec.get("case")),
                "visit": int(rec.get("visit", 0)),
                "label": rec["label"],
                **study_features(rec),
            }
        )
    return pd.DataFrame(rows).sort_values(["patient", "visit"], kind="stable").reset_index(drop=True)


def ceiling_model(seed: int = 0) -> HistGradientBoostingClassifier:
    """The gradient-boosting classifier of the ceiling, with :data:`MODEL_SETTINGS`."""
    return HistGradientBoostingClassifier(**MODEL_SETTINGS, random_state=seed)


def grouped_folds(
    y: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that keep every patient's studies on one side.

    Fewer folds than asked when the rarest class has fewer patients than ``folds``
    (StratifiedGroupKFold would leave that class out of some test folds); at least 2.

    Args:
        y: class index per study.
        groups: patient key per study.
        folds: the folds asked for.
        seed: shuffles patients into folds.

    Returns:
        (train indices, test indices) per fold.

    Raises:
        ValueError: fewer than two patients in some class present, or fewer than 2 folds possible.
    """
    y, groups = np.asarray(y), np.asarray(groups).astype(str)
    per_class = [len(set(groups[y == k])) for k in np.unique(y)]
    k = min(int(folds), min(per_class))
    if k < 2:
        raise ValueError(f"a class has {min(per_class)} patient(s): at least 2 folds need 2 per class")
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in cv.split(np.zeros(len(y)), y, groups)]


def _proba(model: Any, x: np.ndarray) -> np.ndarray:
    """(N, 3) class probabilities, zero for a class the fold's training part lacked."""
    p = np.zeros((len(x), len(CLASSES)))
    p[:, np.asarray(model.classes_, int)] = model.predict_proba(x)
    return p


def _out_of_fold(
    make: Any, x: np.ndarray, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, list[Any]]:
    proba = np.zeros((len(y), len(CLASSES)))
    models = []
    for tr, te in splits:
        model = make().fit(x[tr], y[tr])
        proba[te] = _proba(model, x[te])
        models.append(model)
    return proba, models


def _ci(table: pd.DataFrame, metric: str) -> dict[str, float]:
    row = table.loc[metric]
    return {"estimate": float(row["estimate"]), "low": float(row["low"]), "high": float(row["high"])}


def ceiling_from_table(
    table: pd.DataFrame,
    folds: int = 5,
    seed: int = 0,
    *,
    n_boot: int = 1000,
    importance_repeats: int = 10,
    features: Sequence[str] = FEATURES,
    repeats: int = REPEATS,
) -> dict[str, Any]:
    """The ceiling of a feature table (as :func:`truth_features` returns it).

    Args:
        table: one row per study with ``patient``, ``label`` and the ``features``.
        folds: cross-validation folds, grouped by patient and stratified by class.
        seed: folds, model and bootstrap randomness.
        n_boot: patient-bootstrap replicates for the 95 % intervals.
        importance_repeats: shuffles per feature for the permutation importances.
        features: the columns the model reads.
        repeats: draws of the folds (:data:`REPEATS`).

    Returns:
        JSON-ready dict: ``studies``, ``patients``, ``folds``; ``accuracy``, ``macro_f1``,
        ``met_accuracy`` (P(ADMet) + P(nADMet) > 0.5, as the classifier's figures), each
        ``{"estimate", "low", "high"}``: the out-of-fold predictions of ``repeats``
        draws of the folds stacked, the interval by patient bootstrap (a drawn patient
        brings all of its predictions); ``majority_class``, ``majority_rate`` (always that
        class) and ``majority_met_rate``; ``per_fold`` (studies and the three figures per
        fold of the first draw); ``cv_repeats`` (accuracy of each draw, mean and SD);
        ``logistic_accuracy`` (a logistic regression on the same folds, a check that the
        ceiling is not one model's quirk); ``confusion`` (rows true, columns predicted, in
        :data:`scintilab.study.CLASSES` order, mean over the draws); ``importances`` (mean
        drop of accuracy when a feature is shuffled in the test folds of the first draw,
        largest first); ``model`` and ``text``.

    Raises:
        ValueError: a column missing, or a class with fewer than two patients.
    """
    missing = [c for c in ("patient", "label", *features) if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks the columns {', '.join(missing)}")
    # One thread: these models are tiny, and OpenMP's threads on a shared 2-core machine
    # spin against other jobs (a 5 ms prediction took 190 ms under load).
    with threadpool_limits(limits=1):
        result = _ceiling(table, folds, seed, n_boot, importance_repeats, features, max(1, int(repeats)))
    result["text"] = summary_text(result)
    return result


def _ceiling(
    table: pd.DataFrame,
    folds: int,
    seed: int,
    n_boot: int,
    importance_repeats: int,
    features: Sequence[str],
    repeats: int,
) -> dict[str, Any]:
    x = table[list(features)].to_numpy(float)
    y = np.array([CLASSES.index(v) for v in table["label"]])
    groups = table["patient"].astype(str).to_numpy()
    n = len(y)
    # Each reshuffle of the folds gives every study one out-of-fold prediction. One draw of
    # the folds moved the demo cohort's accuracy by up to 0.04, so the figure is taken over
    # all reshuffles stacked, and the bootstrap draws a patient with all of its predictions.
    splits = [grouped_folds(y, groups, folds, seed + r) for r in range(repeats)]
    runs = [_out_of_fold(lambda: ceiling_model(seed), x, y, sp) for sp in splits]
    probas = [p for p, _ in runs]
    proba, y_all, g_all = np.concatenate(probas), np.tile(y, repeats), np.tile(groups, repeats)
    pred = proba.argmax(axis=1)
    boot3 = bootstrap_metrics(y_all, proba, g_all, y_pred=pred, n_boot=n_boot, rng=seed)
    y2, p2, pred2 = two_class(y_all, proba, "sum")
    boot2 = bootstrap_metrics(y2, p2, g_all, y_pred=pred2, classes=("NoMet", "Met"), n_boot=n_boot, rng=seed)

    per_fold = []  # the first draw of the folds
    for _, te in splits[0]:
        m3 = classification_metrics(y[te], probas[0][te])
        per_fold.append(
            {
                "studies": int(len(te)),
                "accuracy": m3["accuracy"],
                "macro_f1": m3["f1"],
                "met_accuracy": float(np.mean(pred2[:n][te] == y2[:n][te])),
            }
        )
    draws = [float(np.mean(p.argmax(axis=1) == y)) for p in probas]
    logistic = [
        _out_of_fold(lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)), x, y, sp)[0]
        for sp in splits
    ]

    # importance on the held-out folds of the first draw: what the model learned that generalises
    drop = np.zeros(len(features))
    for (_, te), model in zip(splits[0], runs[0][1]):
        imp = permutation_importance(
            model, x[te], y[te], scoring="accuracy", n_repeats=importance_repeats, random_state=seed
        )
        drop += imp.importances_mean * len(te)
    drop /= n
    order = np.argsort(-drop, kind="stable")
    importances = {features[i]: round(float(drop[i]), 4) for i in order}

    shares = {c: float(np.mean(y == i)) for i, c in enumerate(CLASSES)}
    majority = max(shares, key=shares.get)
    confusion = np.array(classification_metrics(y_all, proba, y_pred=pred)["confusion"], float) / repeats
    return {
        "studies": int(n),
        "patients": int(len(set(groups))),
        "folds": len(splits[0]),
        "accuracy": _ci(boot3, "accuracy"),
        "macro_f1": _ci(boot3, "f1"),
        "met_accuracy": _ci(boot2, "accuracy"),
        "majority_class": majority,
        "majority_rate": shares[majority],
        "majority_met_rate": float(max(np.mean(y == 0), np.mean(y > 0))),
        "share_per_class": shares,
        "per_fold": per_fold,
        "cv_repeats": {
            "accuracy": draws,
            "mean": float(np.mean(draws)),
            "sd": float(np.std(draws, ddof=1)) if len(draws) > 1 else 0.0,
        },
        "logistic_accuracy": float(np.mean([np.mean(p.argmax(axis=1) == y) for p in logistic])),
        "confusion": np.round(confusion, 2).tolist(),
        "importances": importances,
        "model": {
            "name": "HistGradientBoostingClassifier",
            **MODEL_SETTINGS,
            "cv": f"StratifiedGroupKFold by patient, {repeats} draws of the folds stacked",
            "seed": int(seed),
            "bootstrap": int(n_boot),
            "features": list(features),
        },
    }


def ceiling(
    cohort_dir: str | Path, folds: int = 5, seed: int = 0, *, n_boot: int = 1000, repeats: int = REPEATS
) -> dict[str, Any]:
    """The ceiling of a generated cohort (:func:`truth_features` then :func:`ceiling_from_table`).

    Args:
        cohort_dir: a folder written by :func:`scintilab.synth.cohort.write_cohort`.
        folds: cross-validation folds, grouped by patient.
        seed: folds, model and bootstrap randomness.
        n_boot: patient-bootstrap replicates.
        repeats: draws of the folds.

    Returns:
        :func:`ceiling_from_table`'s dict with ``cohort`` added (the seed, variety, patients
        and visits its ``cohort.json`` records).

    Raises:
        InputError: no truth records, or an unreadable ``cohort.json``.
    """
    root = Path(cohort_dir)
    meta: dict[str, Any] = {}
    if (root / "cohort.json").exists():
        try:
            meta = json.loads((root / "cohort.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(root / "cohort.json", f"unreadable ({err})") from None
    result = ceiling_from_table(truth_features(root), folds, seed, n_boot=n_boot, repeats=repeats)
    cohort = {k: meta.get(k) for k in ("seed", "variety", "n_patients", "visits", "matrix")}
    cohort["variety"] = cohort["variety"] or "narrow"  # a cohort.json before the varieties
    result = {"cohort": cohort, **result}
    result["text"] = summary_text(result)
    return result


def fraction_of_ceiling(model: Mapping[str, Any], ceiling_result: Mapping[str, Any]) -> dict[str, float]:
    """An image model's figures as fractions of the ceiling measured on the same cohort.

    Args:
        model: the model's ``accuracy``, ``macro_f1`` and ``met_accuracy`` (floats; those
            missing are left out), e.g. ``families["all"]`` of ``benchmarks/classify_cohort.py``'s JSON.
        ceiling_result: :func:`ceiling`'s dict.

    Returns:
        ``accuracy``, ``macro_f1``, ``met_accuracy``: model / ceiling;
        ``accuracy_ceiling_range``: the accuracy fraction at the ceiling's interval ends
        (the model's figure held fixed); ``gain_over_majority``: the share of the ceiling's
        gain over the majority rate the model achieved, (model - majority) / (ceiling - majority).
    """
    out: dict[str, Any] = {}
    for key in ("accuracy", "macro_f1", "met_accuracy"):
        if key in model and model[key] is not None:
            out[key] = float(model[key]) / ceiling_result[key]["estimate"]
    if "accuracy" in model:
        acc, c = float(model["accuracy"]), ceiling_result["accuracy"]
        out["accuracy_ceiling_range"] = [acc / c["high"], acc / c["low"]]
        room = c["estimate"] - ceiling_result["majority_rate"]
        out["gain_over_majority"] = (acc - ceiling_result["majority_rate"]) / room if room > 0 else float("nan")
    return out


def summary_text(result: Mapping[str, Any]) -> str:
    """One paragraph saying what the ceiling is and what it rests on."""
    cohort = result.get("cohort") or {}
    where = f"seed {cohort['seed']} ({cohort['variety']})" if cohort.get("seed") is not None else "this feature table"
    acc, f1, met = result["accuracy"], result["macro_f1"], result["met_accuracy"]
    useful = [k for k, v in result["importances"].items() if v > 0][:3]
    rests = (
        f"Most of the accuracy rests on {', '.join(useful)}."
        if useful
        else "Shuffling no feature lowers its accuracy: with this few patients it learned nothing beyond the majority."
    )
    rep = result["cv_repeats"]
    return (
        f"On {where}, {result['studies']} studies of {result['patients']} patients, a gradient-boosting "
        f"classifier that reads the generator's truth of what the image shows (visible lesions' number, size, "
        f"area, shape, region, uptake, lytic rims and cold lesions; benign skeletal findings; superscan; true BSI) "
        f"reaches a three-class accuracy of {acc['estimate']:.3f} (95 % CI {acc['low']:.3f}-{acc['high']:.3f}, "
        f"patient bootstrap) out of fold ({result['folds']} folds grouped by patient, {len(rep['accuracy'])} draws of "
        f"the folds: {min(rep['accuracy']):.3f} to {max(rep['accuracy']):.3f} one by one), macro F-1 {f1['estimate']:.3f} "
        f"({f1['low']:.3f}-{f1['high']:.3f}) and metastatic-vs-not accuracy {met['estimate']:.3f} "
        f"({met['low']:.3f}-{met['high']:.3f}), against {result['majority_rate']:.3f} for always "
        f"{result['majority_class']}. An image model that sees these findings no better than the truth states them "
        f"can hope for no more on this cohort. {rests}"
    )


__all__ = [
    "BRIGHT_UPTAKE",
    "FEATURES",
    "KEY_COLUMNS",
    "MODEL_SETTINGS",
    "REPEATS",
    "ceiling",
    "ceiling_from_table",
    "ceiling_model",
    "fraction_of_ceiling",
    "grouped_folds",
    "study_features",
    "summary_text",
    "truth_features",
    "visible_lesions",
]
