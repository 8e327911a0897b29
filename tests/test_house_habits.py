"""The pre-commit hooks do what the README says: notebooks lose outputs and keep their tags; Python is formatted.

The hooks run for real (``pre-commit run``) in a throwaway git repository holding this
project's ``.pre-commit-config.yaml`` and ``pyproject.toml``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    if not (VENV / "bin" / "pre-commit").exists() or shutil.which("git") is None:
        pytest.skip("pre-commit (the test extra) or git is missing: make venv installs pre-commit")
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / ".pre-commit-config.yaml", root)
    shutil.copy(ROOT / "pyproject.toml", root)
    (root / ".venv").symlink_to(VENV)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def _run_hooks(root: Path, *files: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(root.parent / "pre-commit-home"), "SKIP": ""}
    subprocess.run(["git", "add", *files], cwd=root, check=True)
    return subprocess.run(
        [str(VENV / "bin" / "pre-commit"), "run", "--files", *files],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_hooks_strip_outputs_keep_tags_and_format_python(repo: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"duration": 1.0}
    params = nbformat.v4.new_code_cell(
        "x = 1", execution_count=3, outputs=[nbformat.v4.new_output("stream", text="1\n")]
    )
    params.metadata.update(tags=["parameters"], papermill={"status": "completed"})
    checked = nbformat.v4.new_code_cell(
        "print(x)", execution_count=4, outputs=[nbformat.v4.new_output("stream", text="1\n")]
    )
    checked.metadata["tags"] = ["nbval-check-output", "nbval-skip"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), params, checked]
    nbformat.write(nb, repo / "notebooks" / "t.ipynb")
    (repo / "bad.py").write_text("import os\nx = {  'a':1 }\nprint(os.sep, x)\n")

    done = _run_hooks(repo, "notebooks/t.ipynb", "bad.py")
    assert done.returncode == 1, done.stdout + done.stderr  # files were changed: the commit stops
    out = nbformat.read(repo / "notebooks" / "t.ipynb", as_version=4)
    code = [c for c in out.cells if c.cell_type == "code"]
    assert [c.outputs for c in code] == [[], []] and [c.execution_count for c in code] == [None, None]
    assert code[0].metadata.get("tags") == ["parameters"]
    assert code[1].metadata.get("tags") == ["nbval-check-output", "nbval-skip"]
    assert "papermill" not in out.metadata and "papermill" not in code[0].metadata
    assert (repo / "bad.py").read_text() == 'import os\n\nx = {"a": 1}\nprint(os.sep, x)\n'

    again = _run_hooks(repo, "notebooks/t.ipynb", "bad.py")
    assert again.returncode == 0, again.stdout + again.stderr  # clean files pass


def test_the_committed_notebooks_pass_the_hooks_unchanged(repo: Path) -> None:
    names = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    for name in names:
        shutil.copy(ROOT / "notebooks" / name, repo / "notebooks" / name)
    done = _run_hooks(repo, *[f"notebooks/{n}" for n in names])
    assert done.returncode == 0, done.stdout + done.stderr
    for name in names:
        assert (repo / "notebooks" / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes(), name


def test_no_merge_conflict_markers_are_committed() -> None:
    # Merged branches are how parallel work lands; a half-resolved merge must not.
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    markers = ("<" * 7 + " ", "=" * 7 + "\n", ">" * 7 + " ")
    found = []
    for name in listed:
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".svg", ".toml", ".yaml", ".yml", ".ipynb", ".cfg", ".txt"}:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True), 1):
            if line.startswith(markers):
                found.append(f"{name}:{n}")
    assert not found, f"merge conflict markers: {found}"
