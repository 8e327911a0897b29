"""The cohort's data card: what is in it, and everything the audit found wrong with it.

Written as Markdown (for a repository or a paper's supplement) and as a self-contained
HTML page (figures inlined), from an :class:`~scintilab.audit.result.AuditResult`. Only
pseudonymous keys appear: no names, patient ids, dates of birth or source paths.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scintilab.outputs import write_text
from scintilab.pages import figure_base64, html_page

if TYPE_CHECKING:  # pragma: no cover
    from scintilab.audit.result import AuditResult

#: Manifest columns a data card may show (pseudonymous or technical only).
_SAFE_COLUMNS = (
    "study_key",
    "patient_key",
    "label",
    "views",
    "layout",
    "rows",
    "cols",
    "spacing_row",
    "spacing_col",
    "counts_ant",
    "counts_post",
    "status",
    "flags",
)


def _count_table(series: pd.Series, name: str) -> pd.DataFrame:
    vc = series.fillna("(none)").astype(str).replace("", "(none)").value_counts()
    return pd.DataFrame({name: vc.index, "studies": vc.values})


def summary_tables(result: AuditResult) -> dict[str, pd.DataFrame]:
    """The data card's tables, by section title.

    Args:
        result: an audit result.

    Returns:
        Ordered mapping of section title -> table (all ids pseudonymous).
    """
    from scintilab.audit.kinds import KIND_WORDS

    m = result.manifest
    out: dict[str, pd.DataFrame] = {}
    n_pat = m["patient_key"].nunique() if "patient_key" in m else len(m)
    overview = [
        ("studies", len(m)),
        ("patients", n_pat),
        ("findings", len(result.flags)),
        ("studies named in a finding", len(result.flagged_studies() & set(m["study_key"].astype(str)))),
        ("findings dismissed by review", len(result.dismissed)),
    ]
    out["Overview"] = pd.DataFrame(overview, columns=["", "number"])
    if "label" in m:
        out["Classes"] = _count_table(m["label"], "label")
    # Ingest records Manufacturer (0008,0070) and ManufacturerModelName (0008,1090): a
    # scanner is the pair, so two models of one vendor are told apart.
    scanner_cols = [c for c in ("manufacturer", "model", "scanner") if c in m.columns]
    if scanner_cols:
        parts = (
            m[scanner_cols].fillna("").astype(str).apply(lambda r: " ".join(x.strip() for x in r if x.strip()), axis=1)
        )
        out["Scanners"] = _count_table(parts if len(m) else pd.Series([], dtype=str), "scanner")
    else:
        out["Scanners"] = pd.DataFrame({"scanner": ["not recorded in the manifest"], "studies": [len(m)]})
    if {"rows", "cols"} <= set(m.columns):
        mat = m["rows"].astype(str) + " x " + m["cols"].astype(str)
        if {"spacing_row", "spacing_col"} <= set(m.columns):
            mat = mat + " @ " + m["spacing_row"].map(lambda v: f"{float(v):.2f}") + " mm"
        out["Matrix sizes"] = _count_table(mat, "matrix (rows x cols @ pixel)")
    if "views" in m:
        out["Views present"] = _count_table(m["views"], "views")
    if "patient_key" in m:
        visits = m.groupby("patient_key").size().value_counts().sort_index()
        out["Visits per patient"] = pd.DataFrame({"studies per patient": visits.index, "patients": visits.values})
    counts = []
    for col, view in (("counts_ant", "ANT"), ("counts_post", "POST")):
        if col in m:
            c = pd.to_numeric(m[col], errors="coerce").dropna().astype(float)
            if len(c):
                q = np.percentile(c, [0, 5, 25, 50, 75, 95, 100]) / 1e6
                counts.append([view, len(c)] + [round(float(v), 3) for v in q])
    if counts:
        out["Counts per view (millions)"] = pd.DataFrame(
            counts, columns=["view", "n", "min", "5%", "25%", "median", "75%", "95%", "max"]
        )
    if "status" in m:
        out["Ingest status"] = _count_table(m["status"], "status")
    kinds = result.flags["kind"].value_counts()
    out["Findings by kind"] = pd.DataFrame(
        {"kind": kinds.index, "what it means": [KIND_WORDS.get(k, k) for k in kinds.index], "findings": kinds.values}
    )
    excl = result.flags[
        result.flags["kind"].isin(["empty_frame", "spot_view", "partial_sweep", "unreadable", "ingest_skipped"])
    ]
    out["Suggested exclusions"] = excl[["kind", "study_a", "detail"]].rename(columns={"study_a": "study / file"})
    out["All findings"] = result.flags.copy()
    if len(result.dismissed):
        out["Dismissed by review"] = result.dismissed.copy()
    return out


def counts_figure(result: AuditResult) -> Any:
    """Histogram of counts per view (log scale), with flagged studies marked."""
    import matplotlib.pyplot as plt

    m = result.manifest
    fig, ax = plt.subplots(figsize=(6.4, 2.8), dpi=100)
    flagged = set(result.flags.loc[result.flags["kind"] == "counts_outlier", "study_a"])
    for col, colour, view in (("counts_ant", "#1f77b4", "ANT"), ("counts_post", "#ff7f0e", "POST")):
        if col not in m:
            continue
        c = pd.to_numeric(m[col], errors="coerce")
        ok = c.notna() & (c > 0)
        if not ok.any():
            continue
        bins = np.logspace(np.log10(max(1.0, float(c[ok].min()) * 0.8)), np.log10(float(c[ok].max()) * 1.2), 30)
        ax.hist(c[ok], bins=bins, alpha=0.55, color=colour, label=view)
        out = ok & m["study_key"].isin(flagged)
        if out.any():
            ax.plot(
                c[out],
                np.zeros(int(out.sum())) + 0.3,
                "v",
                color="crimson",
                ms=7,
                label="counts outlier" if view == "ANT" else None,
            )
    ax.set_xscale("log")
    ax.set_xlabel("total counts per view")
    ax.set_ylabel("studies")
    ax.set_title("Count distribution")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def to_markdown(result: AuditResult) -> str:
    """The data card as Markdown."""
    tables = summary_tables(result)
    lines = [
        "# Cohort data card",
        "",
        "Written by `scintilab audit`. Identifiers are pseudonymous keys (S- study, P- patient, "
        "F- file); no names, patient ids or source paths.",
        "",
    ]
    for title, df in tables.items():
        lines += [f"## {title}", ""]
        if df.empty:
            lines += ["(none)", ""]
            continue
        cols = [str(c) for c in df.columns]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for row in df.itertuples(index=False):
            lines.append("| " + " | ".join(str(v).replace("|", "/") for v in row) + " |")
        lines.append("")
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1150px}
h1{font-size:1.6em;margin-bottom:0}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:0.85em;margin:6px 0}th,td{border:1px solid #ddd;padding:3px 7px;
text-align:left;vertical-align:top;white-space:nowrap}td:last-child{white-space:normal}th{background:#f3f5f8}.note{color:#555;font-size:.9em}
.grid{display:flex;flex-wrap:wrap;gap:18px}.grid>div{flex:0 0 auto}
td.k-exact_duplicate,td.k-near_duplicate,td.k-split_leak{color:#b00020;font-weight:600}
td.k-same_patient{color:#a65e00;font-weight:600}
"""


def to_html(result: AuditResult) -> str:
    """The data card as one self-contained HTML page (figures inlined as PNG)."""
    tables = summary_tables(result)
    small = ["Overview", "Classes", "Scanners", "Matrix sizes", "Views present", "Visits per patient", "Ingest status"]
    parts = [
        "<h1>Cohort data card</h1>",
        "<p class='note'>Written by <code>scintilab audit</code>. Identifiers are pseudonymous keys "
        "(S- study, P- patient, F- file); no names, patient ids or source paths.</p>",
        "<div class='grid'>",
    ]
    for title in small:
        if title in tables:
            parts.append(f"<div><h2>{html.escape(title)}</h2>{tables[title].to_html(index=False, escape=True)}</div>")
    parts.append("</div>")
    if "Counts per view (millions)" in tables:
        parts.append("<h2>Counts per view (millions)</h2>")
        parts.append(tables["Counts per view (millions)"].to_html(index=False, escape=True))
        parts.append(
            f"<img alt='count distribution' src='data:image/png;base64,{figure_base64(counts_figure(result))}'>"
        )
    for title in ("Findings by kind", "Suggested exclusions", "All findings", "Dismissed by review"):
        if title not in tables:
            continue
        df = tables[title]
        parts.append(f"<h2>{html.escape(title)} ({len(df)})</h2>")
        if df.empty:
            parts.append("<p>(none)</p>")
            continue
        body = df.to_html(index=False, escape=True)
        if "kind" in df.columns:  # colour pair findings so leaks stand out
            for k in df["kind"].unique():
                body = body.replace(
                    f"<td>{html.escape(str(k))}</td>", f"<td class='k-{html.escape(str(k))}'>{html.escape(str(k))}</td>"
                )
        parts.append(body)
    return html_page("Cohort data card", "\n".join(parts), css=_CSS)


def write_datacard(result: AuditResult, out: str | Path) -> tuple[Path, Path]:
    """Write ``datacard.md`` and ``datacard.html`` into ``out``; returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "datacard.md", out / "datacard.html"
    write_text(md, to_markdown(result))
    write_text(page, to_html(result))
    return md, page
