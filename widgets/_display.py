"""Showing figures inside an explorer's Output widget: one helper for every explorer."""

from __future__ import annotations

import sys
from typing import Any

import ipywidgets as widgets


def show_in(output: widgets.Output, *figs: Any) -> None:
    """Render ``figs`` into ``output`` inside a live kernel (without one, tests, only close them).

    The figures' display data (PNG for matplotlib, the Plotly JSON for Plotly, as IPython
    formats them) are set as the Output's state directly. Capturing with ``with output:``
    routes display messages through the kernel's output hooks, which under papermill
    (ipykernel 7) now and then left the cell hanging, and ``clear_output(wait=True)``
    stalls kernels that have no front end (papermill, nbval).
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipywidgets
        get_ipython = None  # noqa: N806
    shell = get_ipython() if get_ipython is not None else None
    if shell is not None:
        outputs = []
        for fig in figs:
            data, metadata = _bundle(shell, fig)
            outputs.append({"output_type": "display_data", "data": data, "metadata": metadata})
        output.outputs = tuple(outputs)
    # A matplotlib figure made while a cell runs is drawn again under the cell when it ends
    # (the inline backend shows every open figure): close it once it is in the Output.
    # Seen in JupyterLab (tests/test_browser.py): a stale second figure below the explorer.
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        for fig in figs:
            if isinstance(fig, plt.Figure):
                plt.close(fig)


def _bundle(shell: Any, fig: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A figure's display data: its own mime bundle (Plotly: the Plotly JSON that JupyterLab
    draws), else what IPython's formatters make of it (matplotlib: a PNG)."""
    own = getattr(fig, "_repr_mimebundle_", None)
    if callable(own):
        bundle = own()
        if isinstance(bundle, tuple):
            return dict(bundle[0] or {}), dict(bundle[1] or {})
        if bundle:
            return dict(bundle), {}
    data, metadata = shell.display_formatter.format(fig)
    return dict(data), dict(metadata)
