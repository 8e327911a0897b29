"""Tables and figures of a quantified cohort: BSI by class and over time, hot spots by region,
the parameters in use, the FROC and Bland-Altman plots of a validation."""

from __future__ import annotations

from typing import Any

import pandas as pd

from scintilab import quant_params as qp
from scintilab.anatomy import BONE_MASS_FRACTION, BONES
from scintilab.bsi import bland_altman


def params_table(params: qp.QuantParams | None = None) -> pd.DataFrame:
    """The parameters in use with their defaults and provenance: ``name, value, default, source,
    fitted_on, what`` (None: the active ones)."""
    params = qp.active() if params is None else params
    flat = {f"{g}.{n}": v for g, values in params.to_dict().items() for n, v in values.items()}
    rows = [
        {"name": r["name"], "value": flat[r["name"]], **{k: v for k, v in r.items() if k != "name"}}
        for r in qp.provenance()
    ]
    return pd.DataFrame(rows, columns=["name", "value", "default", "source", "fitted_on", "what"])


def bsi_by_class(studies: pd.DataFrame) -> pd.DataFrame:
    """BSI summary (count, median, quartiles, max) per label."""
    if studies.empty:
        return pd.DataFrame()
    g = studies.groupby("label")["bsi"]
    return pd.DataFrame(
        {"n": g.size(), "median": g.median(), "q1": g.quantile(0.25), "q3": g.quantile(0.75), "max": g.max()}
    ).round(3)


def hotspots_by_region(hotspots: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """Hot-spot counts per region: all and called metastatic.

    Args:
        hotspots: a ``hotspots.csv`` table.
        threshold: probability at which a hot spot counts; None: the table's
            ``metastatic`` column (the call at each classifier's own operating threshold).

    Raises:
        ValueError: no ``threshold`` and no ``metastatic`` column.
    """
    if hotspots.empty:
        return pd.DataFrame(columns=["all", "metastatic"])
    if threshold is None and "metastatic" not in hotspots.columns:
        raise ValueError("hotspots table has no 'metastatic' column: give a threshold")
    called = (hotspots["p_metastatic"] >= threshold) if threshold is not None else hotspots["metastatic"].astype(bool)
    g = called.groupby(hotspots["region"])
    out = pd.DataFrame({"all": g.size(), "metastatic": g.sum().astype(int)})
    return out.sort_values("all", ascending=False)


def mass_shares() -> pd.DataFrame:
    """The skeletal-mass share of each bone group (percent), as used for BSI."""
    return pd.DataFrame({"bone": list(BONES), "share_pct": [round(100 * BONE_MASS_FRACTION[b], 2) for b in BONES]})


def bsi_over_time(studies: pd.DataFrame) -> pd.DataFrame:
    """Per patient, days since the first study and BSI, in date order (no calendar dates)."""
    if studies.empty:
        return pd.DataFrame(columns=["patient_key", "study_key", "days", "bsi", "label"])
    df = studies[["patient_key", "study_key", "study_date", "bsi", "label"]].copy()
    df["date"] = pd.to_datetime(df["study_date"], errors="coerce")
    df["days"] = (df["date"] - df.groupby("patient_key")["date"].transform("min")).dt.days
    return df.sort_values(["patient_key", "days"])[["patient_key", "study_key", "days", "bsi", "label"]]


def plot_bsi_by_class(studies: pd.DataFrame) -> Any:
    """Box and points of BSI per label (matplotlib Figure)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5, 3.2))
    if not studies.empty:
        order = [c for c in ("NoMet", "ADMet", "nADMet") if c in set(studies["label"])] or None
        sns.boxplot(data=studies, x="label", y="bsi", order=order, ax=ax, color="0.85", fliersize=0)
        sns.stripplot(data=studies, x="label", y="bsi", order=order, ax=ax, size=3, color="C3")
    ax.set_ylabel("BSI (% of skeletal mass)")
    ax.set_title("Bone Scan Index per class", fontsize=9)
    fig.tight_layout()
    return fig


def plot_froc(froc: pd.DataFrame, max_fp: float = 1.0) -> Any:
    """FROC curve: sensitivity against false-positive hot spots per scan."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(froc["fp_per_scan"], froc["sensitivity_bright"], "o-", ms=2, label="lesions >= 2x bone")
    ax.plot(froc["fp_per_scan"], froc["sensitivity_all"], "s-", ms=2, alpha=0.6, label="all lesions")
    ax.axvline(max_fp, color="0.5", ls=":")
    ax.axhline(0.9, color="0.5", ls=":")
    ax.set_xlabel("false-positive hot spots per scan")
    ax.set_ylabel("lesion sensitivity")
    ax.set_xlim(0, max(3.0, max_fp * 1.5))
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("FROC against the generator's lesions", fontsize=9)
    fig.tight_layout()
    return fig


def plot_bland_altman(pairs: pd.DataFrame) -> Any:
    """Measured vs true BSI, and the Bland-Altman plot of their difference."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(8, 3.2))
    if len(pairs) >= 3:
        ba = bland_altman(pairs["bsi"], pairs["true_bsi"])
        ax[0].scatter(pairs["true_bsi"], pairs["bsi"], s=8)
        top = float(max(pairs["true_bsi"].max(), pairs["bsi"].max()))
        ax[0].plot([0, top], [0, top], color="0.5", ls=":")
        ax[0].set_xlabel("true BSI (%)")
        ax[0].set_ylabel("measured BSI (%)")
        ax[0].set_title(f"r = {ba['pearson_r']:.3f}", fontsize=9)
        mean = (pairs["bsi"] + pairs["true_bsi"]) / 2
        ax[1].scatter(mean, pairs["bsi"] - pairs["true_bsi"], s=8)
        for y, ls in ((ba["bias"], "-"), (ba["loa_low"], "--"), (ba["loa_high"], "--")):
            ax[1].axhline(y, color="C3", ls=ls, lw=0.8)
        ax[1].set_xlabel("mean of measured and true BSI (%)")
        ax[1].set_ylabel("measured - true")
        ax[1].set_title(f"bias {ba['bias']:+.2f}, limits {ba['loa_low']:+.2f} .. {ba['loa_high']:+.2f}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_bsi_over_time(studies: pd.DataFrame) -> Any:
    """BSI per patient over days since the first study (one line per patient)."""
    import matplotlib.pyplot as plt

    df = bsi_over_time(studies)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    colours = {"NoMet": "C0", "ADMet": "C3", "nADMet": "C1"}
    for _, g in df.groupby("patient_key"):
        if len(g) > 1:
            ax.plot(g["days"], g["bsi"], "o-", ms=3, lw=0.8, color=colours.get(str(g["label"].iloc[0]), "0.4"))
    ax.set_xlabel("days since the first study")
    ax.set_ylabel("BSI (%)")
    ax.set_title("BSI over time per patient (blue NoMet, red ADMet, orange nADMet)", fontsize=8)
    fig.tight_layout()
    return fig
