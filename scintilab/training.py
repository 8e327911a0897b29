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
* A NaN or infinite loss or output stops training (:func:`nonfinite_guard`): the run
  folder records the epoch (``nonfinite.txt``, status ``"nonfinite"``) and
  :class:`~scintilab.runs.NonFiniteError` says what to try, instead of NaN predictions
  reaching the evaluation.
* Keras prints one line per epoch (``verbose=2``), which reads well in logs and notebooks.
"""

from __future__ import annotations

import argparse
import hashlib
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
from scintilab.errors import EXIT_USAGE, InputError, partial_exit
from scintilab.presets import (
    PRESETS,
    TrainConfig,
    audit_files,
    audit_tail,
    config_from_preset,
    config_manifest,
    manifest_data_fingerprint,
    parse_override,
)
from scintilab.provenance import package_versions

STATE_FILE = "state.json"
CKPT_MODEL = "last.keras"
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


# --------------------------------------------------------------------------- data
def dataset_fingerprint(dataset: Any) -> str:
    """Hash of an in-memory image set's content (images, labels, keys)."""
    h = hashlib.sha256()
    images = np.ascontiguousarray(np.asarray(dataset.images, dtype=np.float32))
    h.update(str(images.shape).encode())
    h.update(images.tobytes())
    h.update(np.asarray(dataset.labels, dtype=np.int64).tobytes())
    for seq in (dataset.patient_keys, dataset.study_keys):
        h.update("|".join(map(str, seq)).encode())
    return h.hexdigest()[:16]


def studies_fingerprint(studies: Sequence[Any]) -> str:
    """Hash of study records' keys, labels and pixel sums (cheap, content-sensitive)."""
    h = hashlib.sha256()
    for s in studies:
        sums = [int(np.asarray(v, dtype=np.int64).sum()) if v is not None else -1 for v in (s.anterior, s.posterior)]
        h.update(f"{s.study_key}|{s.patient_key}|{s.label}|{sums}\n".encode())
    return h.hexdigest()[:16]


def resolve_data_fingerprint(config: TrainConfig, studies: Sequence[Any] | None = None, dataset: Any = None) -> str:
    """The data fingerprint that goes into a run's fingerprint: dataset > studies > manifest.

    The audit files in use (:func:`audit_files`) are hashed in too: they change the split.
    """
    if dataset is not None:
        return dataset_fingerprint(dataset) + audit_tail(config)
    if studies is not None:
        return studies_fingerprint(studies) + audit_tail(config)
    return manifest_data_fingerprint(config)


def load_image_set(
    config: TrainConfig,
    studies: Sequence[Any] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Any:
    """Build the configured dataset (D1/D2/D3) from ``studies`` or the manifest in ``config.data``.

    Args:
        config: supplies dataset name, image size, r_t, t_t and the seed.
        studies: study records (default: read the manifest ``config.data``).
        cache_dir: memory-mapped cache folder of :func:`scintilab.datasets.build_dataset`.
        progress: show the dataset builder's progress bar.

    Raises:
        InputError: no data given, or the manifest cannot be read.
    """
    from scintilab.datasets import build_dataset

    if studies is None:
        if not config.data:
            raise InputError(None, "no data: set config.data to a manifest or pass studies=")
        from scintilab.ingest import load_cohort
        from scintilab.paths import repo_path

        studies = load_cohort(repo_path(config.data))  # a manifest or a cohort folder
    return build_dataset(
        studies,
        name=config.dataset,
        image_size=tuple(config.image_size),
        r_t=config.r_t,
        t_t=int(round(config.t_t)),
        rng=config.seed,
        cache_dir=cache_dir,
        progress=progress,
    )


def _labels_for(config: TrainConfig, labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels, dtype=int)
    # 2-class mode: the paper's Table 8 merges ADMet and nADMet into "metastatic".
    return (y > 0).astype(int) if config.num_classes == 2 else y


def _split_groups(config: TrainConfig, ds: Any) -> np.ndarray | None:
    """Per-image group ids from ``config.split_groups`` (audit output), or None."""
    if not config.split_groups:
        return None
    from scintilab.paths import repo_path

    path = repo_path(config.split_groups)
    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read split groups ({exc})") from exc
    if "group" not in table.columns or not ({"patient_key", "study_key"} & set(table.columns)):
        raise InputError(path, "split groups CSV needs columns group and patient_key or study_key")
    key = "study_key" if "study_key" in table.columns else "patient_key"
    mapping = dict(zip(table[key], table["group"]))
    own = ds.study_keys if key == "study_key" else ds.patient_keys
    # Images not listed keep their patient as group, so the split stays patient-level.
    return np.array([mapping.get(k, f"patient:{p}") for k, p in zip(own, ds.patient_keys)])


# --------------------------------------------------------------------------- audit (issue 14)
def _audit_groups(ds: Any, base: np.ndarray, flags: Path, review: Path | None) -> np.ndarray:
    """Per-image groups: ``base`` groups merged along the audit's duplicate/same-patient pairs."""
    from scintilab.audit import split_groups

    keys = np.asarray(ds.study_keys).astype(str)
    first = {}
    for k, g in zip(keys, np.asarray(base).astype(str)):
        first.setdefault(k, g)  # augmented copies share their study's group
    # The base group plays the patient's part, so split_groups keeps it whole and adds the pairs.
    table = pd.DataFrame({"study_key": list(first), "patient_key": list(first.values())})
    merged = split_groups(table, flags, review=review)
    return merged.reindex(keys).to_numpy(dtype=object)


def _fixed_split(ds: Any, split: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices from a hand-made split (``study_key, split`` with train/val/test)."""
    table = split
    if isinstance(split, (str, os.PathLike)):
        try:
            table = pd.read_csv(split, dtype=str, keep_default_na=False)
        except (OSError, ValueError) as exc:
            raise InputError(split, f"cannot read split CSV ({exc})") from exc
    if isinstance(table, pd.Series):
        sides = {str(k): str(v) for k, v in table.items()}
    else:
        if not {"study_key", "split"} <= set(table.columns):
            raise InputError(
                split if isinstance(split, (str, os.PathLike)) else None,
                "split table needs columns study_key and split",
            )
        sides = dict(zip(table["study_key"].astype(str), table["split"].astype(str)))
    sides = {
        k: {"validation": "val", "valid": "val"}.get(v.strip().lower(), v.strip().lower()) for k, v in sides.items()
    }
    keys = np.asarray(ds.study_keys).astype(str)
    missing = sorted(set(keys) - set(sides))
    if missing:
        raise ValueError(f"the split does not place {len(missing)} study(ies), e.g. {missing[:3]}")
    side = np.array([sides[k] for k in keys])
    bad = sorted(set(side) - {"train", "val", "test"})
    if bad:
        raise ValueError(f"split sides must be train, val or test, got {bad}")
    return tuple(np.flatnonzero(side == name) for name in ("train", "val", "test"))  # type: ignore[return-value]


def _split_fingerprint(split: Any) -> str:
    table = pd.read_csv(split, dtype=str, keep_default_na=False) if isinstance(split, (str, os.PathLike)) else split
    table = table.rename("split").reset_index() if isinstance(table, pd.Series) else table
    text = table.astype(str).sort_values(list(table.columns)).to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_leaks(config: TrainConfig, ds: Any, parts: dict[str, np.ndarray]) -> dict[str, Any]:
    """Check a split against the audit before fitting; refuse a leaky one unless allowed.

    Args:
        config: supplies the audit files and ``allow_leaks``.
        ds: the image set (its study keys are matched against the flags).
        parts: side name -> image indices (``train``, ``val``, ``test``).

    Returns:
        What goes into ``config.json["audit"]``: whether an audit was applied, the files,
        and the pairs straddling the split (empty unless ``allow_leaks``).

    Raises:
        scintilab.audit.LeakageError: a duplicate or same-patient pair straddles the
            split and ``config.allow_leaks`` is False; the message names the pairs.
    """
    import warnings

    flags, review, source = audit_files(config)
    record: dict[str, Any] = {
        "applied": flags is not None,
        "source": source,
        "flags": _shown_path(flags, config),
        "review": _shown_path(review, config),
        "allow_leaks": bool(config.allow_leaks),
        "straddling": [],
    }
    if flags is None:
        return record
    from scintilab.audit import refuse_leaky_split

    keys = np.asarray(ds.study_keys).astype(str)
    split_df = pd.DataFrame([{"study_key": k, "split": name} for name, idx in parts.items() for k in keys[idx]])
    pairs = refuse_leaky_split(split_df, flags, go_on=config.allow_leaks, review=review)
    if pairs:
        warnings.warn(
            f"allow_leaks: training goes on with {len(pairs)} duplicate/same-patient pair(s) "
            f"across the split: {'; '.join(map(str, pairs))}",
            UserWarning,
            stacklevel=3,
        )
    record["straddling"] = [str(p) for p in pairs]
    return record


def _shown_path(path: Path | None, config: TrainConfig) -> str | None:
    """A path as recorded in config.json: relative to the manifest folder when inside it."""
    if path is None:
        return None
    if config.data:
        try:
            return path.resolve().relative_to(config_manifest(config).parent.resolve()).as_posix()
        except ValueError:
            pass
    return path.name


def split_indices(config: TrainConfig, ds: Any, split: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) image indices; patients (or groups) never straddle them.

    Groups are patients, or ``config.split_groups``, merged along the audit's duplicate
    and same-patient pairs when an audit applies (:func:`audit_files`).

    Args:
        config: split settings.
        ds: the image set.
        split: a hand-made split instead (DataFrame or CSV ``study_key, split`` with
            sides train/val/test, or a Series study_key -> side); taken as is.
    """
    from scintilab.splits import patient_split

    if split is not None:
        return _fixed_split(ds, split)
    groups = _split_groups(config, ds)
    flags, review, _ = audit_files(config)
    if flags is not None:
        groups = _audit_groups(ds, np.asarray(ds.patient_keys) if groups is None else groups, flags, review)
    train_idx, test_idx = patient_split(ds, test_size=config.test_size, rng=config.seed, groups=groups)
    train_idx, test_idx = np.asarray(train_idx, dtype=int), np.asarray(test_idx, dtype=int)
    val_idx = np.array([], dtype=int)
    if config.val_size > 0:
        sub = ds.subset(train_idx)
        sub_groups = None if groups is None else groups[train_idx]
        tr, va = patient_split(sub, test_size=config.val_size, rng=config.seed + 1, groups=sub_groups)
        train_idx, val_idx = train_idx[np.asarray(tr, dtype=int)], train_idx[np.asarray(va, dtype=int)]
    return train_idx, val_idx, test_idx


def class_weight_dict(config: TrainConfig, y_train: np.ndarray) -> dict[int, float] | None:
    """Keras ``class_weight`` from the config: None, balanced (n / (k * count)) or named."""
    cw = config.class_weights
    if cw is None:
        return None
    k = config.num_classes
    if cw == "balanced":
        counts = np.bincount(y_train, minlength=k).astype(float)
        return {i: float(len(y_train) / (k * c)) if c else 0.0 for i, c in enumerate(counts)}
    names = config.classes
    unknown = sorted(set(cw) - set(names))
    if unknown:
        raise ValueError(f"class_weights names {unknown} not among classes {names}")
    return {i: float(cw.get(n, 1.0)) for i, n in enumerate(names)}


# --------------------------------------------------------------------------- callbacks
def _callbacks(config: TrainConfig, run_dir: Path, history_rows: list[dict[str, Any]], es_monitor: str) -> list[Any]:
    """Checkpoint + history writer (+ early stopping), resumable from ``history_rows``."""
    import keras

    ckpt_dir = run_dir / runs_mod.CHECKPOINT_DIR

    class HistoryAndCheckpoint(keras.callbacks.Callback):
        """After each epoch: append to history.csv, save the full model and the epoch reached.

        The model goes to a temporary file first and is renamed, and the state file is
        written last, so an interruption at any moment leaves the previous checkpoint usable.
        """

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
            try:
                row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            except Exception:  # noqa: BLE001 - schedules may not expose a plain value
                pass
            history_rows.append(row)
            pd.DataFrame(history_rows).to_csv(run_dir / runs_mod.HISTORY_FILE, index=False)
            ckpt_dir.mkdir(exist_ok=True)
            tmp = ckpt_dir / "tmp_last.keras"
            self.model.save(tmp)
            os.replace(tmp, ckpt_dir / CKPT_MODEL)
            runs_mod.write_json(ckpt_dir / STATE_FILE, {"epoch": epoch + 1})

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """Early stopping whose patience counter survives a resume (rebuilt from history)."""

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            super().on_train_begin(logs)
            for row in history_rows:
                value = row.get(self.monitor)
                if value is None:
                    continue
                if self.best is None or self._is_improvement(value, self.best):
                    self.best, self.wait = value, 0
                else:
                    self.wait += 1

    cbs: list[Any] = [HistoryAndCheckpoint()]
    if config.early_stopping > 0:
        cbs.append(
            ResumableEarlyStopping(
                monitor=es_monitor, patience=config.early_stopping, min_delta=config.min_delta, mode="min", verbose=1
            )
        )
    return cbs


def nonfinite_guard(probe: np.ndarray | None = None) -> Any:
    """A Keras callback that stops training at the first NaN/inf loss or output (issue 30).

    Keras' ``TerminateOnNaN`` looks at the batch loss only. A batch norm whose moving
    variance went NaN, or an overflow in reduced precision, can leave the training loss
    (computed from batch statistics) finite while every prediction is NaN, so at each
    epoch end the guard also predicts ``probe`` (a batch of training images) in inference
    mode. What it found is in ``.found``: ``(1-based epoch, what)`` or None.

    Args:
        probe: images to predict after every epoch (None: check the losses only).
    """
    import keras

    class NonFiniteGuard(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.found: tuple[int, str] | None = None
            self.epoch = 0

        def _stop(self, what: str) -> None:
            if self.found is None:
                self.found = (self.epoch + 1, what)
            self.model.stop_training = True

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and not np.isfinite(float(loss)):
                self._stop("training loss")

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            for key, what in (("loss", "training loss"), ("val_loss", "validation loss")):
                value = (logs or {}).get(key)
                if value is not None and not np.isfinite(float(value)):
                    self._stop(what)
            if self.found is None and probe is not None and len(probe):
                out = keras.ops.convert_to_numpy(self.model.predict_on_batch(probe))
                if not np.isfinite(np.asarray(out, dtype=np.float32)).all():
                    self._stop("outputs")

    return NonFiniteGuard()


def _stop_nonfinite(run_dir: Path, info: dict[str, Any], found: tuple[int, str]) -> None:
    """Record a run that went non-finite in its folder and raise :class:`~scintilab.runs.NonFiniteError`."""
    # The last checkpoint holds the NaN weights: resuming from it would go nowhere, so the
    # same command trains afresh (it may not recur where kernels are non-deterministic).
    shutil.rmtree(run_dir / runs_mod.CHECKPOINT_DIR, ignore_errors=True)
    (run_dir / runs_mod.MODEL_FILE).unlink(missing_ok=True)
    raise runs_mod.record_nonfinite(run_dir, info, *found)


def live_curves_callback(metrics: Sequence[str] = ("loss", "accuracy")) -> Any:
    """A Keras callback that redraws the training curves in a notebook after each epoch.

    Uses an IPython display handle (updated in place), so it works in Jupyter and under
    papermill; outside IPython it does nothing.
    """
    import keras

    class LiveCurves(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[dict[str, Any]] = []
            self.handle = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            try:
                from IPython import get_ipython
                from IPython.display import display
            except ImportError:
                return
            if get_ipython() is None:
                return
            self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
            fig = history_figure(pd.DataFrame(self.rows), metrics=metrics)
            if self.handle is None:
                self.handle = display(fig, display_id=True)
            else:
                self.handle.update(fig)

    return LiveCurves()


def history_figure(
    history: pd.DataFrame, metrics: Sequence[str] = ("loss", "accuracy"), title: str = "Training curves"
):
    """Plotly figure: one panel per metric, training and validation curves by epoch."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    present = [m for m in metrics if m in history.columns]
    fig = make_subplots(rows=1, cols=max(1, len(present)), subplot_titles=present)
    for i, m in enumerate(present, start=1):
        fig.add_trace(
            go.Scatter(x=history["epoch"], y=history[m], mode="lines+markers", name=f"train {m}", legendgroup="train"),
            row=1,
            col=i,
        )
        if f"val_{m}" in history.columns:
            fig.add_trace(
                go.Scatter(
                    x=history["epoch"],
                    y=history[f"val_{m}"],
                    mode="lines+markers",
                    name=f"val {m}",
                    line={"dash": "dash"},
                ),
                row=1,
                col=i,
            )
        fig.update_xaxes(title_text="epoch", row=1, col=i)
    fig.update_layout(title=title, height=360, width=380 * max(1, len(present)))
    return fig


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
        callbacks: extra Keras callbacks (e.g. :func:`live_curves_callback`).
        cache_dir: dataset cache folder (see :func:`load_image_set`).
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
            (:func:`nonfinite_guard`); training stopped and the run folder records it.
    """
    from scintilab.outputs import LOCK_SUFFIX, RunLock

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

    from scintilab.evaluation import evaluate_run
    from scintilab.models import build_model
    from scintilab.utils import reseed_generators, set_seed

    t0 = time.perf_counter()
    verbose = config.verbose if verbose is None else verbose

    set_seed(config.seed)
    _enable_determinism(config)
    ds = (
        dataset if dataset is not None else load_image_set(config, studies, cache_dir=cache_dir, progress=bool(verbose))
    )
    data_fp = resolve_data_fingerprint(config, studies, dataset)
    if split is not None:  # a hand-made split changes the result: a run of another split is not reused
        data_fp += "+split:" + _split_fingerprint(split)
    fingerprint = config.fingerprint(data_fp)
    action, start_epoch = _prepare_run_dir(config, run_dir, fingerprint, resume)
    if action == "reuse":
        return RunResult.from_run(runs_mod.load_run(run_dir), reused=True)
    if action == "fresh":
        _clear_run_dir(run_dir)

    images = np.asarray(ds.images, dtype=np.float32)
    if images.shape[1:3] != tuple(config.image_size):
        raise ValueError(f"dataset images are {images.shape[1:3]}, config.image_size is {tuple(config.image_size)}")
    y = _labels_for(config, ds.labels)
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
    from scintilab.distributed import distribution_scope
    from scintilab.performance import resolve_precision

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
    cbs = [guard] + _callbacks(config, run_dir, history_rows, es_monitor) + list(callbacks)
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
    from scintilab.ingest import resolve_manifest

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
