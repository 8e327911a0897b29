"""The explorers as a clinician uses them: JupyterLab in a real browser (issue 28).

A JupyterLab server runs on localhost with a token; Playwright drives Debian's Chromium
(``executable_path``: nothing downloads a browser). Each notebook holding an explorer is
opened on the tiny test cohorts (its smoke parameters injected by papermill, not executed
by it), every cell is run in the browser's kernel, and for each explorer: its controls
render (no "Error displaying widget", no JavaScript error), moving one control changes
what it shows, and a screenshot is saved (``SCINTILAB_SCREENSHOTS=docs/screenshots`` also
writes the README's). The server and the browser stop at the end, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scintilab.paths import repo_root

from notebook_support import CohortFixture, read_notebook, smoke_metadata, smoke_parameters

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no Chromium: the browser tests need Debian's chromium (apt-get install chromium; .ci/run installs it)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Locator, Page, sync_playwright  # noqa: E402


@dataclass(frozen=True)
class Explorer:
    """One explorer: the text that builds it in its cell, and the control a user moves."""

    notebook: str
    builds: str
    control: str  # "select", "toggle", "slider" or "checkbox"
    name: str


EXPLORERS = [
    Explorer("00b_cohort_audit", "AuditExplorer(", "select", "audit"),
    Explorer("01_view_fusion", "FusionExplorer(", "select", "fusion"),
    Explorer("02_augmentation_tuning", "AugmentExplorer(", "slider", "augmentation"),
    Explorer("04_evaluation", "PredictionsExplorer(", "toggle", "predictions"),
    Explorer("08_lesion_statistics", "LesionExplorer(", "toggle", "lesions"),
    Explorer("09_quantification", "ReportViewer(", "checkbox", "report_viewer"),
    Explorer("09_quantification", "FollowupExplorer(", "select", "followup"),
]
NOTEBOOKS = sorted({e.notebook for e in EXPLORERS})
RUN_TIMEOUT_S = 600
TOKEN = "scintilab-browser-test"


@dataclass
class Lab:
    base: str
    root: Path
    browser: Browser
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory, runs_root: Path) -> Iterator[Lab]:
    """A JupyterLab server over the explorer notebooks, parameterised for the test cohorts."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    cohorts: list[CohortFixture] = []
    for name in NOTEBOOKS:
        src = repo_root() / "notebooks" / f"{name}.ipynb"
        nb = read_notebook(src)
        _, needs = smoke_metadata(nb)
        fixtures = {n: request.getfixturevalue(n) for n in needs}
        cohorts += [f for f in fixtures.values() if isinstance(f, CohortFixture)]
        params = smoke_parameters(src, fixtures, root / f"tmp_{name}", runs_root)
        nbformat.write(parameterize_notebook(load_notebook_node(str(src)), params), root / "notebooks" / src.name)
    settings = root / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell in the page (no windowing), so a cell's outputs can be found and photographed
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    (root / "settings" / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (root / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONHASHSEED": "0",
        "SCINTILAB_DATA": str(cohorts[0].data_dir) if cohorts else os.environ.get("SCINTILAB_DATA", ""),
        "SCINTILAB_RUN_OUT": str(root / "run_out"),
    }
    port = _free_port()
    log = root / "jupyterlab.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={root}",
                "--LabApp.expose_app_in_browser=True",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],  # CI containers run as root
            cwd=root,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    pw = browser = None
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={TOKEN}", proc, log)
        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield Lab(base, root, browser, log)
    finally:
        if browser is not None:
            browser.close()
        if pw is not None:
            pw.stop()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_STATE_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  for (const c of cells) {
    const o = c.model.outputs;
    for (let i = 0; i < o.length; i++) {
      const j = o.get(i).toJSON();
      if (j.output_type === 'error') errors.push(j.ename + ': ' + j.evalue);
    }
  }
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  const ran = cells.filter(c => c.model.executionCount !== null).length;
  return {ran, n: cells.length, errors, idle: !!k && k.status === 'idle'};
}"""

_MARK_JS = """(builds) => {
  const w = window.jupyterapp.shell.currentWidget;
  const i = w.content.widgets.findIndex(c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(builds));
  if (i < 0) return false;
  w.content.widgets[i].node.setAttribute('data-explorer', builds);
  return true;
}"""


# What the explorer's figures show, as a fingerprint: the pixels of every image (matplotlib
# PNGs, Image widgets) and the SVG of every Plotly plot; the controls are left out.
_FIGURE_JS = """(box) => {
  const parts = [];
  box.querySelectorAll('img').forEach(i => parts.push(i.currentSrc || i.src));
  box.querySelectorAll('.js-plotly-plot .main-svg').forEach(s => parts.push(s.outerHTML));
  let h = 0;
  for (const p of parts) { for (let i = 0; i < p.length; i++) { h = (h * 31 + p.charCodeAt(i)) | 0; } }
  return {n: parts.length, hash: h};
}"""


def _open_and_run(page: Page, lab: Lab, notebook: str) -> None:
    # a workspace of its own, reset: no tab (and no kernel) of an earlier notebook comes back
    page.goto(f"{lab.base}/lab/workspaces/{notebook}/tree/notebooks/{notebook}.ipynb?reset&token={TOKEN}")
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
        "&& window.jupyterapp.shell.currentWidget.sessionContext",
        timeout=120_000,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count():  # "Select Kernel": take the notebook's own (python3)
            accept.first.click()
        if page.evaluate(
            "() => { const s = window.jupyterapp.shell.currentWidget.sessionContext.session; "
            "return !!(s && s.kernel && s.kernel.status === 'idle'); }"
        ):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"{notebook}: no idle kernel after 120 s")
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    state: dict = {}
    while time.monotonic() < deadline:
        time.sleep(1.0)
        state = page.evaluate(_STATE_JS)
        assert not state["errors"], f"{notebook}: a cell failed in the browser's kernel: {state['errors']}"
        if state["ran"] == state["n"] and state["idle"]:
            return
    raise AssertionError(f"{notebook}: {state.get('ran')} of {state.get('n')} cells ran in {RUN_TIMEOUT_S} s")


def _move(cell: Locator, control: str) -> None:
    """Move one control the way a user would (mouse or keyboard)."""
    if control == "select":
        select = cell.locator(".widget-dropdown select").first
        n = select.locator("option").count()
        assert n >= 2, "the dropdown offers one choice only"
        current = select.evaluate("s => s.selectedIndex")
        select.select_option(index=(current + 1) % n)
    elif control == "toggle":
        buttons = cell.locator(".widget-toggle-button")
        assert buttons.count() >= 2
        buttons.nth(1).click()
    elif control == "slider":
        handle = cell.locator(".noUi-handle").first
        handle.focus()
        for _ in range(3):
            handle.press("ArrowRight")
    elif control == "checkbox":
        cell.locator(".widget-checkbox input[type=checkbox]").first.click()
    else:  # pragma: no cover - a typo in EXPLORERS
        raise ValueError(control)


def _settled_shot(area: Locator, path: Path, tries: int = 20) -> bytes:
    """A screenshot of ``area`` once two in a row agree (figures draw in steps)."""
    last = area.screenshot()
    for _ in range(tries):
        time.sleep(0.5)
        shot = area.screenshot()
        if shot == last:
            break
        last = shot
    path.write_bytes(last)
    return last


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_explorers_render_and_answer_a_control_in_jupyterlab(lab: Lab, notebook: str, tmp_path: Path) -> None:
    page = lab.browser.new_page(viewport={"width": 1400, "height": 2200})  # tall explorers fit whole
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    try:
        _open_and_run(page, lab, notebook)
        for ex in (e for e in EXPLORERS if e.notebook == notebook):
            assert page.evaluate(_MARK_JS, ex.builds), f"{notebook}: no cell builds {ex.builds}"
            cell = page.locator(f'[data-explorer="{ex.builds}"]')
            cell.scroll_into_view_if_needed()
            widgets = cell.locator(".jp-OutputArea-output .jupyter-widgets")
            widgets.first.wait_for(state="visible", timeout=60_000)
            text = cell.inner_text()
            assert "Error displaying widget" not in text and "Loading widget" not in text, f"{ex.name}: {text[:300]}"
            explorer = cell.locator(".widget-vbox").first  # the explorer's box: controls and figure
            _settled_shot(explorer, tmp_path / f"{ex.name}_before.png")
            before = explorer.evaluate(_FIGURE_JS)
            _move(cell, ex.control)
            deadline = time.monotonic() + 90
            after = before
            while after == before and time.monotonic() < deadline:
                time.sleep(1.0)
                after = explorer.evaluate(_FIGURE_JS)
            assert after["n"] > 0, f"{ex.name}: no figure drawn after moving the {ex.control}"
            assert after != before, f"{ex.name}: moving the {ex.control} changed nothing in the figure"
            whole = tmp_path / f"{ex.name}_explorer.png"  # as the user sees it
            _settled_shot(explorer, whole)
            keep = os.environ.get("SCINTILAB_SCREENSHOTS")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(whole, Path(keep) / f"explorer_{ex.name}.png")
        real = [p for p in problems if "favicon" not in p]
        assert not real, f"{notebook}: JavaScript errors in the page:\n" + "\n".join(real[:10])
    finally:
        page.screenshot(path=str(tmp_path / f"{notebook}_page.png"), full_page=False)
        # stop this notebook's kernel: the next notebook gets the machine to itself
        page.evaluate(
            "async () => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget; "
            "if (w && w.sessionContext) { await w.sessionContext.shutdown(); } }"
        )
        page.close()
