"""The batch's parameter files: runs, grids and parameters checked before anything executes.

A parameter file (YAML in ``papermill_runs/``, see :mod:`scintilab.batch`) becomes a list of
:class:`RunSpec`: grids expanded into one run each, names made safe, ``{out}``-style
placeholders filled in, every parameter name checked against the notebook's own
``parameters`` cell (papermill would only warn about a misspelt one) and its type against
the declared default, dependencies resolved. :func:`select` picks runs by name pattern.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scintilab.errors import InputError
from scintilab.paths import repo_path, repo_root

#: Default output folder of batch runs (git-ignored).
DEFAULT_OUT = "papermill_runs/out"

_NAME_BAD = re.compile(r"[^A-Za-z0-9._=-]+")
_RUN_KEYS = {"name", "notebook", "parameters", "grid", "depends_on", "report_mode", "timeout", "kernel"}
_FILE_KEYS = {"description", "defaults", "runs", "timeout", "kernel"}


@dataclass
class RunSpec:
    """One notebook execution, fully expanded (no grid left).

    Attributes:
        name: folder name under the batch output folder; unique within a batch.
        notebook: the input notebook, relative to the repo root when inside it.
        parameters: what papermill injects (already filtered and templated).
        depends_on: names of runs that must finish ``ok`` first.
        grid_values: the grid point this run came from (empty for plain runs).
        report_mode: hide code in the report (None: the batch's setting decides).
        timeout: per-cell execution timeout in seconds (None: no limit).
        kernel: kernel name (None: the notebook's own kernelspec).
        source: the parameter file this run came from (for error messages).
    """

    name: str
    notebook: str
    parameters: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    grid_values: dict[str, Any] = field(default_factory=dict)
    report_mode: bool | None = None
    timeout: int | None = None
    kernel: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (what executors ship to their workers)."""
        d = asdict(self)
        d["depends_on"] = list(self.depends_on)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["depends_on"] = tuple(d.get("depends_on") or ())
        return cls(**d)

    def fingerprint(self) -> str:
        """Hash of what determines the result: notebook source and parameters."""
        payload = {
            "notebook": self.notebook,
            "notebook_source": notebook_source_hash(repo_path(self.notebook)),
            "parameters": self.parameters,
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]


def display_path(path: Path) -> str:
    """Repo-relative text for ``path`` when it lies inside the repo, else the absolute path."""
    path = Path(path).resolve()
    try:
        return path.relative_to(repo_root().resolve()).as_posix()
    except ValueError:
        return str(path)


def notebook_path(text: str | os.PathLike[str], source: Path | None = None) -> Path:
    """Where a parameter file's ``notebook:`` entry points.

    A relative path is looked up, in order, in the current folder (as every other path a
    user types), beside the parameter file, then in the project (the shipped parameter files
    name ``notebooks/..``); when none holds it, the current folder's reading is returned,
    so the error names the path the user would expect.
    """
    p = Path(text).expanduser()
    if p.is_absolute():
        return p
    tries = [Path.cwd() / p] + ([source.resolve().parent / p] if source is not None else []) + [repo_path(p)]
    return next((t for t in tries if t.is_file()), tries[0])


def notebook_source_hash(path: Path) -> str:
    """Hash of a notebook's cell sources and types (outputs and metadata ignored).

    Args:
        path: the notebook file.

    Returns:
        16 hex characters; ``"missing"`` when the file does not exist.
    """
    import nbformat

    path = Path(path)
    if not path.exists():
        return "missing"
    nb = nbformat.read(path, as_version=4)
    h = hashlib.sha256()
    for cell in nb.cells:
        h.update(cell.cell_type.encode())
        h.update(b"\0")
        h.update(cell.source.encode("utf-8"))
        h.update(b"\1")
    return h.hexdigest()[:16]


def safe_run_name(name: str) -> str:
    """A folder-safe run name: letters, digits, ``. _ = -``; other runs of characters -> ``_``."""
    cleaned = _NAME_BAD.sub("_", str(name)).strip("._")
    if not cleaned:
        raise ValueError(f"run name {name!r} has no usable characters")
    return cleaned


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """Parameters declared in a notebook's ``parameters`` cell (``papermill.inspect_notebook``).

    Raises:
        InputError: the notebook is missing, unreadable, or has no ``parameters`` cell.
    """
    import papermill

    notebook = Path(notebook)
    if not notebook.exists():
        raise InputError(notebook, "notebook not found")
    try:
        params = papermill.inspect_notebook(str(notebook))
    except Exception as exc:  # nbformat/JSON errors: name the file
        raise InputError(notebook, f"cannot read notebook ({exc})") from exc
    if not params:
        raise InputError(notebook, "no cell tagged 'parameters' (or it declares nothing)")
    return params


_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
}


def _type_problem(name: str, value: Any, info: dict[str, Any]) -> str | None:
    """A message when ``value`` clearly does not fit the declared simple type, else None."""
    declared = (info.get("inferred_type_name") or "").strip()
    allowed = _SIMPLE_TYPES.get(declared)
    if allowed is None or value is None:
        return None  # compound or undeclared type: papermill cannot tell, neither do we
    if isinstance(value, bool) and declared in {"int", "float"}:
        return f"parameter {name!r} is declared {declared} but given a bool ({value!r})"
    if not isinstance(value, allowed):
        return f"parameter {name!r} is declared {declared} but given {type(value).__name__} ({value!r})"
    return None


def _format_value(value: Any, context: dict[str, Any]) -> Any:
    """Fill ``{out}``-style placeholders in strings (recursively in lists and dicts)."""
    if isinstance(value, str) and "{" in value:
        try:
            return value.format(**context)
        except (KeyError, IndexError, ValueError):
            return value  # not a template (e.g. a literal brace): leave it alone
    if isinstance(value, list):
        return [_format_value(v, context) for v in value]
    if isinstance(value, dict):
        return {k: _format_value(v, context) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- spec loading


def expand_specs(
    doc: dict[str, Any],
    *,
    out_root: str | Path = DEFAULT_OUT,
    source: str | Path | None = None,
    check: bool = True,
) -> list[RunSpec]:
    """Expand a parameter-file document into concrete runs and validate them.

    Args:
        doc: the parsed YAML (``description``, ``defaults``, ``runs``, optional
            ``timeout``/``kernel`` for all runs).
        out_root: the batch output folder (fills ``{out}``/``{out_root}`` placeholders).
        source: where ``doc`` came from, for error messages.
        check: check parameter names (and simple types) against each notebook.

    Returns:
        The runs in file order, grids expanded in the order their keys are written.

    Raises:
        InputError: naming ``source`` and every problem found (unknown keys or parameters,
            missing notebooks, duplicate names, unknown dependencies, bad grids).
    """
    src = Path(source) if source is not None else None
    problems: list[str] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list) or not doc["runs"]:
        raise InputError(src, "expected a mapping with a non-empty 'runs' list")
    extra = set(doc) - _FILE_KEYS
    if extra:
        problems.append(f"unknown top-level keys {sorted(extra)} (allowed: {sorted(_FILE_KEYS)})")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise InputError(src, "'defaults' must be a mapping of parameter names to values")
    out_root_text = display_path(repo_path(out_root))

    specs: list[RunSpec] = []
    declared_cache: dict[str, dict[str, dict[str, Any]]] = {}
    for i, entry in enumerate(doc["runs"]):
        where = f"runs[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping, got {type(entry).__name__}")
            continue
        where = f"run {entry.get('name', i)!r}"
        bad_keys = set(entry) - _RUN_KEYS
        if bad_keys:
            problems.append(f"{where}: unknown keys {sorted(bad_keys)} (allowed: {sorted(_RUN_KEYS)})")
        if not entry.get("notebook"):
            problems.append(f"{where}: no 'notebook'")
            continue
        nb_path = notebook_path(entry["notebook"], src)
        nb_text = display_path(nb_path)
        base = entry.get("name") or nb_path.stem
        params = entry.get("parameters") or {}
        grid = entry.get("grid") or {}
        if not isinstance(params, dict) or not isinstance(grid, dict):
            problems.append(f"{where}: 'parameters' and 'grid' must be mappings")
            continue
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                problems.append(f"{where}: grid key {key!r} needs a non-empty list of values")
        if any(not isinstance(v, list) or not v for v in grid.values()):
            continue
        overlap = set(grid) & set(params)
        if overlap:
            problems.append(f"{where}: {sorted(overlap)} given both in 'parameters' and 'grid'")

        declared: dict[str, dict[str, Any]] | None = None
        if check:
            if nb_text not in declared_cache:
                try:
                    declared_cache[nb_text] = declared_parameters(nb_path)
                except InputError as exc:
                    problems.append(f"{where}: {exc}")
                    declared_cache[nb_text] = {}
            declared = declared_cache[nb_text] or None
            if declared is not None:
                for key in [*params, *grid]:
                    if key not in declared:
                        problems.append(
                            f"{where}: unknown parameter {key!r} for {nb_text} "
                            f"(declared: {', '.join(sorted(declared))})"
                        )

        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
            gv = dict(zip(keys, combo))
            if "{" in str(base):
                try:
                    raw_name = str(base).format(**gv)
                except (KeyError, IndexError, ValueError) as exc:
                    problems.append(f"{where}: name template {base!r} cannot be filled ({exc})")
                    continue
            elif gv:
                raw_name = f"{base}-" + "-".join(f"{k}-{v}" for k, v in gv.items())
            else:
                raw_name = str(base)
            name = safe_run_name(raw_name)
            out_dir_text = f"{out_root_text}/{name}"
            context = {"out": out_dir_text, "out_root": out_root_text, "name": name, **gv}
            merged: dict[str, Any] = {}
            for key, value in defaults.items():
                # Defaults are shared across notebooks: only those this notebook declares.
                if declared is None or key in declared:
                    merged[key] = value
            merged.update(params)
            merged.update(gv)
            merged = {k: _format_value(v, context) for k, v in merged.items()}
            if declared:
                for key, value in merged.items():
                    if key in declared:
                        msg = _type_problem(key, value, declared[key])
                        if msg:
                            problems.append(f"{where} ({name}): {msg}")
            deps = entry.get("depends_on") or []
            if isinstance(deps, str):
                deps = [deps]
            specs.append(
                RunSpec(
                    name=name,
                    notebook=nb_text,
                    parameters=merged,
                    depends_on=tuple(str(d) for d in deps),
                    grid_values=gv,
                    report_mode=entry.get("report_mode"),
                    timeout=entry.get("timeout", doc.get("timeout")),
                    kernel=entry.get("kernel", doc.get("kernel")),
                    source=str(src) if src else None,
                )
            )

    if check and declared_cache and defaults:
        # A default no notebook of the file declares is a typo, not a shared setting.
        known = set().union(*(set(d) for d in declared_cache.values()))
        unused = sorted(set(defaults) - known)
        if unused:
            problems.append(f"defaults {unused} are declared by none of the notebooks of this file")
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            problems.append(f"duplicate run name {spec.name!r} (give runs distinct names)")
        seen.add(spec.name)
    # A dependency may name a run, or the base name of a grid (all of its expansions).
    for spec in specs:
        resolved: list[str] = []
        for dep in spec.depends_on:
            matches = _match_names(dep, [s.name for s in specs])
            if not matches:
                problems.append(f"run {spec.name!r}: depends_on {dep!r} matches no run")
            if spec.name in matches:
                problems.append(f"run {spec.name!r} depends on itself")
            resolved += [m for m in matches if m != spec.name]
        spec.depends_on = tuple(dict.fromkeys(resolved))
    order = {s.name: i for i, s in enumerate(specs)}
    for spec in specs:
        for dep in spec.depends_on:
            if order.get(dep, -1) > order[spec.name]:
                problems.append(f"run {spec.name!r} depends on {dep!r}, which comes later in the file")
    if problems:
        raise InputError(src, "invalid parameter file:\n  - " + "\n  - ".join(problems))
    return specs


def _match_names(pattern: str, names: Sequence[str]) -> list[str]:
    """Runs selected by ``pattern``: exact name, grid base name (``base-...``) or glob."""
    if pattern in names:
        return [pattern]
    hits = [n for n in names if n.startswith(pattern + "-") or fnmatch.fnmatchcase(n, pattern)]
    return hits


def load_specs(path: str | Path, *, out_root: str | Path = DEFAULT_OUT, check: bool = True) -> list[RunSpec]:
    """Read a YAML parameter file and return its expanded, validated runs.

    Args:
        path: the YAML file (e.g. ``papermill_runs/quick.yaml``).
        out_root: the batch output folder (for ``{out}`` placeholders).
        check: check parameter names against the notebooks.

    Raises:
        InputError: the file is missing, not YAML, or invalid (see :func:`expand_specs`).
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise InputError(path, "parameter file not found")
    try:
        with path.open("r", encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({exc})") from exc
    return expand_specs(doc, out_root=out_root, source=path, check=check)


def select(specs: Sequence[RunSpec], only: Iterable[str] | None) -> list[RunSpec]:
    """The runs named by ``only`` (exact names, grid base names or globs); all when empty.

    Raises:
        ValueError: a pattern selects nothing.
    """
    only = list(only or [])
    if not only:
        return list(specs)
    names = [s.name for s in specs]
    chosen: set[str] = set()
    for pattern in only:
        hits = _match_names(pattern, names)
        if not hits:
            raise ValueError(f"--only {pattern!r} matches no run (runs: {', '.join(names)})")
        chosen.update(hits)
    return [s for s in specs if s.name in chosen]
