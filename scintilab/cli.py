"""The ``scintilab`` console command.

Each subcommand lives in the module that does the work, as ``cli_main(argv) -> int``;
this table only names them, so ``scintilab ingest`` never pays for importing Keras.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from scintilab.errors import EXIT_INTERRUPTED, EXIT_USAGE, InputError

#: subcommand -> ("module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("scintilab.ingest:cli_main", "walk a DICOM/PNG/TIFF folder and write a study manifest"),
    "synth": ("scintilab.synth.cohort:cli_main", "write the built-in synthetic cohort (DICOM + LabelMe + CSV)"),
    "datasets": ("scintilab.datasets:cli_main", "build D1/D2/D3 and patient-level splits from a manifest"),
    "train": ("scintilab.training:cli_main", "train a model from a preset and save a run directory"),
    "evaluate": ("scintilab.evaluation:cli_main", "score a run directory: metrics with confidence intervals"),
    "run": ("scintilab.batch:cli_main", "execute notebooks headless from a papermill parameter file"),
    "report": ("scintilab.reports:cli_main", "render executed notebooks to HTML and write the index"),
    "lesions": ("scintilab.lesions:cli_main", "per-lesion table: shape, region and uptake"),
    "quantify": ("scintilab.quantify:cli_main", "hotspots, Bone Scan Index and follow-up per study"),
    "audit": ("scintilab.audit:cli_main", "find duplicates, same-patient suspects and bad scans"),
    "export": ("scintilab.export:cli_main", "export a run's model to ONNX and score a cohort with ONNX Runtime"),
    "bench": ("scintilab.bench:cli_main", "benchmarks: print figures and write BENCHMARKS.md"),
}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: scintilab COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "Run 'scintilab COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if argv[0] == "--version":
        from scintilab import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"scintilab: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("scintilab"):
            print(f"scintilab: command {name!r} is not available yet ({exc})", file=sys.stderr)
            return 2
        raise
    return _run(name, getattr(module, func_name), rest)


def _run(name: str, func: Any, argv: list[str]) -> int:
    """Run one subcommand; user errors and Ctrl-C end in one line, never a traceback.

    Commands report their own partial results (exit code 3); this is the net under every
    command for what they do not catch: a bad input (:class:`InputError`), a path the
    system refuses (``OSError`` naming a file) and an interrupt.
    """
    try:
        return int(func(argv) or 0)
    except KeyboardInterrupt:
        print(
            f"\nscintilab {name}: interrupted (Ctrl-C); outputs written so far are kept, "
            "files being written were not renamed into place. Rerun the same command to finish "
            "(add --overwrite where the output folder is refused).",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except InputError as err:
        print(f"scintilab {name}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        if err.filename is None:
            raise
        print(f"scintilab {name}: {err.filename}: {err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
