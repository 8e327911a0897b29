"""ipywidgets explorers for scintilab, installed as ``scintilab_widgets``.

The only place that imports ipywidgets. Each explorer is a class or factory returning a
widget; the figure it shows comes from a pure function beside it, so tests can set
``.value``, call ``.click()`` and assert on the figure without a kernel.
"""
