"""Train a classifier from a :class:`~scintilab.presets.TrainConfig` into a run directory.

One call, :func:`train`, does what the paper's Methods describe: build dataset D1/D2/D3
from the cohort, split it 7:3 *by patient*, train the model with the configured
optimizer, predict the test images, and score them. Everything lands in a run folder
(see :mod:`scintilab.runs`) that later notebooks read instead of re-training.

Reproducibility and robustness:

* One seed (``config.seed``) drives the split, the augmentation and Keras
  (:func:`scintilab.utils.set_seed`, plus the backend's deterministic kernels), so two
  runs with the same seed give the same history.
* A checkpoint (full model with optimizer state, and the epoch reached) is written after
  every epoch; calling :func:`train` again on the same folder resumes from it. A finished
  run is returned as is.
* A NaN or infinite loss or output stops training
  (:func:`~scintilab.training_callbacks.nonfinite_guard`): the run folder records the
  epoch (``nonfinite.txt``, status ``"nonfinite"``) and
  :class:`~scintilab.runs.NonFiniteError` says what to try, instead of NaN predictions
  reaching the evaluation.
* Keras prints one line per epoch (``verbose=2``), which reads well in logs and notebooks.

This module holds the loop (optimizer, determinism, the run folder, :func:`train`), the
``scintilab train`` command and :func:`find_or_train`. The data side (fingerprints, the
image set, the split and its leak checks, class weights) is in
:mod:`scintilab.training_data`; the Keras callbacks and the training curves are in
:mod:`scintilab.training_callbacks`. Their public names are re-exported here, where tests
and notebooks import them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab import runs as runs_mod
from scintilab.distributed import distribution_scope
from scintilab.errors import EXIT_USAGE, InputError, partial_exit
from scintilab.evaluation import evaluate_run
from scintilab.ingest import resolve_manifest
from scintilab.outputs import LOCK_SUFFIX, RunLock
from scintilab.performance import resolve_precision
from scintilab.presets import PRESETS, TrainConfig, audit_files, config_from_preset, parse_override
from scintilab.provenance import package_versions
from scintilab.training_callbacks import (
    CKPT_MODEL,
    STATE_FILE,
    checkpoint_callbacks,
    history_figure,
    live_curves_callback,
    nonfinite_guard,
)
from scintilab.training_data import (
    check_leaks,
    class_weight_dict,
    dataset_fingerprint,
    labels_for,
    load_image_set,
    resolve_data_fingerprint,
    split_fingerprint,
    split_indices,
    studies_fingerprint,
)
from scintilab.utils import reseed_generators, set_seed

TEST_IMAGES_FILE = "test_images.npy"


@dataclass
class RunResult:
    """What :func:`train` returns.

    Attributes:
        run_dir: the run folder.
        config: the configuration trained.
        history: per-epoch history (all epochs, across resumes).
        predictions: per-image test predictions.
        metrics: the ``metrics.json`` content (test split, with CIs).
        model: the trained model (None when the run was reused and not loaded).
        reused: True when a finished run was found and nothing was trained.
        wall_s: seconds this call spent (0 when reused).
    """

    run_dir: Path
    config: TrainConfig
    history: pd.DataFrame
    predictions: pd.DataFrame
    metrics: dict[str, Any]
    model: Any = None
    reused: bool = False
    wall_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_run(cls, run: runs_mod.Run, reused: bool = True) -> RunResult:
        """Wrap a :class:`scintilab.runs.Run` read from disk."""
        return cls(run.path, run.config, run.history, run.predictions, run.metrics, None, reused, 0.0, run.info)


# --------------------------------------------------------------------------- training
def _make_optimizer(config: TrainConfig) -> Any:
    import keras

    name = config.optimizer.lower()
    table = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9),
        "rmsprop": keras.optimizers.RMSprop,
    }
    return table[name](learning_rate=config.learning_rate)


def _enable_determinism(config: TrainConfig) -> None:
    import keras

    if config.deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # Same seed, same history: TF's CPU/GPU kernels may otherwise reduce in a
        # thread-dependent order. Costs some speed, so it is a config switch.
        tf.config.experimental.enable_op_determinism()


def _prepare_run_dir(config: TrainConfig, run_dir: Path, fingerprint: str, resume: bool) -> tuple[str, int]:
    """Decide what to do with ``run_dir``: ``("reuse"|"resume"|"fresh", start_epoch)``.

    Raises:
        ValueError: the folder holds a run of a different configuration.
    """
    cfg_path = run_dir / runs_mod.CONFIG_FILE
    if not cfg_path.exists():
        return "fresh", 0
    info = runs_mod.read_info(run_dir)
    if info.get("fingerprint") != fingerprint:
        if resume:
            raise ValueError(
                f"{run_dir} holds a run with another configuration (fingerprint {info.get('fingerprint')} != {fingerprint}); "
                "choose another folder or pass resume=False to overwrite it"
            )
        return "fresh", 0
    if not resume:
        return "fresh", 0
    if runs_mod.load_run(run_dir).complete:
        return "reuse", 0
    state = run_dir / runs_mod.CHECKPOINT_DIR / STATE_FILE
    if state.exists() and (run_dir / runs_mod.CHECKPOINT_DIR / CKPT_MODEL).exists():
        return "resume", int(json.loads(state.read_text())["epoch"])
    return "fresh", 0


def _clear_run_dir(run_dir: Path) -> None:
    # Only the files a run writes are removed: a user's own notes in the folder survive.
    for name in (
        runs_mod.CONFIG_FILE,
        runs_mod.MODEL_FILE,
        runs_mod.HISTORY_FILE,
        runs_mod.PREDICTIONS_FILE,
        runs_mod.METRICS_FILE,
        TEST_IMAGES_FILE,
        runs_mod.SKIPPED_FILE,
        runs_mod.NONFINITE_FILE,
    ):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / runs_mod.CHECKPOINT_DIR, ignore_errors=True)


def _stop_nonfinite(run_dir: Path, info: dict[str, Any], found: tuple[int, str]) -> None:
    """Record a run that went non-finite in its folder and raise :class:`~scintilab.runs.NonFiniteError`."""
    # The last checkpoint holds the NaN weights: resuming from it would go nowhere, so the
    # same command trains afresh (it may not recur where kernels are non-deterministic).
    shutil.rmtree(run_dir / runs_mod.CHECKPOINT_DIR, ignore_errors=True)
    (run_dir / runs_mod.MODEL_FILE).unlink(missing_ok=True)
    raise runs_mod.record_nonfinite(run_dir, info, *found)


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    studies: Sequence[Any] | None = None,
    dataset: Any = None,
    resume: bool = True,
    verbose: int | None = None,
    callbacks: Sequence[Any] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    distribution: str | None = None,
    split: Any = None,
) -> RunResult:
    """Train ``config`` and write a complete run directory in ``out_dir``.

    Args:
        config: what to train (see :mod:`scintilab.presets`).
        out_dir: the run folder (created). If it holds a finished run of the same
            configuration, that run is returned without training; if it holds an
            interrupted one, training resumes from its last checkpoint.
        studies: study records to build the dataset from (default: ``config.data``).
        dataset: a ready image set (``images`` (N,H,W), ``labels``, ``patient_keys``,
            ``study_keys``, ``kinds``, ``aug``, ``subset(idx)``); overrides ``studies``.
        resume: False starts from scratch, overwriting the run files in ``out_dir``.
        verbose: Keras verbosity (default ``config.verbose``; 2 = one line per epoch).
        callbacks: extra Keras callbacks (e.g.
            :func:`~scintilab.training_callbacks.live_curves_callback`).
        cache_dir: dataset cache folder (see :func:`~scintilab.training_data.load_image_set`).
        distribution: data-parallel training, ``"mirrored"`` or ``"multiworker"``
            (see :mod:`scintilab.distributed`); default ``config.distribution`` when the
            config has that field, else one device.
        split: a hand-made split (``study_key, split`` with train/val/test, DataFrame or
            CSV) used instead of drawing one; it is checked against the audit all the same.

    Returns:
        The :class:`RunResult`.

    Raises:
        InputError: the data cannot be read.
        scintilab.audit.LeakageError: the audit (``config.audit_flags``) finds a duplicate
            or same-patient pair across the split and ``config.allow_leaks`` is False.
        ValueError: ``out_dir`` holds a different run (with ``resume=True``), or the
            dataset does not match the configured input size.
        scintilab.runs.NonFiniteError: the loss or the model's outputs became NaN/inf
            (:func:`~scintilab.training_callbacks.nonfinite_guard`); training stopped and
            the run folder records it.
    """
    run_dir = Path(out_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(run_dir, "is a file, not a folder: the run folder to write")
    run_dir.mkdir(parents=True, exist_ok=True)
    # two trainings into one folder would overwrite each other's checkpoints: the second is refused
    lock = RunLock(run_dir / (".train" + LOCK_SUFFIX))
    lock.acquire()
    try:
        return _train_in(
            config,
            run_dir,
            studies=studies,
            dataset=dataset,
            resume=resume,
            verbose=verbose,
            callbacks=callbacks,
            cache_dir=cache_dir,
            distribution=distribution,
            split=split,
        )
    finally:
        lock.release()


def _train_in(
    config: TrainConfig,
    run_dir: Path,
    *,
    studies: Sequence[Any] | None,
    dataset: Any,
    resume: bool,
    verbose: int | None,
    callbacks: Sequence[Any],
    cache_dir: str | os.PathLike[str] | None,
    distribution: str | None,
    split: Any,
) -> RunResult:
    """:func:`train`'s work, in a run folder that exists and whose lock is held."""
    import keras

    from scintilab.models import build_model

    t0 = time.perf_counter()
    verbose = config.verbose if verbose is None else verbose

    set_seed(config.seed)
    _enable_determinism(config)
    ds = (
        dataset if dataset is not None else load_image_set(config, studies, cache_dir=cache_dir, progress=bool(verbose))
    )
    data_fp = resolve_data_fingerprint(config, studies, dataset)
    if split is not None:  # a hand-made split changes the result: a run of another split is not reused
        data_fp += "+split:" + split_fingerprint(split)
    fingerprint = config.fingerprint(data_fp)
    action, start_epoch = _prepare_run_dir(config, run_dir, fingerprint, resume)
    if action == "reuse":
        return RunResult.from_run(runs_mod.load_run(run_dir), reused=True)
    if action == "fresh":
        _clear_run_dir(run_dir)

    images = np.asarray(ds.images, dtype=np.float32)
    if images.shape[1:3] != tuple(config.image_size):
        raise ValueError(f"dataset images are {images.shape[1:3]}, config.image_size is {tuple(config.image_size)}")
    y = labels_for(config, ds.labels)
    train_idx, val_idx, test_idx = split_indices(config, ds, split)
    # Issue 14: refuse (before anything is fitted) a split with a duplicate across it.
    audit_record = check_leaks(config, ds, {"train": train_idx, "val": val_idx, "test": test_idx})
    x = images[..., None]  # channels-last, one channel

    info: dict[str, Any] = {
        "config": config.to_dict(),
        "fingerprint": fingerprint,
        "data_fingerprint": data_fp,
        "classes": list(config.classes),
        "dataset": {
            "name": getattr(ds, "name", config.dataset),
            "normalization": getattr(ds, "normalization", None),
            "n_images": int(len(y)),
        },
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "n_test": int(len(test_idx)),
        "n_train_patients": int(len(set(np.asarray(ds.patient_keys)[train_idx]))),
        "n_test_patients": int(len(set(np.asarray(ds.patient_keys)[test_idx]))),
        "audit": audit_record,
        # studies the dataset left out (unreadable, unlabelled), by key: a run says what it lacks
        "skipped": [[str(k), str(r)] for k, r in getattr(ds, "skipped", [])],
        "versions": package_versions(),
        "status": "running",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    runs_mod.write_json(run_dir / runs_mod.CONFIG_FILE, info)
    (run_dir / runs_mod.NONFINITE_FILE).unlink(missing_ok=True)  # an earlier try's record
    (run_dir / runs_mod.SKIPPED_FILE).unlink(missing_ok=True)
    if info["skipped"]:
        from scintilab.outputs import write_csv

        write_csv(pd.DataFrame(info["skipped"], columns=["study_key", "reason"]), run_dir / runs_mod.SKIPPED_FILE)

    # Speed settings (scintilab.performance): mixed_precision True/"auto" picks bfloat16
    # on a CPU with bf16 instructions and float16/bfloat16 on a GPU. The model is built
    # (or reloaded) inside the data-parallel scope when a distribution is asked for.
    policy = resolve_precision(config.mixed_precision)
    distribution = distribution or getattr(config, "distribution", None)
    info["speed"] = {"dtype_policy": policy, "distribution": distribution or "none"}
    history_rows: list[dict[str, Any]] = []
    with distribution_scope(distribution):
        if action == "resume":
            model = keras.saving.load_model(run_dir / runs_mod.CHECKPOINT_DIR / CKPT_MODEL, compile=True)
            model.run_eagerly = config.run_eagerly
            hist_path = run_dir / runs_mod.HISTORY_FILE
            if hist_path.exists():
                # a crash between history and checkpoint writes can leave an extra row
                history_rows = [
                    r for r in pd.read_csv(hist_path).to_dict(orient="records") if r["epoch"] <= start_epoch
                ]
            if verbose:
                print(f"resuming {run_dir.name} from epoch {start_epoch}/{config.epochs}")
        else:
            options = dict(config.model_options)
            if policy != "float32":
                options["dtype_policy"] = policy
            model = build_model(config.model, input_shape=config.input_shape, num_classes=config.num_classes, **options)
            model.compile(
                optimizer=_make_optimizer(config),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
                jit_compile=False if config.run_eagerly else config.jit_compile,
                run_eagerly=config.run_eagerly,
            )

    validation = (x[val_idx], y[val_idx]) if len(val_idx) else None
    es_monitor = "val_loss" if validation is not None else "loss"
    guard = nonfinite_guard(x[train_idx[: config.batch_size]])
    cbs = [guard] + checkpoint_callbacks(config, run_dir, history_rows, es_monitor) + list(callbacks)
    stopped_early = False
    if start_epoch < config.epochs:
        from scintilab.keras_input import ScanSequence

        layer = None
        if config.augment_online:
            from scintilab.augment import augmentation_layers

            # random rotation/translation per batch on top of the offline copies
            layer = augmentation_layers(config.r_t, int(round(config.t_t)), tuple(config.image_size), seed=config.seed)
        # Equal-size batches (the last one completed from the rest of the epoch): one
        # batch shape, one traced step, and no re-run for a smaller last batch, which
        # corrupted the heap in TensorFlow 2.21's oneDNN kernels (see ScanSequence).
        fit_x = ScanSequence(
            images,
            y,
            batch_size=config.batch_size,
            shuffle=True,
            seed=config.seed,
            augment=layer,
            indices=train_idx,
            equal_batches=True,
        )
        # Resume reproducibility (issue 29): one fit() per epoch, each given its epoch's
        # batches and its dropout draws from (seed, epoch) alone. A single fit() over all
        # epochs cannot promise that: Keras fetches batches ahead and calls the dataset's
        # on_epoch_end on its own schedule, its shuffle uses Python's global random state,
        # and the dropout seed state is not saved in a checkpoint, so a resumed run drew
        # other batches and other masks than an uninterrupted one. Callbacks see
        # on_train_begin per epoch; the early stopping's counter is rebuilt from the
        # history each time (ResumableEarlyStopping).
        weights = class_weight_dict(config, y[train_idx])
        total = config.epochs

        class RunProgbar(keras.callbacks.ProgbarLogger):
            """Keras' progress bar, headed "Epoch k/<the run's epochs>" though each fit() is one epoch."""

            def set_params(self, params: dict[str, Any]) -> None:
                super().set_params({**params, "epochs": total})

        cbs = cbs + [RunProgbar()]
        last = start_epoch - 1
        for epoch in range(start_epoch, config.epochs):
            fit_x.set_epoch(epoch)
            reseed_generators(model, config.seed, epoch)
            with distribution_scope(distribution):  # JAX's Keras distribution shards the batches during fit
                # shuffle=False: the sequence shuffles by (seed, epoch); Keras' own shuffle of a
                # PyDataset draws from Python's global random state, which a resume does not restore
                hist = model.fit(
                    fit_x,
                    epochs=epoch + 1,
                    initial_epoch=epoch,
                    validation_data=validation,
                    class_weight=weights,
                    callbacks=cbs,
                    verbose=verbose,
                    shuffle=False,
                )
            if hist.epoch:
                last = epoch
            if not hist.epoch or guard.found is not None or model.stop_training:
                break
        stopped_early = (last + 1) < config.epochs and guard.found is None
    if guard.found is not None:
        _stop_nonfinite(run_dir, info, guard.found)

    model.save(run_dir / runs_mod.MODEL_FILE)
    history = pd.DataFrame(history_rows)
    history.to_csv(run_dir / runs_mod.HISTORY_FILE, index=False)

    # predictions: test split always, training split when asked
    parts = [("test", test_idx)] + ([("train", train_idx)] if config.predict_train else [])
    frames = []
    for split_name, idx in parts:
        if len(idx) == 0:
            continue
        proba = np.asarray(model.predict(x[idx], batch_size=config.batch_size, verbose=0), dtype=float)
        if not np.isfinite(proba).all():
            _stop_nonfinite(run_dir, info, (len(history_rows), f"{split_name} predictions"))
        frames.append(predictions_frame(ds, idx, y, proba, config.classes, split_name))
    predictions = pd.concat(frames, ignore_index=True)
    predictions.to_csv(run_dir / runs_mod.PREDICTIONS_FILE, index=False)
    if config.save_test_images:
        # float16 halves the size; explanations (Grad-CAM, galleries) read these back so a
        # run folder is self-contained and notebooks never need the cohort again.
        np.save(run_dir / TEST_IMAGES_FILE, images[test_idx].astype(np.float16))

    metrics = evaluate_run(run_dir, n_boot=config.n_boot, rng=config.seed, write=True)
    wall = time.perf_counter() - t0
    info.update(
        {
            "status": "complete",
            "epochs_run": int(len(history)),
            "stopped_early": bool(stopped_early),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "wall_s_last_call": round(wall, 1),
            "test_image_index": test_idx.tolist(),
        }
    )
    runs_mod.write_json(run_dir / runs_mod.CONFIG_FILE, info)
    shutil.rmtree(run_dir / runs_mod.CHECKPOINT_DIR, ignore_errors=True)
    return RunResult(run_dir, config, history, predictions, metrics, model, False, wall, info)


def predictions_frame(
    ds: Any, idx: np.ndarray, y: np.ndarray, proba: np.ndarray, classes: Sequence[str], split: str
) -> pd.DataFrame:
    """The predictions table rows for images ``idx`` (pseudonymous keys only)."""
    classes = list(classes)
    df = pd.DataFrame(
        {
            "image_index": idx,
            "study_key": np.asarray(ds.study_keys)[idx],
            "patient_key": np.asarray(ds.patient_keys)[idx],
            "kind": np.asarray(getattr(ds, "kinds", ["?"] * len(y)))[idx],
            "aug": np.asarray(getattr(ds, "aug", [""] * len(y)), dtype=object)[idx],
            "split": split,
            "true": np.asarray(classes)[y[idx]],
        }
    )
    for k, c in enumerate(classes):
        df[f"p_{c}"] = proba[:, k]
    df["pred"] = np.asarray(classes)[proba.argmax(axis=1)]
    df["correct"] = df["pred"] == df["true"]
    return df


# --------------------------------------------------------------------------- CLI
def cli_main(argv: list[str]) -> int:
    """``scintilab train --preset quick --data MANIFEST --model inrac --out RUN_DIR [--set k=v ...]``."""
    parser = argparse.ArgumentParser(prog="scintilab train", description="Train a classifier and save a run directory.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="starting configuration")
    parser.add_argument("--data", required=True, help="manifest CSV (from 'scintilab ingest') or a cohort folder")
    parser.add_argument("--model", default=None, help="model name (default: the preset's, inrac)")
    parser.add_argument("--out", required=True, help="run directory to write (resumed if interrupted)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (JSON values), e.g. epochs=3, image_size=[128,32], model_options.width=8",
    )
    parser.add_argument("--fresh", action="store_true", help="do not resume: retrain from scratch")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = parser.parse_args(argv)
    try:
        # absolute now: config.data is otherwise read against the project folder (repo_path)
        data = resolve_manifest(Path(args.data).expanduser().absolute(), progress=not args.quiet)
    except InputError as err:
        print(f"scintilab train: {err}", file=sys.stderr)
        return EXIT_USAGE
    overrides: dict[str, Any] = {"data": str(data)}
    if args.model:
        overrides["model"] = args.model
    try:
        for text in args.overrides:
            key, value = parse_override(text)
            if isinstance(value, dict) and key == "model_options":
                overrides["model_options"] = {**overrides.get("model_options", {}), **value}
            else:
                overrides[key] = value
        config = config_from_preset(args.preset, **overrides)
    except ValueError as exc:
        parser.error(str(exc))
    from scintilab.audit import LeakageError

    try:
        result = train(config, args.out, resume=not args.fresh, verbose=0 if args.quiet else None)
    except InputError as exc:
        print(f"scintilab train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LeakageError as exc:
        print(f"scintilab train: {exc} (--set allow_leaks=true goes on anyway)")
        return 1
    except runs_mod.NonFiniteError as exc:  # recorded in the run folder; one sentence, no traceback
        print(f"scintilab train: {exc}")
        return 1
    audit_rec = result.info.get("audit") or {}
    if audit_rec.get("applied"):
        print(
            f"audit applied ({audit_rec.get('source')}: {audit_rec.get('flags')}); "
            f"{len(audit_rec.get('straddling', []))} pair(s) across the split"
        )
    m = result.metrics.get("metrics", {})
    ci = result.metrics.get("ci", {})
    state = "reused finished run" if result.reused else f"trained in {result.wall_s:.0f} s"
    print(f"{result.run_dir}: {state}")
    for k in ("accuracy", "precision", "recall", "specificity", "f1", "auc"):
        lo, hi = ci.get(k, [None, None])
        rng_txt = f" (95% CI {lo:.3f}-{hi:.3f})" if lo is not None else ""
        val = m.get(k)
        print(f"  {k:<12} {val:.4f}{rng_txt}" if val is not None else f"  {k:<12} n/a")
    skipped = result.info.get("skipped") or []
    for key, reason in skipped[:20]:
        print(f"  skipped {key}: {reason}", file=sys.stderr)
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more", file=sys.stderr)
    return partial_exit(
        "train",
        len(skipped),
        "studies left out of the dataset",
        result.run_dir / runs_mod.SKIPPED_FILE if skipped else None,
    )


def find_or_train(config: TrainConfig, runs_root: str | Path, *, force: bool = False, **train_kwargs: Any):
    """Reuse a finished run with the same fingerprint, else train one into ``runs_root``.

    Args:
        config: what to run.
        runs_root: folder holding run folders.
        force: train again from scratch even when a finished run exists.
        **train_kwargs: passed to :func:`scintilab.training.train` (``studies``,
            ``dataset``, ``verbose``, ``callbacks``, ...).

    Returns:
        The :class:`scintilab.training.RunResult` (``reused`` tells which happened).
    """
    data_fp = resolve_data_fingerprint(config, train_kwargs.get("studies"), train_kwargs.get("dataset"))
    found = None if force else runs_mod.find_run(config, runs_root, data_fp)
    if found is not None:
        return RunResult.from_run(runs_mod.load_run(found), reused=True)
    out = Path(runs_root) / runs_mod.run_name(config, data_fp)
    return train(config, out, resume=not force, **train_kwargs)


# The public API, re-exports included: tests, notebooks and the README import the data and
# callback helpers from here (``training.split_indices``, ``training.history_figure``, ...).
__all__ = [
    "CKPT_MODEL",
    "STATE_FILE",
    "TEST_IMAGES_FILE",
    "RunResult",
    "audit_files",
    "check_leaks",
    "class_weight_dict",
    "cli_main",
    "dataset_fingerprint",
    "find_or_train",
    "history_figure",
    "live_curves_callback",
    "load_image_set",
    "nonfinite_guard",
    "predictions_frame",
    "resolve_data_fingerprint",
    "split_indices",
    "studies_fingerprint",
    "train",
]
