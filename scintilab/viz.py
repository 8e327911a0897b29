"""Static figures of bone scans and cohorts (matplotlib / seaborn).

Scans are shown as nuclear-medicine readers look at them: inverted grey scale (uptake
dark on white), windowed on the body's counts so the bladder and injection site do not
wash out the skeleton. Titles carry pseudonymous keys only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from scintilab.study import CLASSES, Shape, Study

#: Outline colours: metastases red, benign findings blue.
LESION_COLOR = "#d62728"
BENIGN_COLOR = "#1f77b4"
CLASS_COLORS = {"NoMet": "#4c72b0", "ADMet": "#dd8452", "nADMet": "#55a868"}


def _figure(*args: Any, **kw: Any):
    import matplotlib.pyplot as plt  # lazy: importing scintilab must not pick a GUI backend

    return plt.subplots(*args, **kw)


def window(image: np.ndarray, percentile: float = 99.0) -> float:
    """Display ceiling: a high percentile of the counts inside the body (not the hottest pixel)."""
    img = np.asarray(image, dtype=np.float64)
    body = img[img > 2.0]  # pixels inside the body; the background is well under one count
    if body.size == 0:
        return float(img.max() or 1.0)
    return float(np.percentile(body, percentile)) or 1.0


def body_rows(image: np.ndarray, margin: int = 10) -> tuple[int, int]:
    """First and last row holding the body (rows with more than a few counts)."""
    prof = np.asarray(image, dtype=np.float64).sum(axis=1)
    rows = np.flatnonzero(prof > 0.1 * np.median(prof[prof > 0])) if np.any(prof > 0) else np.array([0])
    lo, hi = int(rows.min()), int(rows.max())
    return max(lo - margin, 0), min(hi + margin, image.shape[0] - 1)


def draw_shapes(ax: Any, shapes: Sequence[Shape], *, lw: float = 0.9, legend: bool = False) -> None:
    """Outline LabelMe shapes on an axis: metastases red, benign findings blue."""
    seen: set[str] = set()
    for s in shapes:
        pts = np.asarray(s.points, dtype=float).reshape(-1, 2)
        benign = s.label.startswith("benign")
        color = BENIGN_COLOR if benign else LESION_COLOR
        name = "benign" if benign else "metastasis"
        if s.shape_type == "rectangle" and len(pts) == 2:
            (x0, y0), (x1, y1) = pts
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        if s.shape_type == "point" or len(pts) < 2:
            ax.plot(pts[:, 0], pts[:, 1], "o", ms=3, color=color)
            continue
        closed = np.vstack([pts, pts[:1]])
        ax.plot(closed[:, 0], closed[:, 1], "-", lw=lw, color=color, label=None if name in seen else name)
        seen.add(name)
    if legend and seen:
        ax.legend(loc="lower right", fontsize=7, frameon=True)


def show_views(
    study: Study,
    shapes: bool = True,
    *,
    percentile: float = 99.0,
    crop: bool = True,
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 9.0),
):
    """Anterior | posterior side by side (as stored), with annotation outlines on top.

    Args:
        study: a :class:`Study` (its ``shapes`` are drawn on their own view).
        shapes: draw the annotations.
        percentile: display window (percentile of body counts shown as full black).
        crop: crop to the rows holding the body.
        title: figure title (default: the pseudonymous study key and label).
        figsize: figure size in inches.

    Returns:
        The matplotlib Figure.
    """
    fig, axes = _figure(1, 2, figsize=figsize)
    lo, hi = 0, study.shape_hw[0] - 1
    if crop:
        spans = [body_rows(v) for v in (study.anterior, study.posterior) if v is not None]
        lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    for ax, view in zip(axes, ("ANT", "POST")):
        img = study.view(view)
        ax.set_xticks([])
        ax.set_yticks([])
        if img is None:
            ax.text(0.5, 0.5, f"{view}\nnot recorded", ha="center", va="center", transform=ax.transAxes)
            ax.set_facecolor("#eeeeee")
            continue
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=window(img, percentile), interpolation="nearest", aspect="equal")
        if shapes:
            draw_shapes(ax, study.shapes_for(view), legend=view == "ANT")
        ax.set_ylim(hi, lo)
        ax.set_title(f"{view} ({int(img.sum()) / 1e6:.2f} M counts)", fontsize=9)
    fig.suptitle(title if title is not None else f"{study.study_key}  {study.label or 'unlabelled'}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def show_findings(
    items: Sequence[tuple[Study, Shape]],
    *,
    ncols: int = 6,
    half: int = 28,
    percentile: float = 99.5,
    figsize_per: float = 1.9,
):
    """A gallery of cropped findings (e.g. benign confounders), each outlined on its view.

    Args:
        items: (study, shape) pairs; each crop is centred on the shape.
        ncols: columns of the grid.
        half: half-size of each crop in pixels.
        percentile: display window inside the crop's view.
        figsize_per: inches per panel.

    Returns:
        The matplotlib Figure.
    """
    n = max(len(items), 1)
    nrows = int(np.ceil(n / ncols))
    fig, axes = _figure(nrows, ncols, figsize=(figsize_per * ncols, figsize_per * 1.35 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (study, shape) in zip(axes.ravel(), items):
        img = study.view(shape.view)
        if img is None:
            continue
        pts = np.asarray(shape.points, dtype=float).reshape(-1, 2)
        cx, cy = pts.mean(axis=0)
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=window(img, percentile), interpolation="nearest")
        draw_shapes(ax, [shape], lw=0.8)
        ax.set_xlim(cx - half, cx + half)
        ax.set_ylim(cy + 1.4 * half, cy - 1.4 * half)
        parts = shape.label.split(":")
        ax.set_title(f"{parts[1] if len(parts) > 1 else shape.label}\n{shape.view} {study.label}", fontsize=7)
    fig.tight_layout()
    return fig


def show_variety(
    studies: Sequence[Study],
    captions: dict[str, Sequence[str]],
    *,
    ncols: int = 8,
    percentile: float = 99.5,
    height_mm: float = 2400.0,
):
    """Anterior views side by side at their true size in millimetres, whatever their matrix.

    Args:
        studies: the studies to show (only their anterior views are drawn).
        captions: study key -> words under the class (e.g. the variety families).
        ncols: panels per row.
        percentile: display window of each view.
        height_mm: the vertical extent every panel shares.

    Returns:
        The matplotlib Figure.
    """
    shown = [s for s in studies if s.anterior is not None]
    n = max(len(shown), 1)
    nrows = int(np.ceil(n / ncols))
    fig, axes = _figure(nrows, ncols, figsize=(1.6 * ncols, 4.4 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, study in zip(axes.ravel(), shown):
        img = study.anterior
        sr, sc = study.pixel_spacing
        h, w = img.shape
        ax.imshow(
            img,
            cmap="gray_r",
            vmin=0,
            vmax=window(img, percentile),
            extent=(0, w * sc, h * sr, 0),
            interpolation="nearest",
        )
        ax.set_xlim(0, max(w * sc, 600.0))
        ax.set_ylim(height_mm, 0)
        words = list(captions.get(study.study_key, []))
        lines = [f"{study.label or ''} {h}x{w} {0.5 * (sr + sc):.2f} mm"]
        for k in range(0, len(words), 2):
            lines.append(", ".join(words[k : k + 2]))
        ax.set_title("\n".join(lines[:4]), fontsize=6.5)
    fig.tight_layout()
    return fig


def plot_class_counts(manifest: pd.DataFrame):
    """Images and patients per class (the paper's 614 / 237 / 160 images, by analogy).

    Args:
        manifest: a manifest with ``label``, ``views`` (e.g. ``ANT+POST``) and ``patient_key``.

    Returns:
        The matplotlib Figure.
    """
    df = manifest.copy()
    df["n_views"] = df["views"].fillna("").astype(str).map(lambda v: len([x for x in v.split("+") if x]))
    images = df.groupby("label")["n_views"].sum().reindex(CLASSES).fillna(0)
    patients = df.groupby("label")["patient_key"].nunique().reindex(CLASSES).fillna(0)
    fig, axes = _figure(1, 2, figsize=(8, 3.2))
    for ax, series, what in zip(axes, (images, patients), ("images (views)", "patients")):
        bars = ax.bar(series.index, series.values, color=[CLASS_COLORS[c] for c in series.index])
        total = float(series.sum()) or 1.0
        for b, v in zip(bars, series.values):
            ax.text(
                b.get_x() + b.get_width() / 2,
                v,
                f"{int(v)}\n{100 * v / total:.1f}%",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_title(f"{what} per class (n = {int(total)})", fontsize=10)
        ax.set_ylim(0, series.max() * 1.3 + 1)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def plot_demographics(demographics: pd.DataFrame, labels: pd.DataFrame | None = None):
    """Sex and age distribution of the patients (like the paper's Fig. 5).

    Args:
        demographics: ``patient_id, sex, age`` (raw ids are only used to join, never shown).
        labels: optional ``patient_id, label`` table to split the ages by class.

    Returns:
        The matplotlib Figure.
    """
    demo = demographics.drop_duplicates("patient_id").copy()
    fig, axes = _figure(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [1, 2.2]})
    sexes = demo["sex"].map({"M": "male", "F": "female"}).fillna("other").value_counts()
    axes[0].pie(
        sexes.values,
        labels=[f"{k}\n{v} ({100 * v / sexes.sum():.0f}%)" for k, v in sexes.items()],
        colors=["#4c72b0", "#c44e52", "#999999"][: len(sexes)],
        startangle=90,
        wedgeprops={"width": 0.45},
    )
    axes[0].set_title(f"sex (n = {len(demo)})", fontsize=10)
    bins = np.arange(20, 95, 5)
    ax = axes[1]
    if labels is not None:
        lab = labels.drop_duplicates("patient_id")[["patient_id", "label"]]
        demo = demo.merge(lab, on="patient_id", how="left")
        data = [demo.loc[demo["label"] == c, "age"].to_numpy() for c in CLASSES]
        ax.hist(data, bins=bins, stacked=True, label=list(CLASSES), color=[CLASS_COLORS[c] for c in CLASSES])
    else:
        data = [demo.loc[demo["sex"] == s, "age"].to_numpy() for s in ("M", "F")]
        ax.hist(data, bins=bins, stacked=True, label=["male", "female"], color=["#4c72b0", "#c44e52"])
    ax.set_xlabel("age (years)")
    ax.set_ylabel("patients")
    ax.set_title(f"age: median {demo['age'].median():.0f}, range {demo['age'].min()}-{demo['age'].max()}", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def example_studies(studies: Sequence[Study], per_class: int = 1, *, min_lesions: int = 2) -> list[Study]:
    """Pick example studies of each class with both views (metastatic ones with lesions)."""
    out: list[Study] = []
    for c in CLASSES:
        got = 0
        for st in studies:
            if st.label != c or st.anterior is None or st.posterior is None:
                continue
            n_les = sum(1 for s in st.shapes if s.label.startswith("lesion") and s.view == "ANT")
            if c != "NoMet" and n_les < min_lesions:
                continue
            out.append(st)
            got += 1
            if got >= per_class:
                break
    return out


def benign_findings(
    studies: Sequence[Study], *, max_items: int = 18, view: str | None = None, kinds: Sequence[str] | None = None
) -> list[tuple[Study, Shape]]:
    """(study, shape) pairs of benign findings, one of each kind first, then the rest."""
    pairs: list[tuple[Study, Shape]] = []
    for st in studies:
        for s in st.shapes:
            if not s.label.startswith("benign"):
                continue
            if view is not None and s.view != view:
                continue
            kind = s.label.split(":")[1] if ":" in s.label else s.label
            if kinds is not None and kind not in kinds:
                continue
            pairs.append((st, s))
    # round-robin over kinds so the gallery shows the variety
    by_kind: dict[str, list[tuple[Study, Shape]]] = {}
    for p in pairs:
        by_kind.setdefault(p[1].label.split(":")[1] if ":" in p[1].label else p[1].label, []).append(p)
    out: list[tuple[Study, Shape]] = []
    while len(out) < max_items and any(by_kind.values()):
        for k in sorted(by_kind):
            if by_kind[k] and len(out) < max_items:
                out.append(by_kind[k].pop(0))
    return out


def annotation_table(studies: Sequence[Study], view: str = "ANT") -> pd.DataFrame:
    """One row per annotated finding on ``view``: study_key, label (class), kind, shape, region.

    Labels of the form ``lesion:<shape>:<region>`` / ``benign:<kind>:<region>`` are split;
    anything else is kept whole in ``shape``.
    """
    rows = []
    for st in studies:
        for s in st.shapes_for(view):
            parts = s.label.split(":")
            kind = parts[0] if len(parts) == 3 else "other"
            rows.append(
                {
                    "study_key": st.study_key,
                    "label": st.label,
                    "kind": kind,
                    "shape": parts[1] if len(parts) == 3 else s.label,
                    "region": parts[2] if len(parts) == 3 else "",
                }
            )
    return pd.DataFrame(rows, columns=["study_key", "label", "kind", "shape", "region"])


def plot_lesion_mix(table: pd.DataFrame):
    """Lesions per study, shape mix and region mix of the metastatic classes (from annotations).

    Args:
        table: :func:`annotation_table` output.

    Returns:
        The matplotlib Figure.
    """
    les = table[table["kind"] == "lesion"]
    classes = [c for c in CLASSES if c != "NoMet"]
    fig, axes = _figure(1, 3, figsize=(12, 3.4), gridspec_kw={"width_ratios": [1, 1.4, 2]})
    per_study = les.groupby(["label", "study_key"]).size()
    data = [per_study.get(c, pd.Series(dtype=float)).to_numpy() for c in classes]
    axes[0].boxplot(data, tick_labels=classes)
    axes[0].set_title("lesions per study", fontsize=10)
    for ax, col in zip(axes[1:], ("shape", "region")):
        mix = pd.crosstab(les[col], les["label"], normalize="columns").reindex(columns=classes).fillna(0)
        mix.plot.barh(ax=ax, color=[CLASS_COLORS[c] for c in classes], width=0.8)
        ax.set_title(f"{col} mix (share of each class's lesions)", fontsize=10)
        ax.set_ylabel("")
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def cohort_summary(manifest: pd.DataFrame) -> str:
    """A short, deterministic text summary of a manifest (classes, views, annotated lesions)."""
    views = manifest["views"].fillna("").astype(str).map(lambda v: len([x for x in v.split("+") if x]))
    lines = [f"studies: {len(manifest)}, patients: {manifest['patient_key'].nunique()}, images: {int(views.sum())}"]
    for c in CLASSES:
        sel = manifest["label"] == c
        lines.append(
            f"  {c:<7} studies {int(sel.sum()):4d}  images {int(views[sel].sum()):4d}  "
            f"annotated lesions {int(manifest.loc[sel, 'lesion_count'].fillna(0).sum()):5d}"
        )
    one_view = int((views == 1).sum())
    lines.append(f"studies with one view only: {one_view}")
    return "\n".join(lines)
