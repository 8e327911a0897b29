"""Showing figures inside an explorer's Output widget: one helper for every explorer."""
from __future__ import annotations

from typing import Any

import ipywidgets as widgets


def show_in(output: widgets.Output, *figs: Any) -> None:
    """Render ``figs`` into ``output`` inside a live kernel; a no-op without one (tests).

    The Output's state is reset directly: ``clear_output(wait=True)`` stalls kernels that
    have no front end (papermill, nbval).
    """
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with ipywidgets
        return
    if get_ipython() is None:
        return
    output.outputs = ()
    with output:
        for fig in figs:
            display(fig)
