"""Page building blocks: plotly figures as plain HTML, the one PNG encoder, the one page shell.

Every HTML the project writes (executed-notebook reports, the batch index, a study's
quantification report, validation pages) is put together from these, so figures look the
same and embed the same way everywhere: plotly.js once per page, matplotlib figures as
base64 PNGs from :func:`figure_png`, one stylesheet in :func:`html_page`.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping
from typing import Any

#: MIME type under which notebooks store plotly figures as JSON.
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def plotly_js() -> str:
    """plotly.js (the version the installed plotly package ships), as text."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def plotly_script_tag() -> str:
    """A ``<script>`` holding plotly.js; put it once per page, before any figure div."""
    return (
        '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};</script>\n'
        f'<script type="text/javascript">{plotly_js()}</script>'
    )


def figure_html(fig: Any, *, div_id: str | None = None) -> str:
    """A plotly figure (or its JSON dict) as a ``<div>`` + script, without plotly.js.

    Use with :func:`plotly_script_tag` (or :func:`html_page` with ``plotly=True``) to build
    offline pages; per-study reports of other modules use this too.
    """
    import plotly.io as pio

    return pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        config={"responsive": True, "displaylogo": False},
        validate=False,
    )


def _is_plotly_loader(output: Mapping[str, Any]) -> bool:
    """True for the output a ``notebook`` renderer emits to load plotly.js (megabytes)."""
    data = output.get("data") or {}
    text = data.get("text/html")
    if isinstance(text, list):
        text = "".join(text)
    return isinstance(text, str) and len(text) > 100_000 and "PlotlyConfig" in text and PLOTLY_MIME not in data


def convert_plotly_outputs(nb: Any) -> int:
    """Replace plotly outputs by offline ``<div>`` HTML (in place); return how many.

    Outputs carrying plotly JSON get fresh HTML without require.js; plotly.js loader
    outputs of the ``notebook`` renderer are dropped (the page embeds plotly.js once).
    """
    count = 0
    for cell in nb.cells:
        outputs = cell.get("outputs")
        if not outputs:
            continue
        kept = []
        for output in outputs:
            if _is_plotly_loader(output):
                continue
            data = output.get("data") or {}
            if PLOTLY_MIME in data:
                fig = data[PLOTLY_MIME]
                if isinstance(fig, str):
                    fig = json.loads(fig)
                output["data"] = {"text/html": figure_html(fig)}
                count += 1
            kept.append(output)
        cell["outputs"] = kept
    return count


def figure_png(fig: Any, *, dpi: float | None = None, tight: bool = False) -> bytes:
    """PNG bytes of a matplotlib figure, which is closed: the one encoder behind every page.

    Args:
        fig: the figure.
        dpi: resolution (None: matplotlib's default).
        tight: crop to the drawn area (``bbox_inches="tight"``).
    """

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi if dpi is not None else "figure", bbox_inches="tight" if tight else None)
    plt.close(fig)
    return buf.getvalue()


def figure_base64(fig: Any, *, dpi: float | None = None, tight: bool = False) -> str:
    """:func:`figure_png` as base64 text, for ``<img src='data:image/png;base64,...'>``."""

    return base64.b64encode(figure_png(fig, dpi=dpi, tight=tight)).decode("ascii")


def html_page(title: str, body: str, *, plotly: bool = False, css: str = "") -> str:
    """A minimal self-contained HTML page (for per-study reports, the index page).

    Args:
        title: the page title (escaped here).
        body: HTML of the body (the caller escapes its own text).
        plotly: embed plotly.js once (needed if ``body`` holds :func:`figure_html` divs).
        css: extra CSS rules.
    """
    head_js = plotly_script_tag() if plotly else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{html.escape(title)}</title>\n<style>{_BASE_CSS}{css}</style>\n{head_js}\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


_BASE_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem;color:#1d2733}
table{border-collapse:collapse;font-size:0.9rem}
th,td{border-bottom:1px solid #dde3ea;padding:0.35rem 0.6rem;text-align:left;vertical-align:top}
th{background:#f3f6f9}
.ok{color:#176e2f;font-weight:600}.failed{color:#b42318;font-weight:600}.skipped{color:#8a6d00;font-weight:600}
.running{color:#555}
code{font-size:0.85em}
.muted{color:#667085;font-size:0.85rem}
"""
