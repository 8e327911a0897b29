"""ADMet-vs-nADMet statistics of the lesion table: per-class distributions (the paper's Fig. 12)
and tests of difference (chi-square with Cramer's V, Mann-Whitney U)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from scintilab.anatomy import REGIONS, UPTAKE_BINS
from scintilab.study import SHAPE_CLASSES

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass


from scintilab.lesion_features import CONTINUOUS_FEATURES, MET_CLASSES, UPTAKE_BIN_LABELS


# ---------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------
def uptake_bins(values: Sequence[float] | pd.Series) -> pd.Categorical:
    """Bin uptake values with the paper's bins (:data:`~scintilab.anatomy.UPTAKE_BINS`)."""
    return pd.cut(pd.Series(values, dtype=float), bins=list(UPTAKE_BINS), right=False, labels=list(UPTAKE_BIN_LABELS))


def study_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Lesions per study (zero-lesion studies included when the table knows them)."""
    studies = table.attrs.get("studies")
    if studies:
        return pd.DataFrame(list(studies), columns=["study_key", "patient_key", "label", "n_lesions"])
    if table.empty:
        return pd.DataFrame(columns=["study_key", "patient_key", "label", "n_lesions"])
    g = table.groupby(["study_key", "patient_key", "label"], dropna=False).size()
    return g.rename("n_lesions").reset_index()


def class_distributions(
    table: pd.DataFrame, *, classes: Sequence[str] = MET_CLASSES, uptake: str = "uptake"
) -> dict[str, pd.DataFrame]:
    """Per-class distributions: the data behind the paper's Fig. 12 and lesion counts.

    Args:
        table: lesion table.
        classes: classes to describe.
        uptake: column binned for the uptake histogram.

    Returns:
        ``{"shape", "region", "uptake"}``: long tables (``label``, category, ``n``,
        ``percent`` within class), and ``"per_study"``: lesion-count summary per class.
    """
    out: dict[str, pd.DataFrame] = {}
    sub = table[table["label"].isin(classes)] if not table.empty else table
    cats = {"shape": SHAPE_CLASSES, "region": REGIONS, "uptake": UPTAKE_BIN_LABELS}
    for name, levels in cats.items():
        recs = []
        for cls in classes:
            part = sub[sub["label"] == cls] if not sub.empty else sub
            col = (
                uptake_bins(part[uptake])
                if (name == "uptake" and not part.empty)
                else (part[name] if not part.empty else pd.Series([], dtype=object))
            )
            counts = pd.Series(col).value_counts()
            total = int(counts.sum())
            for lev in levels:
                n = int(counts.get(lev, 0))
                recs.append({"label": cls, name: lev, "n": n, "percent": 100.0 * n / total if total else 0.0})
        out[name] = pd.DataFrame(recs)
    sc = study_counts(table)
    sc = sc[sc["label"].isin(classes)]
    out["per_study"] = (
        sc.groupby("label")["n_lesions"]
        .agg(studies="count", mean="mean", median="median", min="min", max="max")
        .reindex(list(classes))
        .reset_index()
    )
    return out


def cramers_v(table: np.ndarray | pd.DataFrame) -> tuple[float, float, float, int]:
    """Chi-square test of independence with Cramer's V.

    Empty rows/columns are dropped first (they carry no information and make expected
    frequencies zero).

    Args:
        table: contingency table (groups x categories).

    Returns:
        ``(chi2, p, V, dof)``; NaNs when the table has fewer than 2 non-empty rows or
        columns.
    """
    t = np.asarray(table, dtype=float)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0] if t.size else t
    if t.ndim != 2 or min(t.shape) < 2:
        return float("nan"), float("nan"), float("nan"), 0
    chi2, p, dof, _ = stats.chi2_contingency(t, correction=False)
    n = t.sum()
    v = math.sqrt(chi2 / (n * (min(t.shape) - 1)))
    return float(chi2), float(p), float(v), int(dof)


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Two-sided Mann-Whitney U test with the rank-biserial correlation.

    Args:
        a: values of the first group (NaNs dropped).
        b: values of the second group.

    Returns:
        ``(U of a, p, r)`` with ``r = 2 U / (n_a n_b) - 1``: +1 when every ``a`` exceeds
        every ``b``, -1 the other way round, 0 for no shift.
    """
    x = np.asarray(a, float)
    y = np.asarray(b, float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size == 0 or y.size == 0:
        return float("nan"), float("nan"), float("nan")
    res = stats.mannwhitneyu(x, y, alternative="two-sided")
    r = 2.0 * float(res.statistic) / (x.size * y.size) - 1.0
    return float(res.statistic), float(res.pvalue), r


def compare_classes(
    table: pd.DataFrame,
    *,
    classes: tuple[str, str] = MET_CLASSES,
    continuous: Sequence[str] = CONTINUOUS_FEATURES,
    uptake: str = "uptake",
) -> pd.DataFrame:
    """Tests of difference between two classes (ADMet vs nADMet by default).

    Categories (shape, region, uptake bin) by chi-square with Cramer's V; continuous
    lesion features and lesions per study by Mann-Whitney U with the rank-biserial
    correlation (positive: larger in the first class). Lesions of one patient are not
    independent, so read p-values as descriptive.

    Args:
        table: lesion table.
        classes: the two classes compared.
        continuous: continuous columns tested.
        uptake: column binned for the uptake-bin test.

    Returns:
        One row per variable: ``variable, test, statistic, p, effect, effect_size,
        n_<class a>, n_<class b>, median_<a>, median_<b>``.
    """
    a, b = classes
    rows: list[dict[str, Any]] = []
    sub = table[table["label"].isin(classes)] if not table.empty else table
    for var in ("shape", "region", "uptake_bin"):
        if sub.empty:
            break
        col = uptake_bins(sub[uptake]).astype(object) if var == "uptake_bin" else sub[var]
        ct = pd.crosstab(sub["label"], pd.Series(col.to_numpy(), index=sub.index))
        ct = ct.reindex(list(classes), fill_value=0)
        chi2, p, v, dof = cramers_v(ct.to_numpy())
        rows.append(
            {
                "variable": var,
                "test": f"chi-square (dof {dof})",
                "statistic": chi2,
                "p": p,
                "effect": "Cramer's V",
                "effect_size": v,
                f"n_{a}": int(ct.loc[a].sum()),
                f"n_{b}": int(ct.loc[b].sum()),
                f"median_{a}": np.nan,
                f"median_{b}": np.nan,
            }
        )
    sc = study_counts(table)
    pairs = [("lesions_per_study", sc[sc["label"] == a]["n_lesions"], sc[sc["label"] == b]["n_lesions"])]
    for var in continuous:
        if not sub.empty and var in sub:
            pairs.append((var, sub[sub["label"] == a][var], sub[sub["label"] == b][var]))
    for var, xa, xb in pairs:
        u, p, r = mann_whitney(xa, xb)
        xa_f = pd.to_numeric(xa, errors="coerce").dropna()
        xb_f = pd.to_numeric(xb, errors="coerce").dropna()
        rows.append(
            {
                "variable": var,
                "test": "Mann-Whitney U",
                "statistic": u,
                "p": p,
                "effect": "rank-biserial r",
                "effect_size": r,
                f"n_{a}": int(xa_f.size),
                f"n_{b}": int(xb_f.size),
                f"median_{a}": float(xa_f.median()) if xa_f.size else np.nan,
                f"median_{b}": float(xb_f.median()) if xb_f.size else np.nan,
            }
        )
    return pd.DataFrame(rows)


def describe_differences(
    tests: pd.DataFrame,
    table: pd.DataFrame,
    *,
    classes: tuple[str, str] = MET_CLASSES,
    top: int = 3,
    alpha: float = 0.05,
    uptake: str = "uptake",
) -> list[str]:
    """Plain-words lines for the strongest class differences (smallest p first).

    Args:
        tests: :func:`compare_classes` output.
        table: the lesion table it came from.
        classes: the two classes compared.
        top: how many variables to describe.
        alpha: significance level quoted.
        uptake: column binned for the uptake-bin variable.

    Returns:
        One sentence per variable, e.g. ``"shape: punctate is 34% of ADMet lesions vs 16%
        of nADMet (chi-square p = 0.01, Cramer's V = 0.31; significant at 0.05)"``.
    """
    a, b = classes
    out: list[str] = []
    if tests.empty:
        return out
    sub = table[table["label"].isin(classes)] if not table.empty else table
    for _, t in tests.dropna(subset=["p"]).sort_values("p").head(top).iterrows():
        verdict = f"significant at {alpha:g}" if t["p"] < alpha else f"not significant at {alpha:g}"
        var = t["variable"]
        if t["test"].startswith("chi-square"):
            col = uptake_bins(sub[uptake]).astype(object) if var == "uptake_bin" else sub[var]
            share = pd.crosstab(pd.Series(col.to_numpy(), index=sub.index), sub["label"], normalize="columns")
            share = share.reindex(columns=list(classes), fill_value=0.0)
            diff = (share[a] - share[b]).abs()
            cat = diff.idxmax()
            out.append(
                f"{var}: {cat} is {100 * share.loc[cat, a]:.0f}% of {a} lesions vs "
                f"{100 * share.loc[cat, b]:.0f}% of {b} (chi-square p = {t['p']:.2g}, "
                f"Cramer's V = {t['effect_size']:.2f}; {verdict})"
            )
        else:
            out.append(
                f"{var}: median {t[f'median_{a}']:.3g} ({a}, n={int(t[f'n_{a}'])}) vs "
                f"{t[f'median_{b}']:.3g} ({b}, n={int(t[f'n_{b}'])}) (Mann-Whitney p = {t['p']:.2g}, "
                f"rank-biserial r = {t['effect_size']:+.2f}; {verdict})"
            )
    return out
