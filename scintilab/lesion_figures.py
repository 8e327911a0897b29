"""Figures of the lesion table (the paper's Fig. 12) and of one study's lesions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scintilab.anatomy import REGIONS
from scintilab.errors import InputError
from scintilab.prepared import prepare_study
from scintilab.study import Study
from scintilab.view_frame import ViewFrame

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure


from scintilab.atlas_figures import BONE_COLOURS
from scintilab.lesion_features import MET_CLASSES, shape_mask
from scintilab.lesion_stats import class_distributions, study_counts
from scintilab.lesions import study_lesions

# ---------------------------------------------------------------------------------------
# Figures (the paper's Fig. 12)
# ---------------------------------------------------------------------------------------
_PANELS = (("shape", "a  shape"), ("region", "b  body region"), ("uptake", "c  uptake intensity (counts)"))
_CLASS_COLOURS = {"NoMet": "#7f7f7f", "ADMet": "#d62728", "nADMet": "#1f77b4"}


def fig12_static(table: pd.DataFrame, *, classes: Sequence[str] = MET_CLASSES, uptake: str = "uptake") -> Figure:
    """Seaborn version of the paper's Fig. 12: shape, region and uptake per class.

    Bars give the percentage of each class's lesions (classes differ in size).

    Args:
        table: lesion table.
        classes: classes drawn side by side.
        uptake: column binned for panel c.

    Returns:
        A matplotlib Figure with three panels.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    dist = class_distributions(table, classes=classes, uptake=uptake)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [5, 10, 7]})
    palette = {c: _CLASS_COLOURS.get(c, "#333333") for c in classes}
    for ax, (name, title) in zip(axes, _PANELS):
        d = dist[name]
        sns.barplot(data=d, x=name, y="percent", hue="label", hue_order=list(classes), palette=palette, ax=ax)
        ax.set_title(title, loc="left", fontsize=11)
        ax.set_xlabel("")
        ax.set_ylabel("% of the class's lesions" if name == "shape" else "")
        ax.tick_params(axis="x", rotation=40, labelsize=8)
        for lab in ax.get_xticklabels():
            lab.set_ha("right")
        if ax.get_legend() is not None and name != "shape":
            ax.get_legend().remove()
    n = {c: int((table["label"] == c).sum()) if not table.empty else 0 for c in classes}
    fig.suptitle("Metastatic lesions by class: " + ", ".join(f"{c} n={n[c]}" for c in classes), fontsize=11)
    fig.tight_layout()
    return fig


def fig12_plotly(table: pd.DataFrame, *, classes: Sequence[str] = MET_CLASSES, uptake: str = "uptake") -> Any:
    """Interactive plotly version of :func:`fig12_static` (hover shows counts)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    dist = class_distributions(table, classes=classes, uptake=uptake)
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in _PANELS], column_widths=[0.22, 0.45, 0.33])
    for col, (name, _) in enumerate(_PANELS, start=1):
        d = dist[name]
        for cls in classes:
            part = d[d["label"] == cls]
            fig.add_trace(
                go.Bar(
                    x=part[name],
                    y=part["percent"],
                    name=cls,
                    legendgroup=cls,
                    showlegend=(col == 1),
                    marker_color=_CLASS_COLOURS.get(cls),
                    customdata=part["n"],
                    hovertemplate="%{x}<br>%{y:.1f}% (n=%{customdata})<extra>" + cls + "</extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_layout(
        barmode="group", height=420, width=1200, title="Metastatic lesions by class (percent of each class's lesions)"
    )
    fig.update_yaxes(title_text="%", row=1, col=1)
    return fig


def per_study_figure(table: pd.DataFrame, *, classes: Sequence[str] = MET_CLASSES) -> Figure:
    """Lesions per study, one box+strip per class."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sc = study_counts(table)
    sc = sc[sc["label"].isin(classes)]
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    if not sc.empty:
        palette = {c: _CLASS_COLOURS.get(c, "#333333") for c in classes}
        sns.boxplot(
            data=sc,
            x="label",
            y="n_lesions",
            hue="label",
            order=list(classes),
            palette=palette,
            ax=ax,
            fliersize=0,
            legend=False,
        )
        sns.stripplot(data=sc, x="label", y="n_lesions", order=list(classes), color="k", size=3, ax=ax, jitter=0.2)
    ax.set_xlabel("")
    ax.set_ylabel("lesions per study")
    fig.tight_layout()
    return fig


def lesion_figure(
    study: Study,
    rows: pd.DataFrame | None = None,
    *,
    view: str = "ANT",
    show_atlas: bool = True,
    columns: Sequence[str] = ("shape", "region", "area_mm2", "uptake", "ap_ratio", "contrast"),
) -> Figure:
    """One study's lesions outlined on a view, numbered, with their features beside.

    Args:
        study: the study.
        rows: its rows of the lesion table (computed with :func:`study_lesions` if None).
        view: ``ANT`` or ``POST`` (as stored; POST is not flipped).
        show_atlas: tint the body regions of the fitted atlas underneath.
        columns: features listed in the side table.

    Returns:
        A matplotlib Figure titled with the pseudonymous study key and class only.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from skimage.measure import find_contours

    view = view.upper()
    img = study.view(view)
    if img is None:
        raise ValueError(f"study {study.study_key} has no {view} view")
    try:
        prep = prepare_study(study)
    except InputError:
        prep = None  # no body found: show the image alone, uncropped
    if rows is None:
        rows = pd.DataFrame(study_lesions(study, prepared=prep)[0])
    rows = rows[rows["study_key"] == study.study_key] if len(rows) and "study_key" in rows else rows.iloc[0:0]
    h, w = img.shape
    fig, (ax, axt) = plt.subplots(1, 2, figsize=(10, 8.5), gridspec_kw={"width_ratios": [1.0, 1.5]})
    vmax = float(np.percentile(img, 99.7)) or 1.0
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=vmax, interpolation="nearest")
    if prep is not None:
        # the atlas the table used (fitted once in the frame), carried onto the stored view
        atl = prep.atlas[view]
        body = prep.frame.mask_from_frame(atl.body, view)
        regions = np.rint(prep.frame.from_frame(atl.region_map().astype(np.float32), view)).astype(int)
        body_rows = np.flatnonzero(body.any(axis=1))
        pad = max(2, int(0.02 * h))
        ax.set_ylim(min(body_rows[-1] + pad, h - 0.5), max(body_rows[0] - pad, -0.5))  # crop to the body
        if show_atlas:
            ax.imshow(
                np.ma.masked_equal(regions, 0) - 1,
                cmap=ListedColormap(BONE_COLOURS[: len(REGIONS)]),
                vmin=0,
                vmax=len(REGIONS) - 1,
                alpha=0.22,
                interpolation="nearest",
            )
    cells = []
    for _, r in rows.iterrows():
        # "3;7" from a fresh table, 3 or 3.0 once a CSV round trip has parsed it
        idx = [int(float(i)) for i in str(r.get("shape_indices", "")).split(";") if i not in ("", "nan")]
        mine = [study.shapes[i] for i in idx if i < len(study.shapes) and study.shapes[i].view == view]
        if mine:
            mask = shape_mask(mine[0], img.shape)
            style = "-"
        elif idx and idx[0] < len(study.shapes):
            src = study.shapes[idx[0]]
            frame = ViewFrame(shape=img.shape, shift=(float(r.get("shift_rows", 0.0)), float(r.get("shift_cols", 0.0))))
            mask = frame.map_mask(shape_mask(src, img.shape), src.view or "ANT", view)
            style = "--"  # carried over from the other view
        else:
            continue
        for cont in find_contours(np.pad(mask, 1).astype(float), 0.5):
            ax.plot(cont[:, 1] - 1, cont[:, 0] - 1, style, color="#d62728", lw=0.9)
        rr, cc = np.nonzero(mask)
        if rr.size:
            ax.text(
                cc.max() + 2,
                rr.min(),
                str(int(r["lesion_index"]) + 1),
                color="#d62728",
                fontsize=7,
                va="top",
                ha="left",
            )
        cells.append([str(int(r["lesion_index"]) + 1)] + [_fmt(r.get(c)) for c in columns])
    ax.set_title(f"{study.study_key} ({study.label or 'unlabelled'}), {view}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    axt.axis("off")
    if cells:
        tab = axt.table(cellText=cells, colLabels=["#"] + list(columns), loc="upper center", cellLoc="center")
        tab.auto_set_font_size(False)
        tab.set_fontsize(7)
        tab.scale(1.0, 1.2)
    else:
        axt.text(0.5, 0.9, "no lesions annotated", ha="center", fontsize=9)
    fig.tight_layout()
    return fig


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
