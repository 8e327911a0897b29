"""Packaging checks: environment.yml agrees with pyproject.toml; notebooks keep their tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> dict[str, Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = list(data["project"]["dependencies"]) + list(data["project"]["optional-dependencies"]["test"])
    return {canonicalize_name(r.name): r for r in map(Requirement, reqs)}


def _environment_requirements() -> tuple[dict[str, Requirement], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_reqs: list[str] = []
    conda: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_reqs += dep.get("pip", [])
        else:
            conda.append(str(dep))
    reqs = {}
    for line in pip_reqs:
        if line.startswith("-e") or line.startswith("."):
            continue  # the project itself
        req = Requirement(line)
        reqs[canonicalize_name(req.name)] = req
    return reqs, conda


def test_environment_yml_lists_the_same_packages_as_pyproject() -> None:
    py = _pyproject_requirements()
    env, _ = _environment_requirements()
    assert set(env) == set(py), (
        f"only in pyproject: {sorted(set(py) - set(env))}; only in environment.yml: {sorted(set(env) - set(py))}"
    )


def test_environment_yml_uses_the_same_version_specifiers_and_markers() -> None:
    py = _pyproject_requirements()
    env, _ = _environment_requirements()
    for name, req in py.items():
        assert str(env[name].specifier) == str(req.specifier), f"{name}: {env[name].specifier} vs {req.specifier}"
        assert str(env[name].marker or "") == str(req.marker or ""), f"{name}: markers differ"


def test_environment_yml_installs_the_project_and_only_python_from_conda() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lines = [line for dep in env["dependencies"] if isinstance(dep, dict) for line in dep.get("pip", [])]
    assert "-e ." in pip_lines
    _, conda = _environment_requirements()
    # Anything else from conda would be a second, unchecked source of dependencies.
    assert {c.split(">")[0].split("=")[0].split("<")[0].strip() for c in conda} <= {"python", "pip"}
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    python = next(c for c in conda if c.startswith("python"))
    assert requires.replace(" ", "") in python.replace(" ", "")


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_has_one_parameters_cell_and_no_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected 1"
    assert tagged[0]["cell_type"] == "code"
    with_outputs = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and c.get("outputs")]
    assert not with_outputs, f"{path.name}: committed with outputs in cells {with_outputs}"


def test_console_command_is_declared() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["scripts"]["scintilab"] == "scintilab.cli:main"
    from scintilab.cli import COMMANDS

    assert COMMANDS["ingest"][0] == "scintilab.ingest:cli_main"
