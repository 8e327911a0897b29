"""Benchmark sections: measure, print a markdown table, and write it into BENCHMARKS.md.

Each section is a function returning markdown. :func:`write_section` replaces the text
between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in BENCHMARKS.md (appending
the section when it is new), so sections can be re-measured one at a time and the rest
of the file, including hand-written notes, stays as it is.

Model speed is measured **interleaved**: every contender (Keras float32, Keras bfloat16,
PyTorch float32/bfloat16 at each thread count, ONNX Runtime) runs one measurement per
round, round after round (at least five rounds by default). Each framework configuration
lives in its own child process (their thread pools slow each other down when they share
one). Whatever else runs on the machine then slows all contenders alike. Figures are the
**median** round with its spread (lowest-highest round): a best-of-two swung by 2x between
runs on the same machine, a median of five interleaved rounds does not hide that. The
matmul ceiling is measured in the same run, before and after the contenders, so every
figure is also a fraction of the machine's own peak; the instruction sets and the oneDNN
kernel families that ran (:func:`onednn_kernels`) are printed beside it, because the same
code runs different kernels (AMX ``brg_conv``, ``jit:avx512_core_bf16``, ``avx2``) on
different machine kinds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scintilab.bench.ceiling import measure_ceiling

# The machine, the oneDNN kernels and peak memory have their own modules (named here too).
from scintilab.bench.machine import (
    ISA_FAMILIES,
    SHOWN_FLAGS,
    isa_line,
    machine_kind,
    machine_line,
)
from scintilab.bench.memory import (
    peak_memory,
)
from scintilab.bench.onednn import (
    compiled_inrac,
    kernels_markdown,
    onednn_kernels,
    parse_onednn_verbose,
)
from scintilab.export import OnnxScorer, export_onnx
from scintilab.performance import cpu_has_bf16, fold_batchnorm


# --------------------------------------------------------------------------- contenders
@dataclass
class Contender:
    """One thing whose images/s is measured: a name, a mode and a step function.

    ``step()`` runs one batch; the first call is an untimed warm-up (tracing, oneDNN
    primitive creation).
    """

    name: str
    mode: str  # "train" or "infer"
    precision: str  # "float32" or "bfloat16"
    step: Callable[[], Any]
    batch: int
    rates: list[float] = field(default_factory=list)
    warm: bool = False
    remote: bool = False

    def measure(self, steps: int) -> float:
        """Time ``steps`` calls (after the warm-up on first use) and record images/s.

        A contender living in a child process (:class:`_Group`) has ``step`` replaced by
        a function of ``steps`` that measures there and returns images/s.
        """
        if self.remote:
            rate = self.step(steps)
            self.rates.append(rate)
            return rate
        if not self.warm:
            self.step()
            self.warm = True
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        rate = self.batch * steps / (time.perf_counter() - t0)
        self.rates.append(rate)
        return rate

    @property
    def best(self) -> float:
        """The best round (the least disturbed by other work on the machine)."""
        return max(self.rates) if self.rates else float("nan")

    @property
    def median(self) -> float:
        """The median round: the figure every table reports."""
        return float(np.median(self.rates)) if self.rates else float("nan")

    @property
    def spread(self) -> tuple[float, float]:
        """(lowest, highest) round."""
        return (min(self.rates), max(self.rates)) if self.rates else (float("nan"), float("nan"))


def keras_contenders(
    size: tuple[int, int],
    batch: int,
    precision: str,
    *,
    fold: bool = True,
    num_classes: int = 3,
    seed: int = 0,
    before: bool = False,
) -> list[Contender]:
    """Keras inRAC training and inference steps on one preloaded batch.

    A preloaded batch (``train_on_batch``/``predict_on_batch``) measures the model, not
    the input pipeline, which has its own section.

    Args:
        size: (rows, cols).
        batch: images per step.
        precision: ``"float32"`` or ``"bfloat16"`` (the ``mixed_bfloat16`` policy).
        fold: also time inference of the batch-norm-folded copy
            (:func:`scintilab.performance.fold_batchnorm`).
        num_classes: classes of the head.
        seed: seed of weights and data.
        before: measure the engine as it was before issue 11's changes (Keras' own
            unfused batch norm and CBAM means; the caller also turns oneDNN off for this
            process), named
            ``keras-before``.
    """
    import keras

    import scintilab.models.blocks as blocks
    from scintilab.models import build_model

    if before:  # this child process only
        import scintilab.models.cbam as cbam

        blocks.BatchNorm = keras.layers.BatchNormalization
        cbam.FAST_TF_MEAN = False

    keras.utils.set_random_seed(seed)
    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    model = build_model("inrac", input_shape=(*size, 1), num_classes=num_classes, dtype_policy=policy)
    # jit_compile "auto" is what scintilab uses: off on CPU (see scintilab.performance).
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *size, 1), dtype=np.float32)
    y = rng.integers(0, num_classes, batch)
    name = "keras-before" if before else "keras"
    out = [
        Contender(name, "train", precision, lambda: model.train_on_batch(x, y), batch),
        Contender(name, "infer", precision, lambda: model.predict_on_batch(x), batch),
    ]
    if fold and not before:
        folded = fold_batchnorm(model)
        out.append(Contender("keras+fold", "infer", precision, lambda: folded.predict_on_batch(x), batch))
    return out


def torch_contenders(
    size: tuple[int, int], batch: int, precision: str, threads: int, num_classes: int = 3, seed: int = 0
) -> list[Contender]:
    """PyTorch inRAC (channels-last, autocast bf16 when asked) at ``threads`` threads."""
    import torch
    import torch.nn.functional as F

    from scintilab.bench.torch_reference import InRAC

    torch.manual_seed(seed)
    net = InRAC(num_classes).to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, *size, generator=gen).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), generator=gen)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    bf16 = precision == "bfloat16"

    def train() -> None:
        torch.set_num_threads(threads)
        net.train()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    def infer() -> None:
        torch.set_num_threads(threads)
        net.eval()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            torch.softmax(net(x), dim=1)

    name = f"torch/{threads}t"
    return [Contender(name, "train", precision, train, batch), Contender(name, "infer", precision, infer, batch)]


def onnx_contender(
    size: tuple[int, int], batch: int, workdir: Path, num_classes: int = 3, seed: int = 0
) -> list[Contender]:
    """ONNX Runtime inference of the exported float32 inRAC (empty without onnxruntime/tf2onnx)."""
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError:
        return []
    from scintilab.models import build_model

    model = build_model("inrac", input_shape=(*size, 1), num_classes=num_classes)
    path = export_onnx(model, workdir / f"inrac_{size[0]}x{size[1]}.onnx")
    scorer = OnnxScorer(path)
    x = np.random.default_rng(seed).random((batch, *size, 1), dtype=np.float32)
    return [Contender("onnxruntime", "infer", "float32", lambda: scorer.predict(x, batch), batch)]


def _contender_worker(conn: Any, kind: str, kwargs: dict[str, Any]) -> None:
    """Child process: build one group of contenders, then measure on request.

    Each framework gets its own process because their thread pools interfere when they
    share one: PyTorch's OpenMP and ONNX Runtime's workers spin-wait after every op, and
    TensorFlow's threads running next to them in the same process were slowed up to 10x.
    A child blocked on its pipe is idle, so only the contender being measured runs.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if kwargs.get("before"):
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # read once, when TensorFlow is imported below
    try:
        factory = {"keras": keras_contenders, "torch": torch_contenders, "onnx": onnx_contender}[kind]
        contenders = factory(**kwargs)
        conn.send([(c.name, c.mode, c.precision, c.batch) for c in contenders])
    except Exception as exc:  # noqa: BLE001 - report and stop; the parent skips the group
        conn.send(f"{type(exc).__name__}: {exc}")
        return
    while True:
        msg = conn.recv()
        if msg is None:
            return
        index, steps = msg
        try:
            conn.send(float(contenders[index].measure(steps)))
        except Exception as exc:  # noqa: BLE001
            conn.send(f"{type(exc).__name__}: {exc}")


class _Group:
    """A child process holding a group of contenders (see :func:`_contender_worker`)."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # a clean interpreter: no inherited thread pools
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_contender_worker, args=(child, kind, kwargs), daemon=True)
        self.proc.start()
        reply = self.conn.recv()
        self.error = reply if isinstance(reply, str) else ""
        self.members = (
            []
            if self.error
            else [
                Contender(name, mode, precision, self._measurer(i), batch, remote=True)
                for i, (name, mode, precision, batch) in enumerate(reply)
            ]
        )

    def _measurer(self, index: int) -> Callable[[int], float]:
        def run(steps: int) -> float:
            self.conn.send((index, steps))
            reply = self.conn.recv()
            if isinstance(reply, str):
                raise RuntimeError(reply)
            return reply

        return run

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(timeout=30)
            if self.proc.is_alive():
                self.proc.kill()


#: scintilab's engines (``keras-before`` is the pre-issue-11 baseline, not a contender).
OURS = ("keras", "keras+fold")


def train_flops_per_image(forward_flops: float) -> float:
    """Training FLOPs of one image: forward + backward (about twice the forward)."""
    return 3.0 * forward_flops


def model_speed(
    size: tuple[int, int] = (1024, 256),
    batch: int = 8,
    steps: int = 2,
    rounds: int = 5,
    precisions: tuple[str, ...] = ("float32", "bfloat16"),
    torch_threads: tuple[int, ...] = (1, 2),
    onnx: bool = True,
    before: bool = False,
    kernels: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[str, dict[str, Any]]:
    """Interleaved images/s of Keras vs PyTorch (vs ONNX Runtime), beside the matmul ceiling.

    Every figure is the median of ``rounds`` interleaved rounds, with the lowest and
    highest round beside it; ratios are of medians. With ``before``, scintilab's engine as
    it was before issue 11's changes (oneDNN off, unfused batch norm) is measured too, in
    the same rounds, as ``keras-before``. With ``kernels``, the oneDNN kernel families of
    one Keras step per precision are listed (:func:`onednn_kernels`).

    Returns:
        (markdown, raw figures as a dict).

    Raises:
        ValueError: fewer than one round.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    import keras

    from scintilab.models import build_model, forward_macs

    if "bfloat16" in precisions and not cpu_has_bf16():
        log("CPU has no bfloat16 instructions: measuring float32 only")
        precisions = tuple(p for p in precisions if p != "bfloat16")
    fwd = 2.0 * forward_macs(build_model("inrac", input_shape=(*size, 1), num_classes=3))
    keras.backend.clear_session()
    ceilings = {p: measure_ceiling(p).gflops for p in precisions}
    contenders: list[Contender] = []
    groups: list[_Group] = []
    with tempfile.TemporaryDirectory() as tmp:
        specs: list[tuple[str, dict[str, Any]]] = [
            ("keras", {"size": size, "batch": batch, "precision": p}) for p in precisions
        ]
        if before and "float32" in precisions:
            # float32 only: the old bfloat16 training step ran at ~0.07 img/s (minutes per round)
            specs += [("keras", {"size": size, "batch": batch, "precision": "float32", "before": True})]
        try:
            import torch  # noqa: F401

            specs += [
                ("torch", {"size": size, "batch": batch, "precision": p, "threads": t})
                for p in precisions
                for t in torch_threads
            ]
        except ImportError:
            log("PyTorch not installed (the 'bench' extra): no reference figures")
        if onnx:
            specs.append(("onnx", {"size": size, "batch": batch, "workdir": Path(tmp)}))
        try:
            for kind, kwargs in specs:
                group = _Group(kind, **kwargs)
                if group.error:
                    log(f"{kind} {kwargs.get('precision', '')}: not measured ({group.error})")
                groups.append(group)
                contenders += group.members
            for r in range(rounds):
                for c in contenders:
                    rate = c.measure(steps)
                    log(f"round {r + 1}/{rounds} {c.name:12s} {c.mode:5s} {c.precision:8s} {rate:7.2f} img/s")
        finally:
            for group in groups:
                group.close()
    # the ceiling again after the contenders: the better of the two is the machine's
    for p in precisions:
        ceilings[p] = max(ceilings[p], measure_ceiling(p).gflops)

    rows = []
    raw: dict[str, Any] = {
        "size": list(size),
        "batch": batch,
        "steps": steps,
        "rounds": rounds,
        "machine_kind": machine_kind(),
        "isa": isa_line(),
        "forward_gflops": fwd / 1e9,
        "ceiling_gflops": ceilings,
        "results": [],
    }
    for c in contenders:
        per_image = train_flops_per_image(fwd) if c.mode == "train" else fwd
        frac = per_image * c.median / 1e9 / ceilings[c.precision]
        lo, hi = c.spread
        raw["results"].append(
            {
                "name": c.name,
                "mode": c.mode,
                "precision": c.precision,
                "median": c.median,
                "low": lo,
                "high": hi,
                "best": c.best,
                "rounds": c.rates,
                "fraction": frac,
            }
        )
        rows.append(
            f"| {size[0]}x{size[1]} | {c.mode} | {c.precision} | {c.name} | {c.median:.2f} | "
            f"{lo:.2f}-{hi:.2f} | {100 * frac:.1f}% |"
        )

    def medians(mode: str, precision: str | None, names: Callable[[str], bool]) -> list[float]:
        return [
            r["median"]
            for r in raw["results"]
            if r["mode"] == mode and (precision is None or r["precision"] == precision) and names(r["name"])
        ]

    ours_names = lambda name: name in OURS  # noqa: E731
    torch_names = lambda name: name.startswith("torch")  # noqa: E731
    ratio_lines = []
    for mode in ("train", "infer"):
        for p in precisions:
            ours, ref = medians(mode, p, ours_names), medians(mode, p, torch_names)
            if ours and ref:
                ratio_lines.append(f"| {mode} | {p} | {max(ours):.2f} | {max(ref):.2f} | {max(ours) / max(ref):.2f} |")
    nan = float("nan")
    best_of = {
        m: (max(medians(m, None, ours_names), default=nan), max(medians(m, None, torch_names), default=nan))
        for m in ("train", "infer")
    }
    raw["ratio_best_config"] = {m: ours / ref for m, (ours, ref) in best_of.items()}
    before_lines = []
    for mode in ("train", "infer"):
        for p in precisions:
            old, new = medians(mode, p, lambda n: n == "keras-before"), medians(mode, p, ours_names)
            if old and new:
                before_lines.append(f"| {mode} | {p} | {max(old):.2f} | {max(new):.2f} | {max(new) / max(old):.2f}x |")
    if before_lines:
        before_lines = [
            "",
            "Before (oneDNN off, Keras' unfused batch norm) and after (oneDNN on, fused batch norm, "
            "BN folding for inference), same rounds, medians:",
            "",
            "| step | precision | before img/s | after img/s | speed-up |",
            "|---|---|---:|---:|---:|",
            *before_lines,
        ]
    kernel_lines: list[str] = []
    if kernels:
        raw["onednn"] = {}
        for p in precisions:
            log(f"oneDNN kernels, {p}: one verbose step in a child process")
            found = onednn_kernels(size, batch, p)
            raw["onednn"][p] = found
            kernel_lines += ["", kernels_markdown(found, p)]
    ceil_txt = ", ".join(f"{p} {v:.0f} GFLOP/s" for p, v in ceilings.items())
    md = "\n".join(
        [
            f"Machine kind `{raw['machine_kind']}` ({raw['isa']}). Input {size[0]}x{size[1]}x1, batch {batch}, "
            f"{steps} timed steps per round after one warm-up, {rounds} interleaved rounds: the median round "
            f"counts, the lowest and highest round beside it. Forward {fwd / 1e9:.1f} GFLOP/image "
            f"(training counted as 3x forward). Matmul ceiling (2048^2, best of TF/PyTorch, same run): {ceil_txt}.",
            "",
            "| size | step | precision | engine | median img/s | rounds low-high | median of ceiling |",
            "|---|---|---|---|---:|---|---:|",
            *rows,
            "",
            "scintilab (best Keras engine) vs the PyTorch reference (best thread count), same precision, medians:",
            "",
            "| step | precision | scintilab img/s | PyTorch img/s | ratio |",
            "|---|---|---:|---:|---:|",
            *ratio_lines,
            "",
            f"Best configuration against best configuration (medians): training {raw['ratio_best_config']['train']:.2f}x, "
            f"inference {raw['ratio_best_config']['infer']:.2f}x the PyTorch reference.",
            *before_lines,
            *kernel_lines,
        ]
    )
    return md, raw


# --------------------------------------------------------------------------- input pipeline
def input_pipeline(size: tuple[int, int] = (1024, 256), n: int = 96, batch: int = 8, augment: bool = True) -> str:
    """Images/s the input pipeline delivers with no model: ScanSequence over a float32 memmap.

    Args:
        size: image (rows, cols).
        n: images in the memmap (written to a temporary file, as the dataset cache is).
        batch: batch size.
        augment: also time the online augmentation layers (rotation + translation).
    """
    from scintilab.keras_input import ScanSequence

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, *size))
        mm[:] = np.random.default_rng(0).random((n, *size), dtype=np.float32)
        mm.flush()
        del mm
        images = np.load(path, mmap_mode="r")
        labels = np.zeros(n, dtype=np.int64)
        variants: list[tuple[str, Any]] = [("memmap -> batch", None)]
        if augment:
            from scintilab.augment import augmentation_layers

            variants.append(("memmap -> batch -> rotate+translate", augmentation_layers(3.0, 3, size, seed=0)))
        for name, layer in variants:
            seq = ScanSequence(images, labels, batch_size=batch, shuffle=True, seed=0, augment=layer)
            seq[0]  # warm-up (layer tracing)
            t0 = time.perf_counter()
            count = 0
            for i in range(len(seq)):
                count += len(seq[i][0])
            rows.append(f"| {size[0]}x{size[1]} | {name} | {batch} | {count / (time.perf_counter() - t0):.1f} |")
    return "\n".join(["| size | pipeline | batch | images/s |", "|---|---|---:|---:|", *rows])


# --------------------------------------------------------------------------- other scripts
#: Other engineers' benchmark scripts and the small arguments they run with here.
SCRIPTS: dict[str, list[str]] = {
    "synth": ["benchmarks/bench_synth.py", "--patients", "40"],
    "ingest": ["benchmarks/bench_ingest.py", "--n", "100"],
    "fusion": ["benchmarks/bench_fusion.py", "--studies", "60"],
    "models": ["benchmarks/bench_models.py", "--no-speed"],
    "audit": ["benchmarks/bench_audit.py", "--sizes", "300:1024x256"],
}


def run_script(name: str, root: Path, timeout: int = 290) -> str:
    """Run one benchmark script and return its output as a fenced block (or why it failed)."""
    cmd = SCRIPTS[name]
    script = root / cmd[0]
    if not script.exists():
        return f"`{cmd[0]}` is not in the repository yet."
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    t0 = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, *cmd], cwd=root, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"`{' '.join(cmd)}` ran past {timeout} s and was stopped."
    text = out.stdout.strip() or out.stderr.strip()[-2000:]
    status = "" if out.returncode == 0 else f" (exit status {out.returncode})"
    return f"`python {' '.join(cmd)}`{status}, {time.perf_counter() - t0:.0f} s wall:\n\n```\n{text}\n```"


# --------------------------------------------------------------------------- BENCHMARKS.md
def write_section(path: str | Path, name: str, title: str, body: str) -> Path:
    """Replace (or append) the section ``name`` of a markdown file.

    Args:
        path: BENCHMARKS.md.
        name: marker name (``<!-- bench:NAME -->``).
        title: the section's heading text (written as ``## title``).
        body: markdown below the heading.

    Returns:
        ``path``.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"<!-- bench:{name} -->\n## {title}\n\n{body.strip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
    return path


__all__ = [
    "Contender",
    "ISA_FAMILIES",
    "OURS",
    "SCRIPTS",
    "SHOWN_FLAGS",
    "compiled_inrac",
    "input_pipeline",
    "isa_line",
    "keras_contenders",
    "kernels_markdown",
    "machine_kind",
    "machine_line",
    "model_speed",
    "onednn_kernels",
    "onnx_contender",
    "parse_onednn_verbose",
    "peak_memory",
    "run_script",
    "torch_contenders",
    "train_flops_per_image",
    "write_section",
]
