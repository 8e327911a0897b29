"""Cohort-scale inference: ONNX export of a trained model and ONNX Runtime scoring.

Scoring thousands of studies needs no training machinery: a trained classifier is
exported once to ONNX (Keras' own ``model.export(format="onnx")``, which uses tf2onnx on
the TensorFlow backend) and run with ONNX Runtime, which folds each batch norm into its
convolution and fuses the ReLUs, work that the Keras graph does as separate passes over
the feature maps. Whether that beats Keras on a given CPU is measured by ``scintilab
bench`` (BENCHMARKS.md); :func:`score_cohort` takes either engine, so the faster one can
be used without changing anything else.

A mixed-precision model is exported as its float32 twin (the weights are float32 under
a mixed policy anyway): ONNX Runtime has no bfloat16 convolutions on CPU.

``onnxruntime`` and ``tf2onnx`` are optional (the ``export`` extra); importing this module
does not need them.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab import runs as runs_mod
from scintilab.errors import InputError

_MIXED = ("mixed_bfloat16", "mixed_float16", "bfloat16", "float16")


def _float32_config(obj: Any) -> Any:
    """A copy of a Keras config with every (mixed) precision dtype policy set to float32."""
    if isinstance(obj, dict):
        out = {k: _float32_config(v) for k, v in obj.items()}
        if out.get("class_name") == "DTypePolicy" and isinstance(out.get("config"), dict):
            if out["config"].get("name") in _MIXED:
                out["config"] = {**out["config"], "name": "float32"}
        return out
    if isinstance(obj, list):
        return [_float32_config(v) for v in obj]
    if obj in _MIXED:
        return "float32"
    return obj


def float32_twin(model: Any) -> Any:
    """The same network computing in float32, sharing nothing but copied weights.

    Returns ``model`` itself when it already computes in float32.
    """
    import keras

    if all(getattr(layer, "compute_dtype", "float32") == "float32" for layer in model.layers):
        return model
    from scintilab.models import CBAM

    twin = keras.Model.from_config(_float32_config(model.get_config()), custom_objects={"CBAM": CBAM})
    twin.set_weights(model.get_weights())
    return twin


def export_onnx(model: Any, path: str | Path, *, float32: bool = True) -> Path:
    """Write ``model`` as an ONNX file for ONNX Runtime.

    Args:
        model: a built Keras model (e.g. from :func:`scintilab.runs.load_run` or
            ``keras.saving.load_model``); a model never called is called once on zeros,
            because the exporter traces a call.
        path: the ``.onnx`` file to write (its folder is created).
        float32: export the float32 twin of a mixed-precision model (see module docstring).

    Returns:
        The written path.

    Raises:
        ImportError: ``tf2onnx`` (TensorFlow backend) is not installed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = float32_twin(model) if float32 else model
    shape = tuple(int(d) for d in net.input_shape[1:])
    # The ONNX exporter needs a model that has been called (it traces that signature).
    net.predict(np.zeros((1, *shape), dtype=np.float32), verbose=0)
    net.export(str(path), format="onnx", verbose=False)
    return path


class OnnxScorer:
    """An ONNX Runtime session with a Keras-like ``predict``.

    Args:
        path: the ``.onnx`` file (from :func:`export_onnx`).
        threads: intra-op threads (None: ONNX Runtime's default, one per core).

    Raises:
        InputError: the file is missing or is not a loadable ONNX model.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, "ONNX model not found")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise InputError(self.path, f"not a loadable ONNX model ({type(exc).__name__}: {exc})") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = tuple(inp.shape[1:])  # (rows, cols, 1)

    def predict(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Class probabilities (N, classes) for images ``x`` (N, rows, cols, 1), in batches."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        outs = [
            self.session.run(None, {self.input_name: np.ascontiguousarray(x[i : i + batch_size])})[0]
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(outs, axis=0) if outs else np.zeros((0, 0), np.float32)


def _predict(engine: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
    if isinstance(engine, OnnxScorer):
        return engine.predict(x, batch_size)
    # predict_on_batch: no per-call dataset/callback set-up, which model.predict pays per chunk
    return np.concatenate(
        [
            np.asarray(engine.predict_on_batch(x[i : i + batch_size]), dtype=np.float32)
            for i in range(0, len(x), batch_size)
        ],
        axis=0,
    )


def score_cohort(
    engine: Any,
    images: Any,
    *,
    keys: Sequence[str] | None = None,
    classes: Sequence[str] = ("NoMet", "ADMet", "nADMet"),
    batch_size: int = 32,
    chunk: int = 256,
    progress: bool = False,
    fold: bool = True,
) -> pd.DataFrame:
    """Class probabilities for a whole cohort, read chunk by chunk (memmaps stay on disk).

    Args:
        engine: a Keras model or an :class:`OnnxScorer`.
        images: (N, rows, cols) or (N, rows, cols, 1) array or memmap, or an ImageSet
            (its ``images`` and ``study_keys`` are used).
        keys: one pseudonymous key per image (default: the ImageSet's study keys, else
            the image index).
        classes: class names in output order.
        batch_size: images per engine call.
        chunk: images read from ``images`` at a time.
        progress: print one line per chunk with images/s.
        fold: score a Keras model through its batch-norm-folded inference copy
            (:func:`scintilab.performance.fold_batchnorm`; same probabilities within
            float rounding, 1.1-1.3x faster on CPU in BENCHMARKS.md).

    Returns:
        DataFrame with ``key``, ``p_<class>`` per class and ``pred``.

    Raises:
        InputError: the images do not match the engine's input size.
    """
    if hasattr(images, "images") and hasattr(images, "study_keys"):
        keys = list(images.study_keys) if keys is None else keys
        images = images.images
    n = len(images)
    keys = [str(i) for i in range(n)] if keys is None else list(keys)
    if len(keys) != n:
        raise ValueError(f"{len(keys)} keys for {n} images")
    expected = engine.input_shape if isinstance(engine, OnnxScorer) else tuple(engine.input_shape[1:])
    got = tuple(images.shape[1:3])
    if tuple(expected[:2]) != got:
        raise InputError(None, f"images are {got[0]}x{got[1]} but the model takes {expected[0]}x{expected[1]}")
    if fold and not isinstance(engine, OnnxScorer):
        from scintilab.performance import fold_batchnorm

        engine = fold_batchnorm(engine)
    probs = []
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        x = np.asarray(images[start : start + chunk], dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        probs.append(_predict(engine, x, batch_size))
        if progress:
            done = min(n, start + chunk)
            print(f"scored {done}/{n} images ({done / (time.perf_counter() - t0):.1f} img/s)", flush=True)
    p = np.concatenate(probs, axis=0) if probs else np.zeros((0, len(classes)), np.float32)
    if p.shape[1] != len(classes):
        raise ValueError(f"the model gives {p.shape[1]} classes, {len(classes)} names given")
    df = pd.DataFrame({"key": keys})
    for k, c in enumerate(classes):
        df[f"p_{c}"] = p[:, k]
    df["pred"] = np.asarray(classes)[p.argmax(axis=1)] if len(p) else []
    return df


def max_abs_difference(model: Any, scorer: OnnxScorer, x: np.ndarray, batch_size: int = 32) -> float:
    """Largest absolute difference between Keras (float32 twin) and ONNX Runtime probabilities."""
    x = np.asarray(x, dtype=np.float32)
    twin = float32_twin(model)
    return float(np.abs(_predict(twin, x, batch_size) - scorer.predict(x, batch_size)).max())


def cli_main(argv: list[str]) -> int:
    """``python -m scintilab.export RUN_DIR [--out model.onnx] [--check N]``: export a run's model.

    Returns:
        0 on success, 1 when the run folder has no model.
    """
    parser = argparse.ArgumentParser(prog="scintilab export", description="Export a run's model to ONNX.")
    parser.add_argument("run_dir", help="a run directory written by 'scintilab train'")
    parser.add_argument("--out", default=None, help="ONNX file (default RUN_DIR/model.onnx)")
    parser.add_argument(
        "--check", type=int, default=8, help="random images to compare Keras and ONNX Runtime on (0: skip)"
    )
    args = parser.parse_args(argv)
    import keras

    from scintilab.models import CBAM

    run_dir = Path(args.run_dir)
    model_path = run_dir / runs_mod.MODEL_FILE
    if not model_path.exists():
        print(f"scintilab export: {InputError(model_path, 'no trained model in this run folder')}")
        return 1
    model = keras.saving.load_model(model_path, custom_objects={"CBAM": CBAM})
    out = export_onnx(model, args.out or run_dir / "model.onnx")
    print(f"wrote {out}")
    if args.check:
        shape = tuple(int(d) for d in model.input_shape[1:])
        x = np.random.default_rng(0).random((args.check, *shape), dtype=np.float32)
        print(f"max |Keras - ONNX Runtime| on {args.check} images: {max_abs_difference(model, OnnxScorer(out), x):.2e}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(cli_main(sys.argv[1:]))
