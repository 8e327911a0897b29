"""Headless batch runs of the notebooks with papermill (``scintilab run PARAMS.yaml``).

A parameter file (YAML, kept in ``papermill_runs/``) lists runs; each names a notebook and
the parameters papermill injects into it. One run can expand into a grid (models x seeds)::

    description: the quick demo
    defaults:                 # offered to every run; used where the notebook declares them
      data_dir: data/synthetic_small
      preset: quick
    runs:
      - name: training
        notebook: notebooks/03_training.ipynb
        parameters: {epochs: 4}
      - name: "ablation-{model}-s{seed}"      # grid values may be used in the name ...
        notebook: notebooks/03_training.ipynb
        grid: {model: [inrac, outrac], seed: [0, 1]}
        depends_on: [training]               # ... else "-model-inrac-seed-0" is appended

Each run executes into ``OUT/<run-name>/``: the executed notebook, ``params.json``,
``status.json`` (``ok`` / ``failed`` / ``skipped``, timing, error) and, unless turned off,
``report.html`` (see :mod:`scintilab.reports`). After the batch ``OUT/index.html`` links them.

Rules, and why:

* Unknown parameter names are an error before anything executes: papermill only warns
  about them, and a misspelt ``epoch: 300`` would silently train with the default.
  ``defaults`` are the exception: they are shared by notebooks that declare different
  parameters, so each run takes only the defaults its notebook declares.
* A run that fails keeps its partial notebook (papermill saves it with the error marked),
  is marked ``failed``, and the batch goes on. Runs that depend on it are ``skipped``.
* Re-running skips a run whose ``status.json`` says ``ok`` for the same fingerprint (same
  parameters and same notebook source) unless ``force``.
* :func:`run_batch` takes an ``executor`` (anything with ``submit(fn, *args) -> future`` and
  ``future.result()``: a ``concurrent.futures.ProcessPoolExecutor`` or a
  ``dask.distributed.Client``). papermill changes the working directory and the kernel
  inherits environment variables, neither of which is thread-safe: use process-based
  workers with one thread each.

Strings in parameters may use ``{out}`` (this run's output folder), ``{out_root}`` (the
batch output folder), ``{name}`` (the run name) and the run's grid keys; paths are given
relative to the repository root when they lie inside it, so no absolute path is rendered.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What a parameter file holds and how it expands (the batch's API names it too).
from scintilab.batch_specs import (
    DEFAULT_OUT,
    RunSpec,
    declared_parameters,
    display_path,
    expand_specs,
    load_specs,
    notebook_path,
    notebook_source_hash,
    safe_run_name,
    select,
)
from scintilab.errors import InputError
from scintilab.paths import repo_path

#: Environment variable a notebook reads (via ``scintilab.reports.run_output_dir``) to find
#: the folder its batch run writes to (metrics.json and other small outputs).
RUN_OUT_ENV = "SCINTILAB_RUN_OUT"

STATUS_OK, STATUS_FAILED, STATUS_SKIPPED = "ok", "failed", "skipped"


@dataclass
class RunOutcome:
    """What happened to one run in this invocation of the batch."""

    name: str
    status: str
    seconds: float = 0.0
    reason: str = ""
    out_dir: str = ""


@dataclass
class BatchResult:
    """The outcome of :func:`run_batch`: one :class:`RunOutcome` per run, in order."""

    outcomes: list[RunOutcome]
    out_root: Path
    index: Path | None = None

    def count(self, status: str) -> int:
        """Number of runs that ended with ``status`` (``ok``/``failed``/``skipped``)."""
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[RunOutcome]:
        """The runs that failed."""
        return [o for o in self.outcomes if o.status == STATUS_FAILED]


# --------------------------------------------------------------------------- helpers


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- execution


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The ``status.json`` of a run folder, or None when absent or unreadable."""
    try:
        return json.loads((Path(run_dir) / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)  # atomic, so the index never reads half a file


def is_done(spec: RunSpec, out_root: Path) -> bool:
    """True when the run's folder says ``ok`` for the same fingerprint."""
    status = read_status(Path(out_root) / spec.name)
    return bool(status and status.get("status") == STATUS_OK and status.get("fingerprint") == spec.fingerprint())


def _error_summary(exc: BaseException) -> dict[str, Any]:
    """A short description of a failure for status.json (papermill errors carry the cell)."""
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None) or str(exc)
    out = {"ename": str(ename), "evalue": str(evalue)[:2000]}
    cell = getattr(exc, "exec_count", None)
    if cell is not None:
        out["cell"] = cell
    return out


def execute_run(
    run: dict[str, Any],
    out_root: str,
    report_mode: bool = False,
    render: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Execute one run with papermill and record it; never raises for a notebook failure.

    A module-level function on plain data so process pools and Dask workers can run it.

    Args:
        run: :meth:`RunSpec.to_dict` of the run.
        out_root: the batch output folder.
        report_mode: hide code cells (papermill report mode and in the HTML report).
        render: also write ``report.html`` next to the executed notebook.
        progress: show papermill's per-cell progress bar.

    Returns:
        The run's ``status.json`` content.
    """
    import papermill

    spec = RunSpec.from_dict(run)
    out_dir = repo_path(out_root) / spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    nb_in = repo_path(spec.notebook)
    nb_out = out_dir / nb_in.name
    hide = spec.report_mode if spec.report_mode is not None else report_mode
    _write_json(out_dir / "params.json", {"notebook": spec.notebook, "parameters": spec.parameters})
    status: dict[str, Any] = {
        "name": spec.name,
        "notebook": spec.notebook,
        "executed": nb_out.name,
        "fingerprint": spec.fingerprint(),
        "parameters": spec.parameters,
        "grid": spec.grid_values,
        "report_mode": bool(hide),
        "status": "running",
        "started": _now(),
    }
    _write_json(out_dir / "status.json", status)
    # Stale outputs of an earlier attempt would be shown as this run's: clear them.
    for stale in ("metrics.json", "report.html"):
        (out_dir / stale).unlink(missing_ok=True)
    t0 = time.perf_counter()
    previous = os.environ.get(RUN_OUT_ENV)
    os.environ[RUN_OUT_ENV] = str(out_dir)  # the kernel inherits it (see module docstring)
    try:
        papermill.execute_notebook(
            str(nb_in),
            str(nb_out),
            parameters=spec.parameters,
            kernel_name=spec.kernel,
            progress_bar=progress,
            report_mode=bool(hide),
            cwd=str(out_dir),
            execution_timeout=spec.timeout,
        )
        status["status"] = STATUS_OK
    except Exception as exc:  # any failure: keep the partial notebook, record, go on
        status["status"] = STATUS_FAILED
        status["error"] = _error_summary(exc)
        if not getattr(exc, "ename", None):
            status["error"]["traceback"] = traceback.format_exc(limit=5)[-4000:]
    finally:
        if previous is None:
            os.environ.pop(RUN_OUT_ENV, None)
        else:
            os.environ[RUN_OUT_ENV] = previous
    status["seconds"] = round(time.perf_counter() - t0, 2)
    status["finished"] = _now()
    if render and nb_out.exists():
        try:
            from scintilab.reports import render_report

            render_report(nb_out, out_dir / "report.html", report_mode=bool(hide))
            status["report"] = "report.html"
        except Exception as exc:  # a report that fails to render must not hide the run's result
            status["report_error"] = f"{type(exc).__name__}: {exc}"[:2000]
    _write_json(out_dir / "status.json", status)
    return status


def _mark_skipped(spec: RunSpec, out_root: Path, reason: str) -> None:
    out_dir = Path(out_root) / spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "params.json", {"notebook": spec.notebook, "parameters": spec.parameters})
    _write_json(
        out_dir / "status.json",
        {
            "name": spec.name,
            "notebook": spec.notebook,
            "fingerprint": spec.fingerprint(),
            "parameters": spec.parameters,
            "grid": spec.grid_values,
            "status": STATUS_SKIPPED,
            "reason": reason,
            "finished": _now(),
        },
    )


def run_batch(
    specs: Sequence[RunSpec],
    out_root: str | Path = DEFAULT_OUT,
    *,
    force: bool = False,
    executor: Any | None = None,
    report_mode: bool = False,
    render: bool = True,
    write_index: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = print,
) -> BatchResult:
    """Execute runs (skipping those already done), record each, and write the index page.

    Without an executor the runs execute one after another in order. With one, every run
    whose dependencies are finished is submitted together (a "wave"), and the next wave
    starts when the current one is done, so ``depends_on`` is honoured on any executor.

    Args:
        specs: the runs (from :func:`load_specs`), possibly narrowed by :func:`select`.
        out_root: the batch output folder; each run writes to ``out_root/<name>/``.
        force: execute even runs that are already done.
        executor: ``submit(fn, *args) -> future`` with ``future.result()`` (process-based).
        report_mode: hide code cells in reports (a run's own ``report_mode`` wins).
        render: render ``report.html`` for each executed run.
        write_index: write ``out_root/index.html`` at the end.
        progress: papermill's per-cell progress bar.
        log: where one line per run goes (None: silent).

    Returns:
        A :class:`BatchResult`; failed runs are listed, never raised.
    """
    out_root = repo_path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _msg: None)
    total = len(specs)
    outcomes: dict[str, RunOutcome] = {}
    final: dict[str, str] = {}  # run name -> ok/failed/skipped (for dependency checks)
    position = {s.name: i + 1 for i, s in enumerate(specs)}

    def dependency_state(spec: RunSpec) -> tuple[bool, str]:
        """(ready, reason-to-skip). Dependencies outside this batch count by their status.json."""
        for dep in spec.depends_on:
            state = final.get(dep)
            if state is None and dep not in position:
                st = read_status(out_root / dep)
                state = st.get("status") if st else None
                if state is None:
                    return True, f"dependency {dep!r} has never run"
            if state is None:
                return False, ""
            if state != STATUS_OK:
                return True, f"dependency {dep!r} {state}"
        return True, ""

    def finish(spec: RunSpec, status: str, seconds: float, reason: str = "") -> None:
        final[spec.name] = status
        outcomes[spec.name] = RunOutcome(spec.name, status, seconds, reason, display_path(out_root / spec.name))
        extra = f" ({reason})" if reason else ""
        say(f"[{position[spec.name]}/{total}] {spec.name}: {status} in {seconds:.1f} s{extra}")

    pending = list(specs)
    while pending:
        wave: list[RunSpec] = []
        for spec in list(pending):
            ready, skip_reason = dependency_state(spec)
            if not ready:
                continue
            pending.remove(spec)
            if skip_reason and "never run" not in skip_reason:
                _mark_skipped(spec, out_root, skip_reason)
                finish(spec, STATUS_SKIPPED, 0.0, skip_reason)
            elif not force and is_done(spec, out_root):
                finish(spec, STATUS_SKIPPED, 0.0, "up to date")
                final[spec.name] = STATUS_OK  # its earlier result stands for dependants
            elif skip_reason:
                _mark_skipped(spec, out_root, skip_reason)
                finish(spec, STATUS_SKIPPED, 0.0, skip_reason)
            else:
                wave.append(spec)
            if executor is None and wave:
                break  # sequential: run this one now, then look again
        if not wave:
            if pending and all(not dependency_state(s)[0] for s in pending):
                for spec in pending:  # cannot happen after validation; never hang
                    _mark_skipped(spec, out_root, "dependencies never finished")
                    finish(spec, STATUS_SKIPPED, 0.0, "dependencies never finished")
                pending.clear()
            continue
        args = [(s.to_dict(), str(out_root), report_mode, render, progress) for s in wave]
        if executor is None:
            for spec, a in zip(wave, args):
                say(f"[{position[spec.name]}/{total}] {spec.name}: running {spec.notebook}")
                st = execute_run(*a)
                finish(spec, st["status"], st.get("seconds", 0.0), _reason(st))
        else:
            futures = []
            for spec, a in zip(wave, args):
                say(f"[{position[spec.name]}/{total}] {spec.name}: submitted {spec.notebook}")
                futures.append(executor.submit(execute_run, *a))
            for spec, fut in zip(wave, futures):
                try:
                    st = fut.result()
                except Exception as exc:  # the worker itself died: record like a failed run
                    st = {"status": STATUS_FAILED, "error": _error_summary(exc), "seconds": 0.0}
                    status = read_status(out_root / spec.name) or {}
                    status.update(st, name=spec.name, notebook=spec.notebook, finished=_now())
                    _write_json(out_root / spec.name / "status.json", status)
                finish(spec, st["status"], st.get("seconds", 0.0), _reason(st))

    result = BatchResult([outcomes[s.name] for s in specs], out_root)
    if write_index:
        from scintilab.reports import write_index as _write_index

        result.index = _write_index(out_root)
    return result


def _reason(status: dict[str, Any]) -> str:
    err = status.get("error")
    if err:
        return f"{err.get('ename')}: {str(err.get('evalue'))[:200]}"
    return status.get("report_error", "")


# --------------------------------------------------------------------------- CLI


def cli_main(argv: list[str]) -> int:
    """``scintilab run PARAMS.yaml [--force] [--only NAME] [--out DIR] [--report-mode]``.

    Returns:
        0 when every run is ok or up to date, 1 when any failed or was skipped for a failed
        dependency, 2 for an invalid parameter file.
    """
    parser = argparse.ArgumentParser(prog="scintilab run", description=__doc__.split("\n")[0])
    parser.add_argument("params", help="YAML parameter file (e.g. papermill_runs/quick.yaml)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"batch output folder (default {DEFAULT_OUT})")
    parser.add_argument("--force", action="store_true", help="re-execute runs that are already done")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this run (name, grid base name or glob); repeatable",
    )
    parser.add_argument("--report-mode", action="store_true", help="hide code in the HTML reports")
    parser.add_argument("--no-report", action="store_true", help="do not render HTML reports")
    parser.add_argument("--list", action="store_true", help="list the expanded runs and exit")
    parser.add_argument("--progress", action="store_true", help="show papermill's per-cell progress")
    parser.add_argument(
        "--dask",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="dispatch runs to Dask distributed: a 2-worker LocalCluster, or a scheduler ADDRESS",
    )
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers with --dask (default 2)")
    args = parser.parse_args(argv)
    try:
        if args.out != DEFAULT_OUT:  # a folder the user typed is read from the current folder
            args.out = str(Path(args.out).expanduser().absolute())
        specs = load_specs(args.params, out_root=args.out)
        specs = select(specs, args.only)
    except (InputError, ValueError) as exc:
        print(f"scintilab run: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for s in specs:
            deps = f"  after {', '.join(s.depends_on)}" if s.depends_on else ""
            print(f"{s.name:40s} {s.notebook}  {json.dumps(s.parameters, default=str)}{deps}")
        return 0
    t0 = time.perf_counter()
    options = dict(force=args.force, report_mode=args.report_mode, render=not args.no_report, progress=args.progress)
    if args.dask:
        from scintilab.dask_executor import DaskExecutor  # same failure handling as locally (issue 11)

        address = None if args.dask == "local" else args.dask
        with DaskExecutor(address=address, n_workers=args.workers) as executor:
            result = run_batch(specs, args.out, executor=executor, **options)
    else:
        result = run_batch(specs, args.out, **options)
    wall = time.perf_counter() - t0
    print(
        f"scintilab run: {result.count(STATUS_OK)} ok, {result.count(STATUS_FAILED)} failed, "
        f"{result.count(STATUS_SKIPPED)} skipped in {wall:.0f} s"
    )
    if result.index is not None:
        print(f"scintilab run: open {display_path(result.index)}")
    bad = [
        o
        for o in result.outcomes
        if o.status == STATUS_FAILED or (o.status == STATUS_SKIPPED and o.reason != "up to date")
    ]
    return 1 if bad else 0


__all__ = [
    "BatchResult",
    "DEFAULT_OUT",
    "RUN_OUT_ENV",
    "RunOutcome",
    "RunSpec",
    "STATUS_FAILED",
    "STATUS_OK",
    "STATUS_SKIPPED",
    "cli_main",
    "declared_parameters",
    "execute_run",
    "expand_specs",
    "is_done",
    "load_specs",
    "notebook_path",
    "notebook_source_hash",
    "read_status",
    "run_batch",
    "safe_run_name",
    "select",
]
