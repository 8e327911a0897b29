"""Draw docs/layers.svg from scintilab.layers.LAYERS (the table tests/test_layers.py enforces).

Run ``.venv/bin/python docs/draw_layers.py`` after changing the table; tests/test_layers.py
fails when the committed picture no longer matches it.
"""

from __future__ import annotations

import html
import textwrap
from pathlib import Path

from scintilab.layers import LAYERS

OUT = Path(__file__).with_name("layers.svg")
WIDTH = 900
BOX_X = 150
BOX_W = WIDTH - BOX_X - 20
LINE = 17
PAD = 10
COLOURS = ("#e8eef7", "#dfe9f5", "#d6e4f2", "#f3e8d8", "#e6f0dc", "#dcefe4", "#f2dede", "#ece4f3", "#f5f0d8")


def _short(entry: str) -> str:
    if entry == "scintilab":
        return "__init__"
    return entry.removeprefix("scintilab.").replace("scintilab_widgets.*", "widgets/*")


def svg() -> str:
    """The picture as SVG text: one box per layer, the top layer first, imports pointing down."""
    rows = []
    for name, what, entries in reversed(LAYERS):
        modules = ", ".join(_short(e) for e in entries)
        lines = textwrap.wrap(modules, 95)
        rows.append((name, what, lines))
    y = 50
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="HEIGHT" font-family="DejaVu Sans, Arial, '
        'sans-serif" font-size="13">',
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="20" y="28" font-size="17" font-weight="bold">scintilab: layers (a module imports only from its '
        "own layer or below)</text>",
    ]
    for i, (name, what, lines) in enumerate(rows):
        h = PAD * 2 + LINE * (1 + len(lines))
        colour = COLOURS[(len(rows) - 1 - i) % len(COLOURS)]
        parts.append(f'<rect x="{BOX_X}" y="{y}" width="{BOX_W}" height="{h}" rx="6" fill="{colour}" stroke="#555"/>')
        parts.append(
            f'<text x="20" y="{y + PAD + LINE - 3}" font-size="15" font-weight="bold">{html.escape(name)}</text>'
        )
        parts.append(f'<text x="{BOX_X + PAD}" y="{y + PAD + LINE - 3}" font-style="italic">{html.escape(what)}</text>')
        for k, line in enumerate(lines):
            parts.append(
                f'<text x="{BOX_X + PAD}" y="{y + PAD + LINE * (k + 2) - 3}" font-family="DejaVu Sans Mono, monospace" '
                f'font-size="12">{html.escape(line)}</text>'
            )
        y += h
        if i < len(rows) - 1:
            cx = BOX_X + BOX_W // 2
            parts.append(f'<line x1="{cx}" y1="{y + 2}" x2="{cx}" y2="{y + 14}" stroke="#333" stroke-width="2"/>')
            parts.append(f'<polygon points="{cx - 5},{y + 12} {cx + 5},{y + 12} {cx},{y + 18}" fill="#333"/>')
            y += 20
    parts.append(
        f'<text x="20" y="{y + 24}" fill="#444">Arrows: the direction of imports. The table is scintilab/layers.py; '
        "tests/test_layers.py fails on a cycle,</text>"
    )
    parts.append(
        f'<text x="20" y="{y + 42}" fill="#444">an upward import, an analysis module importing synth, or a private '
        "name imported from another module.</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts).replace("HEIGHT", str(y + 60)) + "\n"


if __name__ == "__main__":
    OUT.write_text(svg(), encoding="utf-8")
    print(f"wrote {OUT}")
