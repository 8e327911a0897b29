"""``scintilab bench``: speed and scale figures, printed and written into BENCHMARKS.md.

Sections (each measured by one sub-command, so each invocation stays short)::

    scintilab bench model --size 1024x256     # Keras vs PyTorch vs ONNX Runtime, with ceiling
    scintilab bench model --size 512x128
    scintilab bench ceiling                   # matmul GFLOP/s, float32 and bfloat16
    scintilab bench pipeline                  # input pipeline alone (no model)
    scintilab bench memory                    # peak RSS of training at the paper's batch 32
    scintilab bench scripts [synth ingest fusion models audit]   # the benchmarks/ scripts
    scintilab bench all                       # everything above, one after another

Every section names the machine (CPU model, its kind, AVX2 / AVX-512 / AVX512_BF16 / AMX,
load average) and is written between markers in BENCHMARKS.md, one section per machine
kind (``--out``; ``--no-write`` only prints). Model figures are medians of at least five
interleaved rounds with their spread, as fractions of the ceiling measured in the same run,
with the oneDNN kernel families that ran.
PyTorch (the reference implementation) is the optional ``bench`` extra; without it the
model section measures scintilab alone.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from scintilab.paths import repo_root

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _size(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like 1024x256 (rows x cols), got {text!r}") from exc
    return rows, cols


def cli_main(argv: list[str]) -> int:
    """Run benchmark sections; returns the exit status (0 ok, 2 bad arguments)."""
    parser = argparse.ArgumentParser(prog="scintilab bench", description=__doc__.split("\n")[0])
    parser.add_argument("section", choices=["model", "ceiling", "pipeline", "memory", "scripts", "all"])
    parser.add_argument("names", nargs="*", help="for 'scripts': which scripts (default all)")
    parser.add_argument(
        "--size", type=_size, action="append", default=None, help="rows x cols (repeatable; default 1024x256)"
    )
    parser.add_argument("--batch", type=int, default=8, help="batch for model speed (memory uses --memory-batch)")
    parser.add_argument("--memory-batch", type=int, default=32, help="batch for the peak-memory step (paper: 32)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the median counts)")
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--torch-threads", nargs="+", type=int, default=[1, 2], help="PyTorch thread counts tried")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime in the model section")
    parser.add_argument(
        "--before",
        action="store_true",
        help="model section: also measure the engine before issue 11's changes (oneDNN off, unfused BN)",
    )
    parser.add_argument("--no-kernels", action="store_true", help="model section: skip the oneDNN kernel listing")
    parser.add_argument("--out", default=None, help="BENCHMARKS.md to update (default: the repository's)")
    parser.add_argument("--json", default=None, help="also write the raw model figures to this JSON file")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    from scintilab.bench import runner

    out = Path(args.out) if args.out else repo_root() / "BENCHMARKS.md"
    sizes = args.size or [(1024, 256)]
    machine = runner.machine_line()
    kind = runner.machine_kind()
    print(machine, flush=True)

    def emit(name: str, title: str, body: str) -> None:
        # one section per machine kind: figures from an AMX Xeon and an AVX2 EPYC never overwrite each other
        text = f"{machine}\n\n{body}"
        print(f"\n## {title}\n\n{body}\n", flush=True)
        if not args.no_write:
            runner.write_section(out, f"{name}@{kind}", f"{title} (machine kind {kind})", text)

    sections = ["model", "ceiling", "pipeline", "memory", "scripts"] if args.section == "all" else [args.section]
    for section in sections:
        if section == "model":
            for size in sizes:
                md, raw = runner.model_speed(
                    size,
                    args.batch,
                    args.steps,
                    args.rounds,
                    tuple(args.precision),
                    tuple(args.torch_threads),
                    onnx=not args.no_onnx,
                    before=args.before,
                    kernels=not args.no_kernels,
                )
                emit(f"model-{size[0]}x{size[1]}", f"inRAC speed at {size[0]}x{size[1]}: scintilab vs PyTorch", md)
                if args.json:
                    Path(args.json).write_text(json.dumps(raw, indent=2), encoding="utf-8")
        elif section == "ceiling":
            from scintilab.bench.ceiling import measure_ceiling

            rows = ["| dtype | best GFLOP/s | per framework |", "|---|---:|---|"]
            for p in args.precision:
                c = measure_ceiling(p)
                rows.append(
                    f"| {p} | {c.gflops:.1f} | {', '.join(f'{k} {v:.1f}' for k, v in c.by_framework.items())} |"
                )
            emit("ceiling", "Matrix-product ceiling (2048x2048)", "\n".join(rows))
        elif section == "pipeline":
            emit("pipeline", "Input pipeline alone (no model)", "\n\n".join(runner.input_pipeline(s) for s in sizes))
        elif section == "memory":
            emit(
                "memory",
                f"Peak memory of training at batch {args.memory_batch}",
                "\n\n".join(runner.peak_memory(s, args.memory_batch, tuple(args.precision)) for s in sizes),
            )
        elif section == "scripts":
            unknown = sorted(set(args.names) - set(runner.SCRIPTS))
            if unknown:
                parser.error(f"unknown scripts {unknown}; choose from {sorted(runner.SCRIPTS)}")
            for name in args.names or list(runner.SCRIPTS):
                emit(f"script-{name}", f"benchmarks/bench_{name}.py", runner.run_script(name, repo_root()))
    return 0


__all__ = ["cli_main"]
