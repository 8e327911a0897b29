"""The per-study page of a quantification: the views with their hot spots, the BSI, the
follow-up, printable as one page per view."""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scintilab import quant_params as qp
from scintilab.anatomy import BONES
from scintilab.followup import Comparison
from scintilab.hotspots import Detection
from scintilab.outputs import write_text
from scintilab.pages import figure_base64, html_page

if TYPE_CHECKING:
    from scintilab.quantify import StudyQuant

# the page's pictures: 90 dpi, cropped to what is drawn
_png = functools.partial(figure_base64, dpi=90, tight=True)


def _crop_rows(det: Detection) -> tuple[int, int]:
    """Rows holding the body (whole-body matrices are mostly empty below the feet)."""
    body = np.zeros(det.shape, bool)
    for a in det.atlas.values():
        body |= a.body
    rows = np.flatnonzero(body.any(axis=1))
    if rows.size == 0:
        return 0, det.shape[0]
    pad = 10
    return max(int(rows[0]) - pad, 0), min(int(rows[-1]) + pad, det.shape[0])


def draw_views(
    det: Detection,
    *,
    ax: Any = None,
    hotspots: bool = True,
    regions: bool = False,
    highlight: Sequence[Any] = (),
    threshold: float | None = None,
    title_prefix: str = "",
    views: Sequence[str] | None = None,
) -> Any:
    """Both views side by side (posterior flipped into the anterior frame), hot spots marked.

    Hot spots are circles coloured by probability of metastasis (blue 0 ... red 1); the
    ones called metastatic (at ``threshold``, default the detection's own operating
    threshold) are drawn thicker; ``highlight`` (e.g. new lesions) get a yellow square.
    ``regions`` overlays the atlas bone groups.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    threshold = det.call_threshold(threshold)
    views = list(det.images) if views is None else [v for v in views if v in det.images]
    r0, r1 = _crop_rows(det)
    if ax is None:
        h = (r1 - r0) / max(det.shape[1], 1)
        fig, axes = plt.subplots(1, len(views), figsize=(2.6 * len(views) + 0.6, min(2.6 * h, 11)))
        axes = np.atleast_1d(axes)
    else:
        axes = np.atleast_1d(ax)
        fig = axes[0].figure
    cmap = matplotlib.colormaps["coolwarm"]
    hl = {id(x) for x in highlight}
    for a, v in zip(axes, views):
        img = det.images[v][r0:r1]
        vmax = float(np.percentile(img[img > 0], 99.5)) if (img > 0).any() else 1.0
        a.imshow(img, cmap="gray_r", vmin=0, vmax=vmax, interpolation="nearest")
        if regions:
            bmap = det.atlas[v].bone_map()[r0:r1]
            a.imshow(
                np.ma.masked_equal(bmap, 0),
                cmap=ListedColormap(plt.cm.tab20.colors[:17]),
                vmin=1,
                vmax=len(BONES),
                alpha=0.3,
                interpolation="nearest",
            )
        if hotspots:
            for hs in det.hotspots:
                rad = max(3.0, float(np.sqrt(hs.area_px / np.pi)) + 2)
                col = cmap(hs.p_metastatic)
                a.add_patch(
                    plt.Circle(
                        (hs.col, hs.row - r0),
                        rad,
                        fill=False,
                        color=col,
                        lw=1.6 if hs.p_metastatic >= threshold else 0.6,
                    )
                )
                if id(hs) in hl:
                    a.add_patch(
                        plt.Rectangle(
                            (hs.col - rad - 2, hs.row - r0 - rad - 2),
                            2 * rad + 4,
                            2 * rad + 4,
                            fill=False,
                            color="gold",
                            lw=1.8,
                        )
                    )
        a.set_title(f"{title_prefix}{'POST (flipped)' if v == 'POST' else v}", fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    return fig


def _table_html(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            if isinstance(v, float):
                v = f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
            cells.append(f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def report_html(
    sq: StudyQuant,
    *,
    baseline: StudyQuant | None = None,
    comparison: Comparison | None = None,
    followup_row: dict[str, Any] | None = None,
    threshold: float | None = None,
) -> str:
    """One study's report as a self-contained HTML page (pseudonymous ids only).

    Args:
        sq: the quantified study.
        baseline: the patient's baseline (for a follow-up study).
        comparison: the follow-up comparison with the baseline.
        followup_row: the study's row of ``followup.csv`` (days, counts, PCWG3).
        threshold: probability at which a hot spot is drawn as metastatic; None: the
            detection's own operating threshold (the one its counts and BSI used).
    """
    st = sq.study
    det = sq.detection
    threshold = det.call_threshold(threshold)
    parts = [
        f"<h1>Bone scan quantification: study {html.escape(st.study_key)}</h1>",
        f"<p class='muted'>patient {html.escape(st.patient_key)} &middot; label "
        f"{html.escape(st.label or 'unknown')} &middot; views {html.escape(', '.join(st.views))}</p>",
    ]
    if len(st.views) == 1:
        other = "POST" if st.views[0] == "ANT" else "ANT"
        parts.append(
            f"<p class='warn'><b>One view only</b> ({html.escape(st.views[0])}; {other} not recorded): "
            "hot spots and BSI come from this view alone; anterior/posterior ratios are unavailable (never taken as "
            "equal), so the benign rules that need them (contamination, face, anterior thigh) do not apply.</p>"
        )
    bsi = sq.bsi
    parts.append(
        f"<h2>Bone Scan Index</h2><p><b>BSI {bsi.bsi:.2f} %</b> of skeletal mass &middot; hot spots "
        f"{bsi.hotspots_total} &middot; called metastatic (p &ge; {bsi.call_threshold:.2f}) {bsi.hotspots_metastatic}"
        f"{'' if bsi.threshold == bsi.call_threshold else f' &middot; BSI and new lesions from p &ge; {bsi.threshold:.2f}'}"
        "</p>"
    )
    if sq.probabilities:
        probs = " &middot; ".join(f"{html.escape(k)} {v:.2f}" for k, v in sq.probabilities.items())
        parts.append(f"<h2>Classifier</h2><p>{probs}</p>")
    parts.append(
        "<h2>Views</h2><p class='muted'>circles: hot spots coloured by probability of "
        "metastasis (blue low, red high; thick = called metastatic)</p>"
    )
    parts.append(
        f"<img alt='views with hot spots' src='data:image/png;base64,{_png(draw_views(det, threshold=threshold))}'>"
    )
    if sq.gradcam is not None and sq.classifier_input is not None:
        import matplotlib.pyplot as plt

        from scintilab.explain import overlay

        fig, ax = plt.subplots(figsize=(2.4, 6))
        ax.imshow(overlay(sq.classifier_input, sq.gradcam))
        ax.set_axis_off()
        ax.set_title("Grad-CAM (predicted class)", fontsize=8)
        parts.append(f"<img alt='Grad-CAM' src='data:image/png;base64,{_png(fig)}'>")
    if comparison is not None and baseline is not None:
        days = followup_row.get("days") if followup_row else None
        parts.append("<h2>Follow-up</h2>")
        if followup_row:
            parts.append(
                f"<p>{'' if days is None else f'{days} days after baseline &middot; '}new lesions "
                f"<b>{followup_row['new_lesions']}</b> &middot; resolved {followup_row['resolved_lesions']} "
                f"&middot; grown {followup_row['grown_lesions']} &middot; BSI change "
                f"{followup_row['bsi_change']:+.2f} &middot; PCWG3 <b>{html.escape(str(followup_row['pcwg3']))}</b></p>"
                "<p class='muted'>boxes: new hot spots; boxes on one bone within "
                f"{qp.active().followup.same_lesion_mm:g} mm of each other count as one lesion</p>"
            )
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(5.6, 7))
        draw_one_view(baseline.detection, axes[0], "baseline", (), baseline.detection.threshold)
        draw_one_view(det, axes[1], "follow-up (new lesions boxed)", comparison.new, threshold)
        fig.tight_layout()
        parts.append(f"<img alt='baseline and follow-up' src='data:image/png;base64,{_png(fig)}'>")
    parts.append("<h2>Regions</h2>")
    rows = [r for r in bsi.table() if r["hotspots"] or r["bsi"] > 0] or bsi.table()
    parts.append(
        _table_html(rows, ["bone", "mass_share_pct", "involved_fraction", "bsi", "hotspots", "hotspots_metastatic"])
    )
    parts.append("<h2>Hot spots</h2>")
    parts.append(
        _table_html(
            [h.as_row() for h in det.hotspots[:60]],
            [
                "id",
                "view",
                "row",
                "col",
                "region",
                "area_px",
                "peak_counts",
                "normalized_uptake",
                "ap_ratio",
                "kind",
                "p_metastatic",
            ],
        )
    )
    if len(det.hotspots) > 60:
        parts.append(f"<p class='muted'>{len(det.hotspots) - 60} more in hotspots.csv</p>")
    parts.append(
        "<p class='muted'>Research software, not a medical device. Positions in pixels of the "
        "stored anterior image. Uptake normalised to the patient's own bone of the same group.</p>"
    )
    screen = "<div class='screen'>" + "\n".join(parts) + "</div>"
    return html_page(
        f"Quantification {st.study_key}",
        screen + _print_pages(sq, parts[:2], threshold),
        css="img{max-width:100%;margin:4px}" + _PRINT_CSS,
    )


#: Printed (PDF) layout: one A4 page per view, the screen layout hidden.
_PRINT_CSS = (
    "@media screen{.print{display:none}}@media print{@page{size:A4;margin:10mm}.screen{display:none}"
    "body{margin:0;font-size:9pt}.page{break-after:page;display:flex;gap:6mm;height:270mm;"
    "overflow:hidden}.page:last-child{break-after:auto}.page img{height:250mm;width:auto;max-width:80mm}"
    ".page table{font-size:7pt}.page td,.page th{padding:1px 4px}}"
)


def _print_pages(sq: StudyQuant, header: list[str], threshold: float) -> str:
    """One page per view for printing: the header, the view with its hot spots, the
    view's hot spots (the first 40; all are in hotspots.csv)."""
    det = sq.detection
    bsi = sq.bsi
    pages = []
    for v in det.images:
        hs = [h.as_row() for h in det.hotspots if v in h.view.split("+")]
        more = f"<p class='muted'>{len(hs) - 40} more in hotspots.csv</p>" if len(hs) > 40 else ""
        img = _png(draw_views(det, threshold=threshold, views=[v]))
        pages.append(
            f"<section class='page'><img alt='{v} view' src='data:image/png;base64,{img}'><div>{''.join(header)}"
            f"<p><b>BSI {bsi.bsi:.2f} %</b> &middot; hot spots {bsi.hotspots_total} &middot; called metastatic "
            f"{bsi.hotspots_metastatic}</p><h2>{v} view: hot spots</h2>"
            + _table_html(
                hs[:40], ["id", "view", "row", "col", "region", "area_px", "normalized_uptake", "p_metastatic"]
            )
            + more
            + "</div></section>"
        )
    return "<div class='print'>" + "".join(pages) + "</div>"


def draw_one_view(
    det: Detection, ax: Any, title: str, highlight: Sequence[Any], threshold: float | None = None
) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    threshold = det.call_threshold(threshold)
    v = "ANT" if "ANT" in det.images else "POST"
    r0, r1 = _crop_rows(det)
    img = det.images[v][r0:r1]
    vmax = float(np.percentile(img[img > 0], 99.5)) if (img > 0).any() else 1.0
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=vmax, interpolation="nearest")
    hl = {id(x) for x in highlight}
    for hs in det.hotspots:
        if hs.p_metastatic < threshold and id(hs) not in hl:
            continue
        rad = max(3.0, float(np.sqrt(hs.area_px / np.pi)) + 2)
        ax.add_patch(
            plt.Circle(
                (hs.col, hs.row - r0), rad, fill=False, color=matplotlib.colormaps["coolwarm"](hs.p_metastatic), lw=1.2
            )
        )
        if id(hs) in hl:
            ax.add_patch(
                plt.Rectangle(
                    (hs.col - rad - 2, hs.row - r0 - rad - 2), 2 * rad + 4, 2 * rad + 4, fill=False, color="gold", lw=2
                )
            )
    ax.set_title(f"{title} ({v})", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def write_report(sq: StudyQuant, path: str | Path, **kw: Any) -> Path:
    """Write :func:`report_html` to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, report_html(sq, **kw))
