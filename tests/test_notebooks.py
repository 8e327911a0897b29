"""Every notebook in notebooks/: the agreed skeleton, its smoke parameters, and a real run.

For each ``notebooks/*.ipynb`` (nothing is faked for notebooks that do not exist yet):

1. **Skeleton** (fast): a level-1 title first; ``## Parameters`` holding exactly one code
   cell tagged ``parameters`` whose values are typed literals with a trailing comment;
   ``## Setup``; at least one work section; ``## Summary`` as the last level-2 heading;
   committed without outputs; no absolute paths in cells.
2. **Smoke metadata** (fast): ``metadata["scintilab"] = {"smoke": {...}, "needs": [...]}``;
   every smoke key is a declared parameter (papermill only warns about unknown names), and
   every need is a fixture this module provides.
3. **Run** (slow): the notebook is executed with papermill, smoke parameters injected, then
   ``pytest --nbval-lax`` re-executes the executed copy and compares the cells tagged
   ``nbval-check-output`` with the first run's outputs (sanitised by
   ``tests/nbval_sanitize.cfg``): deterministic summaries must come out the same twice.
   The executed notebook is also rendered as a report and searched for the identities in
   the cohort's DICOM headers.

How smoke parameters get their paths. Fixtures named in ``needs``:

* ``cohort_small``: a tiny synthetic cohort (``scintilab synth --size tiny``) + manifest;
* ``two_visit_cohort``: the same with two visits per patient (``--visits 2``);
* ``run_dir``: a finished tiny training run (quick preset, 128x32 input, width 8, 1 epoch)
  on ``cohort_small``.

Declared parameters with these names are filled automatically (smoke values with a
``{placeholder}`` win; other smoke values for these names are replaced, because a path
written in a notebook cannot point at a test's temp folder):
``data_dir`` (the cohort folder of the first cohort fixture needed), ``manifest`` (its
manifest.csv), ``run_dir``, ``runs_root`` (one folder shared by the session, so notebooks
that train-or-reuse share runs), ``out_dir``/``output_dir`` (a fresh temp folder).
Placeholders usable in smoke strings: ``{cohort_small}``, ``{cohort_small_manifest}``,
``{two_visit_cohort}``, ``{two_visit_cohort_manifest}``, ``{run_dir}``, ``{runs_root}``,
``{tmp}``.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from scintilab.paths import repo_root

from notebook_support import CohortFixture, smoke_metadata, smoke_parameters, tf_log_lines

ROOT = repo_root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")
FIXTURES = ("cohort_small", "two_visit_cohort", "run_dir")
_ABS_PATH = re.compile(r"""["'](/(work|home|tmp|mnt|Users|root|data|srv)/|[A-Za-z]:\\)""")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _headings(nb: nbformat.NotebookNode) -> list[tuple[int, int, str]]:
    """(cell index, level, text) of every markdown heading, in order."""
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            m = re.match(r"^(#{1,6})\s+(.*\S)", line)
            if m:
                out.append((i, len(m.group(1)), m.group(2).strip()))
    return out


def skeleton_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What the notebook lacks of the skeleton in docs/CONVENTIONS.md (empty when fine)."""
    problems: list[str] = []
    cells = nb.cells
    if not cells or cells[0].cell_type != "markdown" or not re.match(r"^#\s+\S", cells[0].source):
        problems.append("the first cell must be markdown starting with a level-1 title ('# ...')")
    else:
        has_text = len(cells[0].source.strip().splitlines()) > 1
        next_is_text = (
            len(cells) > 1 and cells[1].cell_type == "markdown" and not cells[1].source.lstrip().startswith("#")
        )
        if not (has_text or next_is_text):
            problems.append("the title needs a purpose (a sentence under it)")
    heads = [(i, t) for i, lvl, t in _headings(nb) if lvl == 2]
    names = [t.lower() for _, t in heads]
    for required in ("parameters", "setup", "summary"):
        if required not in names:
            problems.append(f"missing '## {required.capitalize()}' heading")
    if names and names[-1] != "summary":
        problems.append(f"the last '##' heading must be Summary, not {heads[-1][1]!r}")
    if "parameters" in names and "setup" in names and "summary" in names:
        ip, is_, iz = names.index("parameters"), names.index("setup"), len(names) - 1
        if not ip < is_ < iz:
            problems.append("headings must come in the order Parameters, Setup, ..., Summary")
        elif iz - is_ < 2:
            problems.append("no work section ('## ...') between Setup and Summary")
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"expected exactly one cell tagged 'parameters', found {len(tagged)}")
    else:
        idx = tagged[0]
        if cells[idx].cell_type != "code":
            problems.append("the 'parameters' cell must be a code cell")
        section = [t.lower() for i, t in heads if i < idx]
        if not section or section[-1] != "parameters":
            problems.append("the 'parameters' cell must sit under '## Parameters'")
        try:
            tree = ast.parse(cells[idx].source)
        except SyntaxError as exc:
            problems.append(f"the parameters cell does not parse: {exc}")
            tree = None
        if tree is not None:
            for node in tree.body:
                if not isinstance(node, ast.AnnAssign):
                    problems.append(f"parameters cell line {node.lineno}: use 'name: type = literal  # comment'")
                    continue
                try:
                    ast.literal_eval(node.value) if node.value is not None else None
                except ValueError:
                    problems.append(
                        f"parameter {ast.unparse(node.target)!r}: default must be a literal "
                        "(derived values go in the next cell)"
                    )
        nb_params = _inspect(nb) if tree is not None else {}
        assigned = [
            ast.unparse(n.target) for n in (tree.body if tree is not None else []) if isinstance(n, ast.AnnAssign)
        ]
        for name in assigned:
            if name not in nb_params:
                # papermill's line parser drops a parameter whose trailing comment holds '='
                problems.append(
                    f"parameter {name!r} is invisible to papermill.inspect_notebook (an '=' in its comment?)"
                )
        for name, info in nb_params.items():
            if not (info.get("help") or "").strip():
                problems.append(f"parameter {name!r} has no trailing '# comment' saying what it is")
    if not (nb.metadata.get("kernelspec") or {}).get("name"):
        problems.append("no kernelspec in the notebook metadata (papermill and nbval need one)")
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"cell {i} has outputs: commit notebooks without outputs")
            break
    for i, cell in enumerate(cells):
        if _ABS_PATH.search(cell.source):
            problems.append(f"cell {i} has an absolute path: use paths relative to the repo")
    return problems


def _inspect(nb: nbformat.NotebookNode) -> dict:
    """papermill.inspect_notebook on an in-memory notebook (it wants a file)."""
    import tempfile

    import papermill

    nb = nbformat.from_dict(nb)  # a copy: a missing kernelspec is reported, not patched in place
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    with tempfile.TemporaryDirectory(prefix="scintilab-inspect-") as d:
        path = Path(d) / "nb.ipynb"
        nbformat.write(nb, path)
        return papermill.inspect_notebook(str(path))


# --------------------------------------------------------------------------- fast checks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_skeleton(path: Path) -> None:
    problems = skeleton_problems(_read(path))
    assert not problems, f"{path.name}:\n  - " + "\n  - ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_smoke_overrides_name_declared_parameters(path: Path) -> None:
    import papermill

    nb = _read(path)
    assert "scintilab" in nb.metadata and "smoke" in nb.metadata["scintilab"], (
        f"{path.name}: notebook metadata needs scintilab.smoke (see docs/CONVENTIONS.md)"
    )
    smoke, needs = smoke_metadata(nb)
    declared = papermill.inspect_notebook(str(path))
    unknown = sorted(set(smoke) - set(declared))
    assert not unknown, f"{path.name}: smoke overrides {unknown} are not parameters (declared: {sorted(declared)})"
    bad_needs = sorted(set(needs) - set(FIXTURES))
    assert not bad_needs, f"{path.name}: needs {bad_needs} unknown; fixtures are {FIXTURES}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_has_a_checked_summary_cell(path: Path) -> None:
    """nbval-lax compares only tagged cells: without one, determinism is never checked."""
    tagged = [c for c in _read(path).cells if "nbval-check-output" in c.get("metadata", {}).get("tags", [])]
    assert tagged, (
        f"{path.name}: tag at least one deterministic summary cell 'nbval-check-output' "
        "(cell metadata tags), so the test suite checks it comes out the same twice"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_every_cell_has_its_own_id(path: Path) -> None:
    """nbformat 4.5 cell ids, as stored (nbformat only warns on reading, and will refuse)."""
    import json

    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    ids = [c.get("id") for c in cells]
    assert None not in ids, f"{path.name}: cells {[i for i, x in enumerate(ids) if x is None]} have no id"
    assert len(set(ids)) == len(ids), f"{path.name}: repeated cell ids"


def test_skeleton_check_catches_a_broken_notebook() -> None:
    """The checker itself can fail: a notebook violating each rule gets each complaint."""
    nb = nbformat.v4.new_notebook()
    p1 = nbformat.v4.new_code_cell("epochs = 3\nx: int = 1")
    p1.metadata["tags"] = ["parameters"]
    p2 = nbformat.v4.new_code_cell("y: int = 2  # another")
    p2.metadata["tags"] = ["parameters"]
    out = nbformat.v4.new_code_cell("print('/work/main/data')", outputs=[nbformat.v4.new_output("stream", text="x")])
    nb.cells = [
        nbformat.v4.new_markdown_cell("## No title"),
        p1,
        p2,
        nbformat.v4.new_markdown_cell("## Summary"),
        nbformat.v4.new_markdown_cell("## Setup"),
        out,
    ]
    text = "\n".join(skeleton_problems(nb))
    for expected in (
        "level-1 title",
        "missing '## Parameters'",
        "last '##' heading must be Summary",
        "exactly one cell tagged 'parameters'",
        "has outputs",
        "absolute path",
    ):
        assert expected in text, expected
    assert "no kernelspec" in text
    good = nbformat.v4.new_notebook()
    good.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('preset: str = "quick"  # training preset\nepochs: int = 1  # epochs')
    params.metadata["tags"] = ["parameters"]
    good.cells = [
        nbformat.v4.new_markdown_cell("# Title\nWhat it is for."),
        nbformat.v4.new_markdown_cell("## Parameters"),
        params,
        nbformat.v4.new_markdown_cell("## Setup"),
        nbformat.v4.new_code_cell("import scintilab"),
        nbformat.v4.new_markdown_cell("## Work"),
        nbformat.v4.new_code_cell("1 + 1"),
        nbformat.v4.new_markdown_cell("## Summary\nDone."),
    ]
    assert skeleton_problems(good) == []
    params.source = 'preset: str = "quick"  # training preset (empty = default)'
    assert "invisible to papermill" in "\n".join(skeleton_problems(good))
    params.source = 'preset = "quick"  # training preset'
    assert "use 'name: type = literal" in "\n".join(skeleton_problems(good))


# --------------------------------------------------------------------------- fixtures


# --------------------------------------------------------------------------- the run


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_under_papermill_and_nbval(
    path: Path, request, tmp_path: Path, runs_root: Path, monkeypatch
) -> None:
    import papermill

    from scintilab import reports

    nb = _read(path)
    _, needs = smoke_metadata(nb)
    fixtures = {name: request.getfixturevalue(name) for name in needs if name in FIXTURES}
    params = smoke_parameters(path, fixtures, tmp_path, runs_root)
    cohort = next((f for f in fixtures.values() if isinstance(f, CohortFixture)), None)
    if cohort is not None:
        monkeypatch.setenv("SCINTILAB_DATA", str(cohort.data_dir))
    monkeypatch.setenv(reports.RUN_OUT_ENV, str(tmp_path / "run_out"))
    # A kernel started under pytest does not forward its fd 2 into the notebook (ipykernel
    # checks PYTEST_CURRENT_TEST); without it the kernel runs as a user's does.
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    executed = tmp_path / path.name
    papermill.execute_notebook(
        str(path), str(executed), parameters=params, cwd=str(tmp_path), progress_bar=False, kernel_name="python3"
    )

    # Shared reports carry no TensorFlow log noise (issue 26; scintilab.kernel_logs).
    noise = tf_log_lines(_read(executed))
    assert not noise, f"{path.name}: {len(noise)} TensorFlow log line(s) in the outputs, e.g. {noise[0]!r}"

    # What is rendered carries none of the identities written into the cohort's headers.
    html_path = reports.render_report(executed, tmp_path / "report.html", report_mode=True)
    cohorts = [f for f in fixtures.values() if isinstance(f, CohortFixture)]
    if cohorts:
        terms = reports.phi_terms_from_dicom([c.dicom_dir for c in cohorts])
        leaked = reports.scan_for_phi(html_path.read_text(encoding="utf-8"), terms)
        assert not leaked, f"{path.name}: the report shows {len(leaked)} patient identifier(s)"

    # nbval-lax re-executes the executed copy: cells tagged nbval-check-output must match.
    env = dict(os.environ)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            str(SANITIZE),
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
            str(executed),
        ],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, f"nbval-lax failed for {path.name}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
