"""Shareable HTML: executed notebooks as self-contained reports, and the batch index page.

What a report guarantees, and how:

* **Self-contained and offline.** Images are embedded by nbconvert; plotly figures are
  rebuilt from their JSON (``application/vnd.plotly.v1+json``) as plain ``<div>`` +
  ``Plotly.newPlot`` and plotly.js is embedded **once per page**; the template's CDN
  scripts (require.js, MathJax, Mermaid, widget manager) are left out. Notebooks call
  :func:`setup_plotly` so figures are stored as JSON (small notebooks, no require.js).
* **Code hidden in report mode** (``exclude_input``), for clinicians; stderr streams
  (library warnings, progress bars) are left out there too, and the run's parameters are
  shown as text.
* **No absolute paths**: notebook text and outputs pass through :func:`sanitize_text`
  before rendering (repo paths shown relative, any other absolute path hidden whole),
  because folder names of hospital exports often carry patient names.
* **No patient identity**: :mod:`scintilab.identity_check` collects the identifiers a
  cohort's DICOM headers carry and looks for them in rendered files; the test suite plants
  a name and an ID and greps the HTML.

Notebooks report headline numbers with :func:`record_metrics`; the index page
(:func:`write_index`) shows them beside each run's status. :mod:`scintilab.chromium` drives
headless Chromium (Debian's ``chromium`` package) to check a page and take a screenshot.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import html
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from scintilab.chromium import chromium_render, find_chromium
from scintilab.errors import InputError
from scintilab.identity_check import check_reports, phi_terms_from_dicom, scan_for_phi, searchable_text
from scintilab.pages import (
    PLOTLY_MIME,
    convert_plotly_outputs,
    figure_base64,
    figure_html,
    figure_png,
    html_page,
    plotly_js,
    plotly_script_tag,
)
from scintilab.paths import repo_root

# The page building blocks, the identity check and the headless browser live in their own
# modules (pages, identity_check, chromium); they are named here too because tests and
# notebooks reach them as ``reports.<name>``.
__all__ = [
    "METRICS_MIME",
    "PLOTLY_MIME",
    "RUN_OUT_ENV",
    "check_reports",
    "chromium_render",
    "convert_plotly_outputs",
    "figure_base64",
    "figure_html",
    "figure_png",
    "find_chromium",
    "headline",
    "html_page",
    "notebook_metrics",
    "phi_terms_from_dicom",
    "plotly_js",
    "plotly_script_tag",
    "record_metrics",
    "render_report",
    "run_metrics",
    "run_output_dir",
    "sanitize_notebook",
    "sanitize_text",
    "scan_for_phi",
    "searchable_text",
    "setup_plotly",
    "write_index",
    "cli_main",
]

#: MIME type of the headline-metrics output :func:`record_metrics` displays (a ``glue``).
METRICS_MIME = "application/vnd.scintilab.metrics+json"
#: Environment variable naming a batch run's output folder (set by scintilab.batch).
RUN_OUT_ENV = "SCINTILAB_RUN_OUT"

_PLOTLY_MARKER = "<!--scintilab:plotly.js-->"
# The lab template without anything fetched from the internet (require.js, MathJax,
# Mermaid, the widget manager); plotly.js is put where require.js was, once.
_TEMPLATE = (
    "{%- extends 'lab/index.html.j2' -%}\n"
    "{%- block html_head_js_requirejs -%}" + _PLOTLY_MARKER + "{%- endblock html_head_js_requirejs -%}\n"
    "{% block jupyter_widgets %}{% endblock jupyter_widgets %}\n"
    "{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}\n"
    "{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}\n"
)


# --------------------------------------------------------------------------- notebook side


def setup_plotly() -> None:
    """Make plotly figures render in Jupyter and in offline HTML reports.

    Figures are stored as plotly JSON (the ``plotly_mimetype`` renderer): JupyterLab and
    VS Code draw them natively, and :func:`render_report` turns them into offline HTML
    with plotly.js embedded once. ``notebook_connected`` is avoided on purpose: it loads
    plotly.js from a CDN, so reports would be blank without internet.
    """
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype"


def run_output_dir() -> Path | None:
    """The batch run's output folder when run by ``scintilab run``, else None."""
    value = os.environ.get(RUN_OUT_ENV)
    return Path(value) if value else None


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _jsonable(value: Any) -> Any:
    """Numbers/strings/bools as they are; NumPy scalars as Python ones; the rest as text."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)


def record_metrics(
    metrics: Mapping[str, Any], *, out_dir: str | os.PathLike[str] | None = None, display: bool = True
) -> None:
    """Record a notebook's headline numbers for the batch index page.

    Nested mappings are flattened to dotted keys (``{"macro": {"f1": .7}}`` -> ``macro.f1``).
    The numbers are merged into ``metrics.json`` in ``out_dir`` (default: the batch run's
    folder, when run by ``scintilab run``) and displayed as a small table whose output also
    carries them as JSON (so the index can read them from the executed notebook alone).

    Args:
        metrics: name -> value (numbers preferably; text allowed).
        out_dir: where ``metrics.json`` goes; None uses :func:`run_output_dir` (if any).
        display: show the table in the notebook.

    Returns None, so a notebook cell ending with this call shows the table only once.
    """
    flat = {k: _jsonable(v) for k, v in _flatten(dict(metrics)).items()}
    target = Path(out_dir) if out_dir is not None else run_output_dir()
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        path = target / "metrics.json"
        try:
            merged = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except ValueError:
            merged = {}
        merged.update(flat)
        path.write_text(json.dumps(merged, indent=2, sort_keys=True), encoding="utf-8")
    if display:
        try:
            from IPython.display import display as _display
        except ImportError:  # plain Python: nothing to show
            return None
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
            for k, v in flat.items()
        )
        text = "\n".join(f"{k}: {_fmt(v)}" for k, v in flat.items())
        _display(
            {METRICS_MIME: flat, "text/html": f"<table class='scintilab-metrics'>{rows}</table>", "text/plain": text},
            raw=True,
        )
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


# --------------------------------------------------------------------------- sanitising


_GENERIC_POSIX = re.compile(r"(?<![\w.~:/$\\-])/(?:[^\s/'\"<>:;,|()\[\]{}=&`]+/)+[^\s/'\"<>:;,|()\[\]{}=&`]*")
_GENERIC_WINDOWS = re.compile(r"(?<![\w])[A-Za-z]:\\(?:[^\s\\'\"<>:;,|]+\\)+[^\s\\'\"<>:;,|]*")


def _repo_roots() -> list[str]:
    """The repo folder as written and as resolved (they differ behind symlinks)."""
    root = repo_root()
    return sorted({str(root).rstrip("/"), str(root.resolve()).rstrip("/")}, key=len, reverse=True)


def sanitize_text(text: str, extra_roots: Iterable[str | os.PathLike[str]] = ()) -> str:
    """Remove absolute paths from ``text``.

    Paths inside the repository become ``$REPO/<relative path>`` (project files such as
    ``runs/...``: useful and not identifying); paths inside ``extra_roots`` become
    ``$DATA/<relative path>``; every other absolute path (temp folders, home folders,
    hospital shares), Windows ones included, becomes ``[path]`` as a whole, because any
    of its folder names may be a patient's. Relative paths are kept: they are what
    notebooks are meant to show.

    Args:
        text: notebook output or source text (not whole HTML pages with scripts).
        extra_roots: folders whose contents may be shown relative to them.

    Returns:
        The cleaned text.
    """
    if not text:
        return text
    roots = [(str(Path(r)).rstrip("/"), "$DATA") for r in extra_roots]
    roots += [(r, "$REPO") for r in _repo_roots()]
    for root, label in sorted(roots, key=lambda t: -len(t[0])):
        if len(root) > 1:
            text = re.sub(re.escape(root) + r"(?=/|\b|$)", lambda _m, lab=label: lab, text)
    text = _GENERIC_POSIX.sub("[path]", text)
    return _GENERIC_WINDOWS.sub("[path]", text)


def sanitize_notebook(nb: Any, extra_roots: Iterable[str | os.PathLike[str]] = ()) -> Any:
    """Apply :func:`sanitize_text` to every source and text output of ``nb`` (in place).

    Images and plotly JSON are left alone; metadata is reduced to what rendering needs
    (papermill records input/output paths there).
    """
    extra = list(extra_roots)

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return sanitize_text(value, extra)
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    for cell in nb.cells:
        cell.source = clean(cell.source)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = clean(output["text"])
            if "evalue" in output:
                output["evalue"] = clean(output["evalue"])
            if "traceback" in output:
                output["traceback"] = clean(output["traceback"])
            data = output.get("data") or {}
            for mime in list(data):
                if mime.startswith("text/") or mime in {"application/javascript"}:
                    data[mime] = clean(data[mime])
    papermill_meta = nb.metadata.get("papermill")
    if isinstance(papermill_meta, dict):
        for key in ("input_path", "output_path"):
            papermill_meta.pop(key, None)
    return nb


# --------------------------------------------------------------------------- rendering


def render_report(
    notebook: str | os.PathLike[str],
    html_out: str | os.PathLike[str] | None = None,
    *,
    report_mode: bool = True,
    title: str | None = None,
    extra_roots: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Render an executed notebook to one self-contained, sanitised HTML file.

    Args:
        notebook: the executed ``.ipynb`` (only read).
        html_out: the HTML to write; default: beside the notebook with ``.html``.
        report_mode: hide code cells (and prompts), showing only text and outputs.
        title: page title; default: the notebook's first heading.
        extra_roots: further folders :func:`sanitize_text` hides.

    Returns:
        The path written.

    Raises:
        InputError: the notebook cannot be read.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:
        raise InputError(notebook, f"cannot read notebook ({exc})") from exc
    html_out = Path(html_out) if html_out is not None else notebook.with_suffix(".html")
    sanitize_notebook(nb, extra_roots)
    if report_mode:
        _show_parameters(nb)
        _drop_stderr(nb)
    n_figs = convert_plotly_outputs(nb)
    if title is None:
        title = _first_heading(nb) or notebook.stem
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"scintilab_report.html.j2": _TEMPLATE})],
        template_file="scintilab_report.html.j2",
        exclude_input=report_mode,
        exclude_input_prompt=report_mode,
        exclude_output_prompt=report_mode,
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": sanitize_text(title)}})
    body = body.replace(_PLOTLY_MARKER, plotly_script_tag() if n_figs else "", 1)
    html_out.parent.mkdir(parents=True, exist_ok=True)
    html_out.write_text(body, encoding="utf-8")
    return html_out


def _drop_stderr(nb: Any) -> None:
    """Remove stderr streams (library warnings, progress bars): noise for a clinical reader.

    Errors stay: a failed cell's error output is not a stream.
    """
    for cell in nb.cells:
        if cell.get("outputs"):
            cell["outputs"] = [
                o for o in cell["outputs"] if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]


def _show_parameters(nb: Any) -> None:
    """In report mode code is hidden, so show the run's parameters as text (in place).

    The values papermill injected (else the defaults) go into a markdown cell right after
    the parameters cell, so a reader of the report knows what was run.
    """
    import nbformat

    def tagged(tag: str) -> int | None:
        return next((i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])), None)

    idx = tagged("injected-parameters")
    if idx is None:
        idx = tagged("parameters")
    if idx is None:
        return
    lines = [ln for ln in nb.cells[idx].source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return
    text = "**Parameters of this run**\n\n```\n" + "\n".join(lines) + "\n```"
    nb.cells.insert(idx + 1, nbformat.v4.new_markdown_cell(text))


def _first_heading(nb: Any) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return None


# --------------------------------------------------------------------------- metrics for the index

_PREFERRED = ("accuracy", "f1", "auc", "precision", "recall", "specificity", "sensitivity", "bsi", "ece")


def notebook_metrics(notebook: str | os.PathLike[str]) -> dict[str, Any]:
    """Headline metrics a notebook displayed with :func:`record_metrics` (merged, in order)."""
    import nbformat

    try:
        nb = nbformat.read(Path(notebook), as_version=4)
    except Exception:
        return {}
    found: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data") or {}
            if METRICS_MIME in data and isinstance(data[METRICS_MIME], dict):
                found.update(data[METRICS_MIME])
    return found


def run_metrics(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """A batch run's headline metrics: its ``metrics.json``, else those its notebook displayed,
    else the ``metrics.json`` of a training run directory named in its parameters."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if path.exists():
        try:
            return _flatten(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            pass
    status = _read_json(run_dir / "status.json") or {}
    executed = status.get("executed")
    if executed and (run_dir / executed).exists():
        found = notebook_metrics(run_dir / executed)
        if found:
            return found
    params = status.get("parameters") or {}
    for key in ("run_dir", "run"):
        value = params.get(key)
        if isinstance(value, str) and value:
            from scintilab.paths import repo_path

            candidate = repo_path(value) / "metrics.json"
            if candidate.exists():
                try:
                    return _flatten(json.loads(candidate.read_text(encoding="utf-8")))
                except ValueError:
                    pass
    return {}


def headline(metrics: Mapping[str, Any], limit: int = 6) -> list[tuple[str, Any]]:
    """Up to ``limit`` numbers worth showing first: accuracy, F1, AUC, ... then the rest."""
    numeric = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]

    # CI bounds and per-class values are detail, not headline: shown only if room is left.
    def rank(item: tuple[str, Any]) -> tuple[int, int, int]:
        key = item[0].lower()
        detail = any(t in key for t in ("ci", "lower", "upper", "lo", "hi", "per_class"))
        pref = next((i for i, p in enumerate(_PREFERRED) if p in key), len(_PREFERRED))
        return (int(detail), pref, len(key))

    return sorted(numeric, key=rank)[:limit]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_index(out_root: str | os.PathLike[str], *, title: str = "scintilab runs") -> Path:
    """Write ``out_root/index.html``: every run folder with status, time and headline metrics.

    Args:
        out_root: the batch output folder (run folders hold ``status.json``).
        title: page title.

    Returns:
        The index path.
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    rows: list[str] = []
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    run_dirs = sorted(p.parent for p in out_root.glob("*/status.json"))
    run_dirs.sort(key=lambda d: ((_read_json(d / "status.json") or {}).get("started") or "~", d.name))
    for i, run_dir in enumerate(run_dirs, 1):
        st = _read_json(run_dir / "status.json") or {}
        state = str(st.get("status", "unknown"))
        counts[state] = counts.get(state, 0) + 1
        name = html.escape(run_dir.name)
        link = f"<a href='{name}/report.html'>{name}</a>" if (run_dir / "report.html").exists() else name
        files = []
        if st.get("executed") and (run_dir / st["executed"]).exists():
            files.append(f"<a href='{name}/{html.escape(st['executed'])}'>notebook</a>")
        files.append(f"<a href='{name}/params.json'>params</a>")
        params = st.get("parameters") or {}
        params_text = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in params.items())
        metrics = headline(run_metrics(run_dir))
        metrics_text = "<br>".join(f"{html.escape(k)}: <b>{html.escape(_fmt(v))}</b>" for k, v in metrics) or "&ndash;"
        note = ""
        if st.get("error"):
            err = st["error"]
            err_text = sanitize_text(f"{err.get('ename')}: {err.get('evalue')}")[:300]
            note = f"<div class='muted'>{html.escape(err_text)}</div>"
        elif st.get("reason"):
            note = f"<div class='muted'>{html.escape(sanitize_text(str(st['reason'])))}</div>"
        seconds = st.get("seconds")
        rows.append(
            "<tr>"
            f"<td>{i}</td><td>{link}<div class='muted'>{' &middot; '.join(files)}</div></td>"
            f"<td><code>{html.escape(sanitize_text(str(st.get('notebook', ''))))}</code></td>"
            f"<td class='{html.escape(state)}'>{html.escape(state)}{note}</td>"
            f"<td>{'' if seconds is None else f'{float(seconds):.0f} s'}</td>"
            f"<td>{metrics_text}</td>"
            f"<td class='muted'>{html.escape(sanitize_text(params_text))[:600]}</td>"
            "</tr>"
        )
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    phi = _read_json(out_root / "phi_check.json")
    phi_line = ""
    if phi:
        verdict = "clean" if not phi.get("hits") else f"{len(phi['hits'])} report(s) with identifiers!"
        phi_line = (
            f"<p>Identity check: <b class='{'ok' if not phi.get('hits') else 'failed'}'>{verdict}</b> "
            f"({phi.get('reports', 0)} reports searched for {phi.get('terms', 0)} identifiers "
            f"from the DICOM headers)</p>"
        )
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    body = (
        f"<h1>{html.escape(title)}</h1>"
        f"<p class='muted'>Generated {generated} &middot; {len(run_dirs)} runs: {summary}. "
        "Each run is a notebook executed by papermill; click a name for its report.</p>"
        f"{phi_line}"
        "<table><thead><tr><th>#</th><th>run</th><th>notebook</th><th>status</th><th>time</th>"
        "<th>headline metrics</th><th>parameters</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
    index = out_root / "index.html"
    index.write_text(html_page(title, body), encoding="utf-8")
    return index


# --------------------------------------------------------------------------- CLI


def cli_main(argv: list[str]) -> int:
    """``scintilab report OUT_DIR|NOTEBOOK.ipynb [--show-code] [--phi-check DICOM_DIR]``.

    For a batch folder: re-render every run's executed notebook, check the reports for
    identifiers from the given DICOM headers (``phi_check.json``), and write the index.
    For a notebook: render it to HTML beside it (or ``--out``).

    Returns:
        0 on success; 1 when identifiers were found or a report failed; 2 on bad input.
    """
    parser = argparse.ArgumentParser(prog="scintilab report", description=cli_main.__doc__.split("\n")[0])
    parser.add_argument("target", help="batch output folder (papermill_runs/out) or an executed .ipynb")
    parser.add_argument("--out", help="HTML file (for a single notebook)")
    parser.add_argument("--show-code", action="store_true", help="show code cells (default: report mode, hidden)")
    parser.add_argument(
        "--phi-check",
        metavar="DICOM_DIR",
        action="append",
        default=[],
        help="search the reports for identifiers from these DICOM headers; repeatable",
    )
    parser.add_argument("--no-render", action="store_true", help="only check and index existing reports")
    args = parser.parse_args(argv)
    target = Path(args.target)
    report_mode = not args.show_code
    failures = 0
    try:
        if target.suffix == ".ipynb":
            reports = [render_report(target, args.out, report_mode=report_mode)]
            print(f"scintilab report: wrote {reports[0]}")
        elif target.is_dir():
            if args.out:
                raise InputError(
                    Path(args.out),
                    "--out names the HTML of a single notebook; a batch folder's "
                    f"reports and index are written inside {target}",
                )
            reports = []
            for run_dir in sorted(p.parent for p in target.glob("*/status.json")):
                st = _read_json(run_dir / "status.json") or {}
                executed = st.get("executed")
                html_path = run_dir / "report.html"
                if not args.no_render and executed and (run_dir / executed).exists():
                    try:
                        render_report(
                            run_dir / executed, html_path, report_mode=bool(st.get("report_mode", report_mode))
                        )
                    except Exception as exc:  # one bad notebook must not stop the others
                        failures += 1
                        print(f"scintilab report: {run_dir.name}: {exc}", file=sys.stderr)
                        continue
                if html_path.exists():
                    reports.append(html_path)
        else:
            raise InputError(target, "not a batch output folder or a .ipynb file")
    except InputError as exc:
        print(f"scintilab report: {exc}", file=sys.stderr)
        return 2
    if args.phi_check:
        terms = phi_terms_from_dicom(args.phi_check)
        pages = list(reports)
        if target.is_dir():
            pages.append(write_index(target))  # the index shows parameters and errors: check it too
        hits = check_reports(pages, terms)
        if target.is_dir():
            (target / "phi_check.json").write_text(
                json.dumps(
                    {
                        "reports": len(pages),
                        "terms": len(terms),
                        # which report, never which identifier: the check must not leak what it finds
                        "hits": {Path(k).parent.name: len(v) for k, v in hits.items()},
                    },
                    indent=2,
                ),
                encoding="utf-8",
            )
        if hits:
            failures += 1
            for page, found in hits.items():
                print(
                    f"scintilab report: {Path(page).parent.name}/{Path(page).name}: "
                    f"{len(found)} patient identifier(s) found",
                    file=sys.stderr,
                )
        else:
            print(f"scintilab report: identity check clean ({len(pages)} pages, {len(terms)} identifiers)")
    if target.is_dir():
        index = write_index(target)
        print(f"scintilab report: open {index}")
    return 1 if failures else 0
