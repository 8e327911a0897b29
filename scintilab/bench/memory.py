"""Peak resident memory of training at the paper's batch size, measured in a child process."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

from scintilab.bench.onednn import compiled_inrac
from scintilab.performance import cpu_has_bf16


# --------------------------------------------------------------------------- peak memory
def _rss_child(size: tuple[int, int], batch: int, precision: str) -> None:
    """In a child process: build, compile and run one training step; print its peak RSS.

    The first step is where memory peaks (graph tracing plus every activation and
    gradient of the batch); later steps reuse the same buffers.
    """
    model, x, y = compiled_inrac(size, batch, precision)
    t0 = time.perf_counter()
    model.train_on_batch(x, y)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"peak_rss_mib": peak_mib, "first_step_s": time.perf_counter() - t0}), flush=True)


def peak_memory(
    size: tuple[int, int] = (1024, 256),
    batch: int = 32,
    precisions: tuple[str, ...] = ("float32", "bfloat16"),
    timeout: int = 240,
) -> str:
    """Peak resident memory of a training step at ``batch`` (each precision in a fresh process).

    The parent also samples the child's RSS twice a second, so a step that outlasts
    ``timeout`` on a busy machine still yields the peak seen so far (marked as such).
    """
    import psutil

    rows = []
    for p in precisions:
        if p == "bfloat16" and not cpu_has_bf16():
            continue
        code = f"from scintilab.bench.memory import _rss_child; _rss_child({tuple(size)!r}, {batch}, {p!r})"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        sampled, t0 = 0, time.perf_counter()
        while proc.poll() is None and time.perf_counter() - t0 < timeout:
            try:
                sampled = max(sampled, psutil.Process(proc.pid).memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            rows.append(
                f"| {size[0]}x{size[1]} | {batch} | {p} | >= {sampled / 2**30:.2f} (step not finished in {timeout} s) | - |"
            )
            continue
        try:
            rec = json.loads((proc.stdout.read() if proc.stdout else "").strip().splitlines()[-1])
            rows.append(
                f"| {size[0]}x{size[1]} | {batch} | {p} | {max(rec['peak_rss_mib'] / 1024, sampled / 2**30):.2f} | {rec['first_step_s']:.0f} |"
            )
        except (IndexError, ValueError):
            rows.append(f"| {size[0]}x{size[1]} | {batch} | {p} | failed (exit status {proc.returncode}) | - |")
    return "\n".join(
        [
            "| size | batch | precision | peak RSS GiB | first step s (incl. tracing) |",
            "|---|---:|---|---:|---:|",
            *rows,
        ]
    )
