"""HTML reports: offline plotly, report mode, sanitising, the index, headless Chromium, PHI.

Notebooks here are throwaway ones written into tmp folders and executed for real with
papermill; the browser test uses Debian's ``chromium`` (``apt-get install chromium``) and
skips, saying so, where it is absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest

from scintilab import reports
from scintilab.paths import repo_root

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CODE_TOKEN = "ZZ_CODE_ONLY_TOKEN"


def _nb(cells: list, params: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Report test\nA throwaway notebook."),
        nbformat.v4.new_markdown_cell("## Parameters"),
        p,
        nbformat.v4.new_markdown_cell("## Setup"),
    ]
    nb.cells += [
        nbformat.v4.new_code_cell(c) if not c.startswith("#") else nbformat.v4.new_markdown_cell(c) for c in cells
    ]
    nb.cells.append(nbformat.v4.new_markdown_cell("## Summary\nThe end."))
    return nb


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> Path:
    """A notebook with a plotly figure, a matplotlib figure, metrics and absolute paths, executed."""
    d = tmp_path_factory.mktemp("report")
    nb = _nb(
        [
            "import matplotlib.pyplot as plt\nimport plotly.graph_objects as go\nfrom scintilab import reports\n"
            "reports.setup_plotly()",
            "## Figures",
            f"{CODE_TOKEN} = 1\ngo.Figure(go.Bar(x=['NoMet', 'ADMet', 'nADMet'], y=[n, 2 * n, 3]), "
            "layout_title_text='class counts').show()",
            "go.Figure(go.Scatter(y=[1, 3, 2], mode='lines+markers')).show()",
            "fig, ax = plt.subplots(figsize=(4, 2))\nax.plot([0, 1, 4, 9], color='tab:red')\nplt.show()",
            "from pathlib import Path\nprint('cwd is', Path.cwd().resolve())\n"
            f"print('repo file', {str(repo_root() / 'data' / 'x.dcm')!r})",
            "reports.record_metrics({'accuracy': 0.75, 'macro': {'f1': 0.5}}, out_dir='.')",
        ],
        "n: int = 4  # bar height",
    )
    src = d / "source.ipynb"
    nbformat.write(nb, src)
    out = d / "executed.ipynb"
    papermill.execute_notebook(str(src), str(out), parameters={"n": 5}, progress_bar=False, cwd=str(d))
    return out


# --------------------------------------------------------------------------- sanitising


def test_sanitize_text_hides_absolute_paths_keeps_the_rest() -> None:
    root = str(repo_root())
    text = (
        f"{root}/data/synthetic_small/manifest.csv and /tmp/pytest-7/cohort/Doe_John/a.dcm, "
        "/mnt/pacs/export/JOHN_DOE_123/IM0001 and C:\\Users\\doe\\scan.dcm; "
        "relative data/synthetic_small/dicom kept, 3/4 kept, counts/s kept, https://example.org/a/b kept"
    )
    out = reports.sanitize_text(text)
    assert "$REPO/data/synthetic_small/manifest.csv" in out
    assert "Doe_John" not in out and "JOHN_DOE_123" not in out and out.count("[path]") == 3
    assert "Users" not in out
    for kept in ("data/synthetic_small/dicom", "3/4", "counts/s", "https://example.org/a/b"):
        assert kept in out
    assert root not in out and "/mnt/pacs" not in out
    # An explicit cohort folder outside the repo is named, not shown.
    assert reports.sanitize_text("/srv/cohorts/site1/x.dcm", ["/srv/cohorts/site1"]) == "$DATA/x.dcm"


# --------------------------------------------------------------------------- rendering


def test_report_is_self_contained_with_plotly_once_and_code_hidden(executed: Path, tmp_path: Path) -> None:
    html_path = reports.render_report(executed, tmp_path / "r.html", report_mode=True)
    page = html_path.read_text(encoding="utf-8")
    marker = reports.plotly_js()[:200]
    assert page.count(marker) == 1, "plotly.js must be embedded exactly once"
    assert page.count("Plotly.newPlot") == 2 and 'require(["plotly"]' not in page
    assert "<script src=" not in page and 'rel="stylesheet" href="http' not in page  # nothing fetched
    assert "data:image/png;base64" in page  # the matplotlib figure is embedded
    assert CODE_TOKEN not in page  # report mode hides code
    assert "n = 5" in page  # ... but says what was run
    assert str(repo_root()) not in page and str(tmp_path.parent) not in page
    assert "$REPO/data/x.dcm" in page and "cwd is [path]" in page
    code_page = reports.render_report(executed, tmp_path / "c.html", report_mode=False).read_text(encoding="utf-8")
    assert CODE_TOKEN in code_page
    assert reports.notebook_metrics(executed) == {"accuracy": 0.75, "macro.f1": 0.5}


def test_index_lists_runs_with_status_and_metrics(executed: Path, tmp_path: Path) -> None:
    run = tmp_path / "out" / "demo-run"
    run.mkdir(parents=True)
    (run / "status.json").write_text(
        json.dumps(
            {
                "status": "ok",
                "notebook": "notebooks/x.ipynb",
                "seconds": 12.3,
                "executed": "executed.ipynb",
                "parameters": {"n": 5},
                "started": "2026-01-01T00:00:00",
            }
        )
    )
    (run / "executed.ipynb").write_bytes(executed.read_bytes())
    reports.render_report(run / "executed.ipynb", run / "report.html")
    failed = tmp_path / "out" / "broken-run"
    failed.mkdir()
    (failed / "status.json").write_text(
        json.dumps(
            {
                "status": "failed",
                "notebook": "notebooks/y.ipynb",
                "error": {"ename": "ValueError", "evalue": "bad value"},
                "started": "2026-01-01T00:01:00",
            }
        )
    )
    page = reports.write_index(tmp_path / "out").read_text()
    assert "href='demo-run/report.html'" in page and "accuracy: <b>0.75</b>" in page
    assert "class='failed'" in page and "ValueError: bad value" in page
    assert page.index("demo-run") < page.index("broken-run")  # in the order the runs started
    assert reports.headline({"accuracy.ci_low": 0.1, "loss": 2.0, "macro.f1": 0.4, "accuracy": 0.7})[:2] == [
        ("accuracy", 0.7),
        ("macro.f1", 0.4),
    ]


# --------------------------------------------------------------------------- browser


@pytest.mark.browser
@pytest.mark.skipif(
    reports.find_chromium() is None,
    reason="headless Chromium not installed (Debian: apt-get install -y chromium; .ci/run does it)",
)
def test_report_renders_in_headless_chromium(executed: Path, tmp_path: Path) -> None:
    from PIL import Image

    html_path = reports.render_report(executed, tmp_path / "report.html", report_mode=True)
    png = tmp_path / "report.png"
    dom = reports.chromium_render(html_path, screenshot=png, window=(1200, 2000))
    # Plotly ran offline and drew both figures (SVG roots exist only after Plotly.newPlot).
    assert dom.count('class="plot-container plotly"') == 2
    assert dom.count("main-svg") >= 2 and "js-plotly-plot" in dom
    assert "class counts" in dom and "NoMet" in dom
    img = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert img.shape == (2000, 1200)
    assert img.std() > 5 and (img < 128).mean() > 0.002, "screenshot is blank"
    # The index page loads too.
    index_dir = tmp_path / "out"
    (index_dir / "r1").mkdir(parents=True)
    (index_dir / "r1" / "status.json").write_text(json.dumps({"status": "ok", "notebook": "n.ipynb"}))
    assert ">r1<" in reports.chromium_render(reports.write_index(index_dir))


# --------------------------------------------------------------------------- identity


PLANTED_NAME = "Planted^Name"
PLANTED_ID = "PLANTED123"


@pytest.fixture(scope="module")
def planted_cohort(tmp_path_factory) -> Path:
    """Two studies whose DICOM headers (and the folder of one) carry a planted identity."""
    from scintilab.dicomio import write_study

    root = tmp_path_factory.mktemp("phi")
    rng = np.random.default_rng(0)
    for i in range(2):
        folder = root / "dicom" / f"{PLANTED_ID}_case{i}"  # exports often name folders by patient
        write_study(
            folder,
            rng.poisson(5, (128, 32)).astype(np.uint16),
            rng.poisson(5, (128, 32)).astype(np.uint16),
            stem=f"study{i}",
            patient_id=f"{PLANTED_ID}" if i == 0 else f"{PLANTED_ID}B",
            patient_name=PLANTED_NAME,
            study_id=f"{PLANTED_ID}S{i}",
            birth_date="19410203",
            accession_number=f"ACC{PLANTED_ID}{i}",
        )
    return root


def test_no_patient_identity_in_rendered_html(planted_cohort: Path, tmp_path: Path) -> None:
    terms = reports.phi_terms_from_dicom([planted_cohort / "dicom"])
    assert {PLANTED_NAME, "Planted Name", PLANTED_ID, "19410203", "1941-02-03"} <= terms
    nb = _nb(
        [
            "from pathlib import Path\nimport pandas as pd\nfrom scintilab.ingest import ingest\nfrom scintilab.dicomio import read_study",
            "result = ingest(Path(data_dir) / 'dicom', progress=False)\nresult.manifest",
            "files = sorted(Path(data_dir).rglob('*.dcm'))\nstudy = read_study([files[0]])\n"
            "print(study.study_key, study.patient_key, study.anterior.shape)\n"
            "print('careless absolute path:', files[0].resolve())",
            "if leak:\n    import pydicom\n    print('LEAK', pydicom.dcmread(files[0]).PatientName)",
        ],
        'data_dir: str = "data"  # cohort\nleak: bool = False  # negative control',
    )
    src = tmp_path / "phi.ipynb"
    nbformat.write(nb, src)
    pages = {}
    for leak in (False, True):
        out = tmp_path / f"phi_{leak}.ipynb"
        papermill.execute_notebook(
            str(src),
            str(out),
            progress_bar=False,
            cwd=str(tmp_path),
            parameters={"data_dir": str(planted_cohort), "leak": leak},
        )
        for mode in (True, False):
            pages[(leak, mode)] = reports.render_report(out, tmp_path / f"phi_{leak}_{mode}.html", report_mode=mode)
    executed_text = (tmp_path / "phi_False.ipynb").read_text()
    assert "S-" in executed_text and "careless absolute path" in executed_text
    assert PLANTED_ID in executed_text  # the raw notebook has the folder name: the HTML must not
    for mode in (True, False):
        clean = pages[(False, mode)].read_text(encoding="utf-8")
        assert reports.scan_for_phi(clean, terms) == [], f"identity leaked (report_mode={mode})"
        assert "careless absolute path: [path]" in clean
    # Negative control: a notebook that prints the name is caught, so the check can fail.
    assert PLANTED_NAME in reports.scan_for_phi(pages[(True, True)].read_text(encoding="utf-8"), terms)
    hits = reports.check_reports([pages[(False, True)], pages[(True, True)]], terms)
    assert list(hits) == [str(pages[(True, True)])]
    # `scintilab report OUT --phi-check DICOM_DIR`: names the leaking run, never the identifier.
    out_root = tmp_path / "batch"
    for name, page in (("clean-run", pages[(False, True)]), ("leaky-run", pages[(True, True)])):
        (out_root / name).mkdir(parents=True)
        (out_root / name / "report.html").write_bytes(page.read_bytes())
        (out_root / name / "status.json").write_text(json.dumps({"status": "ok", "notebook": "phi.ipynb"}))
    assert reports.cli_main([str(out_root), "--no-render", "--phi-check", str(planted_cohort / "dicom")]) == 1
    record = json.loads((out_root / "phi_check.json").read_text())
    assert set(record["hits"]) == {"leaky-run"} and record["reports"] == 3  # two reports and the index
    assert PLANTED_ID not in json.dumps(record) and "Planted" not in json.dumps(record)
    index = (out_root / "index.html").read_text()
    assert "Identity check" in index and "1 report(s) with identifiers" in index
