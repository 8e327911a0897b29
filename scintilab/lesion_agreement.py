"""How the lesion table agrees with a ground truth: shape classes, uptake and regions (the
synthetic cohort's ``truth/``, or a site's own reading)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from scintilab.anatomy import REGIONS, region_of
from scintilab.errors import InputError
from scintilab.study import SHAPE_CLASSES

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass


from scintilab.lesion_features import REFERENCE_PIXEL_MM
from scintilab.pseudonym import study_key as make_study_key


# ---------------------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------------------
def shape_agreement(
    table: pd.DataFrame, predicted: str = "shape_rule", reference: str = "shape_annotated"
) -> tuple[pd.DataFrame, float]:
    """Confusion matrix and accuracy of a shape prediction against annotations.

    Args:
        table: the lesion table.
        predicted: column with predicted classes.
        reference: column with annotated classes (rows without one are ignored).

    Returns:
        ``(confusion, accuracy)``: rows = reference, columns = predicted, over
        :data:`SHAPE_CLASSES`; accuracy NaN when nothing is annotated.
    """
    sel = table[reference].notna() & table[predicted].notna() if len(table) else []
    sub = table[sel] if len(table) else table
    cm = pd.crosstab(
        pd.Categorical(sub[reference] if len(sub) else [], categories=SHAPE_CLASSES),
        pd.Categorical(sub[predicted] if len(sub) else [], categories=SHAPE_CLASSES),
        rownames=["annotated"],
        colnames=["predicted"],
        dropna=False,
    )
    acc = float((sub[reference] == sub[predicted]).mean()) if len(sub) else float("nan")
    return cm, acc


def fit_shape_classifier(
    table: pd.DataFrame,
    *,
    features: Sequence[str] = ("equiv_diameter_mm", "eccentricity", "solidity", "cv_drawn", "contrast"),
    max_depth: int = 4,
    folds: int = 5,
    rng: int = 0,
) -> tuple[Any, pd.Series, float]:
    """A small decision tree for shape from geometry, scored by patient-grouped CV.

    Args:
        table: lesion table with ``shape_annotated``.
        features: columns used.
        max_depth: tree depth (kept small so a clinician can read it).
        folds: cross-validation folds (grouped by patient so one patient's lesions never
            straddle train and test).
        rng: random state.

    Returns:
        ``(tree fitted on all annotated lesions, out-of-fold predictions, CV accuracy)``.
    """
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.tree import DecisionTreeClassifier

    sub = table[table["shape_annotated"].notna()]
    if sub.empty:
        raise ValueError("no annotated shapes to learn from")
    X = sub[list(features)].astype(float).fillna(0.0).to_numpy()
    y = sub["shape_annotated"].to_numpy()
    tree = DecisionTreeClassifier(max_depth=max_depth, random_state=rng, min_samples_leaf=3)
    n_groups = sub["patient_key"].nunique()
    k = min(folds, n_groups)
    if k >= 2:
        pred = cross_val_predict(tree, X, y, groups=sub["patient_key"], cv=GroupKFold(n_splits=k))
    else:
        pred = tree.fit(X, y).predict(X)
    tree.fit(X, y)
    oof = pd.Series(pred, index=sub.index, name="shape_tree")
    return tree, oof, float(np.mean(pred == y))


def truth_files(truth_dir: str | Path) -> dict[str, tuple[dict[str, Any], Path]]:
    """Every truth record of a cohort with the path of its label maps (the one truth reader).

    Args:
        truth_dir: the cohort's ``truth/`` folder (``<study_id>.json`` beside
            ``<study_id>_maps.npz``).

    Returns:
        study_key -> (the truth record, its ``_maps.npz`` path, which may not exist).

    Raises:
        InputError: a truth file that cannot be read, named.
    """
    out: dict[str, tuple[dict[str, Any], Path]] = {}
    for p in sorted(Path(truth_dir).glob("*.json")):
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(p, f"unreadable truth file ({err})") from None
        uid = rec.get("study_uid") or rec.get("StudyInstanceUID")
        if uid:
            out[make_study_key(str(uid))] = (rec, p.with_name(f"{p.stem}_maps.npz"))
    return out


def load_truth(truth_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Synthetic ground truth, keyed by pseudonymous study key (:func:`truth_files` without
    the label maps).

    Args:
        truth_dir: the cohort's ``truth/`` folder (``<study_id>.json`` files).

    Returns:
        study_key -> the truth record (with ``lesions``).
    """
    return {key: rec for key, (rec, _) in truth_files(truth_dir).items()}


def attach_truth(table: pd.DataFrame, truth: dict[str, dict[str, Any]], *, max_dist_px: float = 12.0) -> pd.DataFrame:
    """Add ``region_truth``/``bone_truth``/``shape_truth``/``uptake_truth`` by nearest centre.

    Truth centres (``center_rc``) are in the anterior frame; each lesion's anterior-frame
    centroid is matched to the nearest unused truth lesion of its study.

    Args:
        table: lesion table.
        truth: from :func:`load_truth`.
        max_dist_px: beyond this distance a lesion stays unmatched (NaN truth).

    Returns:
        A copy of the table with the truth columns.
    """
    df = table.copy()
    for col in ("region_truth", "bone_truth", "shape_truth"):
        df[col] = None
    df["uptake_truth"] = np.nan
    df["truth_dist_px"] = np.nan
    if df.empty:
        return df
    for skey, idx in df.groupby("study_key").groups.items():
        rec = truth.get(skey)
        if not rec:
            continue
        les = rec.get("lesions") or []
        if not les:
            continue
        centres = np.array([one.get("center_rc", [np.nan, np.nan]) for one in les], float)
        used: set[int] = set()
        for i in idx:
            p = np.array([df.at[i, "ant_row"], df.at[i, "ant_col"]], float)
            d = np.hypot(*(centres - p).T)
            for j in np.argsort(d):
                if int(j) not in used and d[j] <= max_dist_px:
                    used.add(int(j))
                    t = les[int(j)]
                    bone = t.get("bone")
                    df.at[i, "bone_truth"] = bone
                    df.at[i, "region_truth"] = t.get("region") or (region_of(bone) if bone else None)
                    df.at[i, "shape_truth"] = t.get("shape")
                    if t.get("uptake") is not None:
                        # truth is in the image's own counts: quote it per reference pixel too
                        px_area = df.at[i, "area_mm2"] / df.at[i, "area_px"] if "area_px" in df else 1.0
                        df.at[i, "uptake_truth"] = float(t["uptake"]) * REFERENCE_PIXEL_MM**2 / px_area
                    df.at[i, "truth_dist_px"] = float(d[j])
                    break
    return df


def uptake_agreement(table: pd.DataFrame) -> dict[str, float]:
    """How the measured uptake follows the generator's true uptake.

    Returns:
        ``n``, ``spearman`` (rank correlation), ``median_ratio`` (measured / true) over
        lesions with both values; NaNs when there are fewer than 3.
    """
    if table.empty or "uptake_truth" not in table:
        return {"n": 0, "spearman": float("nan"), "median_ratio": float("nan")}
    sub = table[["uptake", "uptake_truth"]].astype(float).dropna()
    sub = sub[sub["uptake_truth"] > 0]
    if len(sub) < 3:
        return {"n": int(len(sub)), "spearman": float("nan"), "median_ratio": float("nan")}
    rho = stats.spearmanr(sub["uptake"], sub["uptake_truth"]).statistic
    return {
        "n": int(len(sub)),
        "spearman": float(rho),
        "median_ratio": float(np.median(sub["uptake"] / sub["uptake_truth"])),
    }


def region_agreement(
    table: pd.DataFrame, predicted: str = "region_atlas", reference: str = "region_truth"
) -> tuple[float, int, pd.DataFrame]:
    """Share of lesions whose predicted region equals the reference region.

    Returns:
        ``(agreement, n, confusion)`` over lesions that have a reference region.
    """
    if table.empty or reference not in table:
        return float("nan"), 0, pd.DataFrame()
    sub = table[table[reference].notna()]
    cm = pd.crosstab(
        pd.Categorical(sub[reference], categories=REGIONS),
        pd.Categorical(sub[predicted].fillna("none"), categories=REGIONS + ("none",)),
        rownames=["truth"],
        colnames=["atlas"],
        dropna=False,
    )
    if sub.empty:
        return float("nan"), 0, cm
    return float((sub[predicted] == sub[reference]).mean()), int(len(sub)), cm
