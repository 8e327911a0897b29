"""The machine a benchmark ran on: CPU model, its kind, instruction sets, load.

Every section names it, because the same code runs different kernels (AMX, AVX-512 BF16,
AVX2) on different machine kinds, and BENCHMARKS.md keeps one section per kind.
"""

from __future__ import annotations

import os
import platform
import time

from scintilab.performance import cpu_flags, cpu_model

#: Flags worth printing beside CPU figures (the rest of /proc/cpuinfo is noise here).
SHOWN_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


#: Instruction-set families that decide which oneDNN kernels can run, with the flags that name them.
ISA_FAMILIES = (
    ("AVX2", ("avx2",)),
    ("AVX-512", ("avx512f",)),
    ("AVX512_BF16", ("avx512_bf16",)),
    ("AMX-BF16", ("amx_bf16",)),
)


def isa_line(flags: frozenset[str] | None = None) -> str:
    """Which of AVX2 / AVX-512 / AVX512_BF16 / AMX-BF16 the CPU has, e.g. ``AVX2 yes, AMX-BF16 no``."""
    flags = cpu_flags() if flags is None else flags
    return ", ".join(f"{name} {'yes' if any(f in flags for f in names) else 'no'}" for name, names in ISA_FAMILIES)


def machine_kind(flags: frozenset[str] | None = None) -> str:
    """A short name for the kind of CPU, used to keep one BENCHMARKS.md table per kind.

    The vendor and the richest instruction-set family, e.g. ``intel-amx``, ``amd-avx2``:
    two machines of one kind run the same oneDNN kernels, so their figures compare.
    """
    flags = cpu_flags() if flags is None else flags
    model = cpu_model().lower()
    vendor = "intel" if "intel" in model or "xeon" in model else "amd" if "amd" in model or "epyc" in model else "cpu"
    level = "generic"
    for name, names in ISA_FAMILIES:
        if any(f in flags for f in names):
            level = name.lower().replace("-512", "512").replace("_", "").replace("-", "")
    return f"{vendor}-{level}"


def machine_line() -> str:
    """One markdown line: CPU model, cores, instruction sets, library versions."""
    flags = cpu_flags()
    shown = [f for f in SHOWN_FLAGS if f in flags]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = [f"Python {platform.python_version()}"]
    for mod in ("tensorflow", "keras", "torch", "onnxruntime"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"CPU: {cpu_model()} (kind `{machine_kind(flags)}`), {cores} cores, {isa_line(flags)} "
        f"(flags {' '.join(shown) or '-'}); {', '.join(versions)}; "
        f"load average at start {load:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
