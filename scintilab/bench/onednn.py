"""Which oneDNN kernel families ran (``ONEDNN_VERBOSE``), so a speed figure names its kernels.

A compiled InRAC runs one training step in a child process with oneDNN's verbose log on;
:func:`parse_onednn_verbose` counts the primitives of the measured phase by kind and
implementation (``brg_conv`` on AMX, ``jit:avx512_core_bf16``, ``avx2``) and
:func:`kernels_markdown` prints the most used.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- oneDNN kernels
#: Printed between the phases of the probe so each oneDNN line can be given its phase.
_PHASE_MARK = "scintilab-phase:"


def compiled_inrac(size: tuple[int, int], batch: int, precision: str) -> tuple[Any, np.ndarray, np.ndarray]:
    """A compiled three-class inRAC and one random batch (seed 0), for the child-process probes."""
    import keras

    from scintilab.models import build_model

    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    model = build_model("inrac", input_shape=(*size, 1), num_classes=3, dtype_policy=policy)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    return model, rng.random((batch, *size, 1), dtype=np.float32), rng.integers(0, 3, batch)


def _onednn_probe(size: tuple[int, int], batch: int, precision: str) -> None:
    """Child process body of :func:`onednn_kernels`: one warm-up, then one timed step per phase."""
    model, x, y = compiled_inrac(size, batch, precision)
    model.train_on_batch(x, y)  # primitive creation and tracing, before the marks
    model.predict_on_batch(x)
    for phase, run in (("train", lambda: model.train_on_batch(x, y)), ("infer", lambda: model.predict_on_batch(x))):
        print(f"{_PHASE_MARK}{phase}", flush=True)
        run()
    print(f"{_PHASE_MARK}end", flush=True)


def parse_onednn_verbose(text: str) -> dict[str, Any]:
    """Kernel families from ``ONEDNN_VERBOSE=1`` output (oneDNN v3 ``onednn_verbose,v1,...`` lines).

    Args:
        text: the probe's standard output, with ``scintilab-phase:`` marks.

    Returns:
        ``{"isa": "Intel AVX2" or "", "kernels": [{"phase", "primitive", "implementation",
        "prop_kind", "calls", "ms"}, ...]}``, slowest first. Lines before the first mark
        (warm-up) are left out.
    """
    isa, phase = "", None
    table: dict[tuple[str, str, str, str], list[float]] = {}
    for line in text.splitlines():
        if line.startswith(_PHASE_MARK):
            phase = line[len(_PHASE_MARK) :].strip()
            continue
        if not line.startswith("onednn_verbose,"):
            continue
        fields = line.split(",")
        if "isa:" in line and not isa:
            isa = next((f.split("isa:", 1)[1] for f in fields if f.startswith("isa:")), "")
        if phase in (None, "end") or len(fields) < 9 or fields[2] != "primitive" or fields[3] != "exec":
            continue
        try:
            ms = float(fields[-1])
        except ValueError:
            continue
        key = (phase, fields[5], fields[6] or "-", fields[7])
        entry = table.setdefault(key, [0, 0.0])
        entry[0] += 1
        entry[1] += ms
    kernels = [
        {"phase": k[0], "primitive": k[1], "implementation": k[2], "prop_kind": k[3], "calls": int(v[0]), "ms": v[1]}
        for k, v in table.items()
    ]
    kernels.sort(key=lambda r: -r["ms"])
    return {"isa": isa, "kernels": kernels}


def onednn_kernels(size: tuple[int, int], batch: int, precision: str, timeout: int = 600) -> dict[str, Any]:
    """Which oneDNN kernels one Keras inRAC training and inference step runs on this machine.

    A child process with ``ONEDNN_VERBOSE=1`` (read when TensorFlow loads) runs the steps;
    see :func:`parse_onednn_verbose`. Work TensorFlow does outside oneDNN (Eigen kernels,
    element-wise ops) does not appear: the table's total against the step time says how
    much of the step oneDNN's kernels are.

    Returns:
        :func:`parse_onednn_verbose`'s dict, plus ``"error"`` when the child failed.
    """
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    code = (
        f"from scintilab.bench.onednn import _onednn_probe; _onednn_probe({tuple(size)!r}, {int(batch)}, {precision!r})"
    )
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"isa": "", "kernels": [], "error": f"the probe ran past {timeout} s"}
    parsed = parse_onednn_verbose(out.stdout)
    if out.returncode != 0:
        parsed["error"] = f"exit status {out.returncode}: {out.stderr.strip()[-300:]}"
    return parsed


def kernels_markdown(found: dict[str, Any], precision: str, top: int = 8) -> str:
    """A short table of the kernel families that took most oneDNN time, per phase."""
    if found.get("error"):
        return f"oneDNN kernels ({precision}): not measured ({found['error']})."
    lines = [
        f"oneDNN kernels that ran ({precision}; oneDNN ISA: {found['isa'] or 'not reported'}), "
        f"one step after warm-up, slowest first:",
        "",
        "| phase | primitive | implementation | prop_kind | calls | ms |",
        "|---|---|---|---|---:|---:|",
    ]
    for phase in ("train", "infer"):
        rows = [k for k in found["kernels"] if k["phase"] == phase][:top]
        lines += [
            f"| {phase} | {k['primitive']} | {k['implementation']} | {k['prop_kind']} | {k['calls']} | {k['ms']:.1f} |"
            for k in rows
        ]
    return "\n".join(lines)
