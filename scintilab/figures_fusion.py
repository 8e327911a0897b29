"""Pure plotly figure builders for view fusion and augmentation (no widgets, no I/O).

The explorers in ``scintilab_widgets`` and notebooks 01/02 call these; tests assert on the
returned ``plotly.graph_objects.Figure``. Large matrices are block-averaged for display
(``max_rows``), while axes stay in stored-pixel coordinates so critical-point lines sit
where :func:`scintilab.fusion.critical_points` found them. Titles carry pseudonymous keys
only, never patient identity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from scintilab.augment import params_str, uptake_histogram
from scintilab.fusion import METHODS, CriticalPoints, FusionResult, aggregate

#: Colours of the four critical-point lines.
POINT_COLOURS = {"ceil": "#e41a1c", "floor": "#377eb8", "left": "#4daf4a", "right": "#ff7f00"}


#: A thin frame marks the edge of the field of view (what leaves it is lost).
_FRAME = dict(showline=True, linecolor="#bbbbbb", mirror=True, showgrid=False, zeroline=False)


def display_image(image: np.ndarray, max_rows: int = 512) -> tuple[np.ndarray, int]:
    """Block-average an image so that it has at most ``max_rows`` rows, for display only.

    Args:
        image: (rows, cols) array.
        max_rows: display budget; the factor is a whole number so blocks stay square.

    Returns:
        (display array float32, the integer factor used).
    """
    img = np.asarray(image, dtype=np.float32)
    f = max(1, int(np.ceil(img.shape[0] / max_rows)))
    if f == 1:
        return img, 1
    h, w = (img.shape[0] // f) * f, (img.shape[1] // f) * f
    return img[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3)), f


def _heatmap(
    image: np.ndarray, max_rows: int, name: str, zmax: float | None = None, showscale: bool = False
) -> go.Heatmap:
    disp, f = display_image(image, max_rows)
    pos = disp[disp > 0]
    top = zmax if zmax is not None else (float(np.percentile(pos, 99.5)) if pos.size else 1.0)
    return go.Heatmap(
        z=disp,
        x0=(f - 1) / 2.0,
        dx=f,
        y0=(f - 1) / 2.0,
        dy=f,
        zmin=0,
        zmax=max(top, 1e-6),
        colorscale="Greys",
        showscale=showscale,
        name=name,
        hovertemplate="row %{y:.0f}, col %{x:.0f}<br>counts %{z:.1f}<extra>" + name + "</extra>",
    )


def _point_lines(fig: go.Figure, pts: CriticalPoints, shape: tuple[int, int], row: int, col: int) -> None:
    h, w = shape
    for key, val in (("ceil", pts.ceil), ("floor", pts.floor)):
        fig.add_trace(
            go.Scatter(
                x=[0, w - 1],
                y=[val, val],
                mode="lines",
                line=dict(color=POINT_COLOURS[key], width=1.5),
                name=key,
                legendgroup=key,
                showlegend=(col == 1),
                hoverinfo="name+y",
            ),
            row=row,
            col=col,
        )
    for key, val in (("left", pts.left), ("right", pts.right)):
        fig.add_trace(
            go.Scatter(
                x=[val, val],
                y=[0, h - 1],
                mode="lines",
                line=dict(color=POINT_COLOURS[key], width=1.5),
                name=key,
                legendgroup=key,
                showlegend=(col == 1),
                hoverinfo="name+x",
            ),
            row=row,
            col=col,
        )


def _image_axes(fig: go.Figure, n_cols: int, shape: tuple[int, int], height: int) -> None:
    h, w = shape
    for i in range(1, n_cols + 1):
        fig.update_xaxes(range=[-0.5, w - 0.5], showticklabels=False, row=1, col=i, constrain="domain", **_FRAME)
        fig.update_yaxes(
            range=[h - 0.5, -0.5],
            showticklabels=False,
            row=1,
            col=i,
            **_FRAME,
            scaleanchor=f"x{'' if i == 1 else i}",
            scaleratio=1,
        )
    # room for the figure title above two-line panel titles ("aligned overlay<br>shift ...")
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=90, b=10), plot_bgcolor="white", legend=dict(orientation="h", y=-0.02)
    )


def overlay_rgb(anterior: np.ndarray, posterior: np.ndarray, max_rows: int = 512) -> np.ndarray:
    """Two views as one RGB picture: anterior magenta, posterior green, overlap white-ish.

    Args:
        anterior: aligned anterior view.
        posterior: aligned flipped posterior view.
        max_rows: display budget.

    Returns:
        uint8 (rows, cols, 3) image.
    """
    a, _ = display_image(anterior, max_rows)
    p, _ = display_image(posterior, max_rows)

    def unit(x: np.ndarray) -> np.ndarray:
        pos = x[x > 0]
        top = float(np.percentile(pos, 99.0)) if pos.size else 1.0
        return np.clip(x / max(top, 1e-6), 0, 1)

    ua, up = unit(a), unit(p)
    rgb = np.stack([ua, up, ua], axis=-1)
    return (rgb * 255).astype(np.uint8)


def fusion_figure(
    result: FusionResult,
    methods: Sequence[str] = (),
    *,
    title: str = "",
    max_rows: int = 512,
    height: int = 620,
) -> go.Figure:
    """Anterior and flipped posterior with critical points, the aligned overlay, and fusions.

    Panels: ANT (critical points drawn), flipped POST before alignment (its points), overlay
    after alignment (ANT magenta, POST green), then one panel per aggregation in ``methods``
    (default: the result's own method).

    Args:
        result: from :func:`scintilab.fusion.fuse` or :func:`~scintilab.fusion.align_views`.
        methods: aggregations to show side by side.
        title: figure title (use pseudonymous keys only).
        max_rows: display budget per panel.
        height: figure height in pixels.

    Returns:
        The figure.
    """
    if result.single_view:  # nothing was aligned or aggregated: the one view, said so
        img = result.image
        fig = make_subplots(rows=1, cols=1, subplot_titles=[f"{result.single_view} only (in the anterior frame)"])
        fig.add_trace(_heatmap(img, max_rows, result.single_view), row=1, col=1)
        _point_lines(fig, result.points_ant, img.shape, 1, 1)
        _image_axes(fig, 1, img.shape, height)
        full = title + (" — " if title else "") + result.flags[0]
        fig.update_layout(title=dict(text=full, x=0.01), width=520)
        return fig
    methods = list(methods) or ([result.method] if result.method in METHODS else ["add"])
    post_f = result.posterior_flipped if result.posterior_flipped is not None else result.posterior_flipped_aligned
    shape = result.anterior.shape
    titles = [
        "anterior",
        "posterior (flipped)",
        f"aligned overlay<br>shift {result.shift[0]:+.0f}, {result.shift[1]:+.0f}",
    ]
    titles += [f"fused: {m}" for m in methods]
    n = len(titles)
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles, horizontal_spacing=0.01)
    fig.add_trace(_heatmap(result.anterior, max_rows, "ANT"), row=1, col=1)
    _point_lines(fig, result.points_ant, shape, 1, 1)
    fig.add_trace(_heatmap(post_f, max_rows, "POST flipped"), row=1, col=2)
    _point_lines(fig, result.points_post, shape, 1, 2)
    rgb = overlay_rgb(result.anterior, result.posterior_flipped_aligned, max_rows)
    f = int(np.ceil(shape[0] / max_rows)) if shape[0] > max_rows else 1
    fig.add_trace(
        go.Image(z=rgb, x0=(f - 1) / 2.0, dx=f, y0=(f - 1) / 2.0, dy=f, name="overlay", hoverinfo="skip"), row=1, col=3
    )
    for i, m in enumerate(methods):
        fused = result.image if m == result.method else aggregate(result.anterior, result.posterior_flipped_aligned, m)
        fig.add_trace(_heatmap(fused, max_rows, m), row=1, col=4 + i)
    _image_axes(fig, n, shape, height)
    full = title + (" — " if title else "") + f"overlap (IoU) {result.overlap:.2f}, scale {result.scale:.3f}"
    fig.update_layout(title=dict(text=full, x=0.01), width=max(520, 190 * n))
    return fig


def aggregations_figure(
    result: FusionResult, methods: Sequence[str] = METHODS, *, max_rows: int = 512, height: int = 560
) -> go.Figure:
    """Each aggregation of one aligned pair side by side, each on its own grey scale.

    Args:
        result: an aligned (or fused) result.
        methods: aggregations to show.
        max_rows: display budget per panel.
        height: figure height.

    Returns:
        The figure.
    """
    titles = [f"{m}" for m in methods]
    fig = make_subplots(rows=1, cols=len(methods), subplot_titles=titles, horizontal_spacing=0.01)
    for i, m in enumerate(methods):
        fig.add_trace(
            _heatmap(aggregate(result.anterior, result.posterior_flipped_aligned, m), max_rows, m), row=1, col=i + 1
        )
    _image_axes(fig, len(methods), result.anterior.shape, height)
    fig.update_layout(
        title=dict(text="pixel-wise aggregation of the aligned views", x=0.01), width=max(420, 190 * len(methods))
    )
    return fig


def augment_grid_figure(
    image: np.ndarray,
    copies: Sequence[tuple[np.ndarray, Mapping]],
    *,
    cols: int = 6,
    max_rows: int = 256,
    title: str = "",
) -> go.Figure:
    """The original and its augmented copies in a grid, each titled with its parameters.

    Args:
        image: the original (rows, cols).
        copies: (image, params) pairs from :func:`scintilab.augment.augment_copies`.
        cols: panels per grid row.
        max_rows: display budget per panel.
        title: figure title.

    Returns:
        The figure; panel titles are ``orig`` then each copy's ``r=..<br>dx=..,dy=..``.
    """
    # two-line titles fit narrow whole-body panels
    panels = [(image, "orig")] + [(c, params_str(dict(p)).replace(",", "<br>", 1)) for c, p in copies]
    n = len(panels)
    ncols = min(cols, n)
    nrows = int(np.ceil(n / ncols))
    fig = make_subplots(
        rows=nrows, cols=ncols, subplot_titles=[t for _, t in panels], horizontal_spacing=0.01, vertical_spacing=0.06
    )
    pos = np.asarray(image, dtype=np.float32)
    zmax = float(np.percentile(pos[pos > 0], 99.5)) if (pos > 0).any() else 1.0
    h, w = np.asarray(image).shape
    for k, (img, name) in enumerate(panels):
        r, c = divmod(k, ncols)
        fig.add_trace(_heatmap(img, max_rows, name, zmax=zmax), row=r + 1, col=c + 1)
        fig.update_xaxes(range=[-0.5, w - 0.5], showticklabels=False, row=r + 1, col=c + 1, **_FRAME)
        fig.update_yaxes(
            range=[h - 0.5, -0.5],
            showticklabels=False,
            row=r + 1,
            col=c + 1,
            **_FRAME,
            scaleanchor=f"x{'' if k == 0 else k + 1}",
            scaleratio=1,
        )
    fig.update_annotations(font_size=10)
    panel_h = 380
    fig.update_layout(
        plot_bgcolor="white",
        height=panel_h * nrows + 60,
        width=max(400, int(1.1 * panel_h * w / h * ncols) + 40),
        margin=dict(l=10, r=10, t=60, b=10),
        title=dict(text=title or "augmented copies (same grey scale)", x=0.01),
    )
    return fig


def uptake_distribution_figure(
    originals: Sequence[np.ndarray], augmented: Sequence[np.ndarray], *, bins: int = 60, title: str = ""
) -> go.Figure:
    """Histogram of body-pixel counts before and after augmentation (log density).

    Interpolation smooths the peaks a little and moving uptake out of the field removes
    counts; overlapping curves mean the augmented images keep the uptake distribution.

    Args:
        originals: original images.
        augmented: augmented copies.
        bins: number of bins.
        title: figure title.

    Returns:
        The figure (two line traces named ``original`` and ``augmented``).
    """
    d0, edges = uptake_histogram(list(originals), bins=bins)
    d1, _ = uptake_histogram(list(augmented), bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=centres, y=d0, mode="lines", name="original", line=dict(width=2)))
    fig.add_trace(go.Scatter(x=centres, y=d1, mode="lines", name="augmented", line=dict(width=2, dash="dash")))
    fig.update_yaxes(type="log", title="density")
    fig.update_xaxes(title="counts per pixel (body pixels)")
    fig.update_layout(
        height=360,
        width=640,
        title=dict(text=title or "uptake distribution", x=0.01),
        margin=dict(l=60, r=10, t=50, b=50),
    )
    return fig


def retention_figure(
    r_values: Sequence[float], t_values: Sequence[int], retention: np.ndarray, chosen: tuple[float, int] | None = None
) -> go.Figure:
    """Heat map of the worst-case fraction of counts kept in the field over (r_T, t_T).

    Args:
        r_values: rotation limits (degrees), the rows.
        t_values: translation limits (pixels), the columns.
        retention: (len(r_values), len(t_values)) minimum count ratios.
        chosen: the (r_T, t_T) marked on the map.

    Returns:
        The figure.
    """
    fig = go.Figure(
        go.Heatmap(
            z=retention,
            x=list(t_values),
            y=list(r_values),
            colorscale="Viridis",
            zmin=float(np.min(retention)),
            zmax=1.0,
            colorbar=dict(title="kept"),
            hovertemplate="t_T %{x} px, r_T %{y}°: %{z:.4f} of counts kept<extra></extra>",
        )
    )
    if chosen is not None:
        fig.add_trace(
            go.Scatter(
                x=[chosen[1]],
                y=[chosen[0]],
                mode="markers",
                marker=dict(symbol="x", size=14, color="red"),
                name="chosen",
            )
        )
    fig.update_layout(
        height=360,
        width=520,
        xaxis_title="t_T (pixels)",
        yaxis_title="r_T (degrees)",
        title=dict(text="worst-case fraction of counts kept in the field", x=0.01),
        margin=dict(l=60, r=10, t=50, b=50),
    )
    return fig
