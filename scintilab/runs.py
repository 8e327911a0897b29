"""Run directories: what a training run leaves behind, and how later notebooks read it.

Layout of one run folder (written by :func:`scintilab.training.train`)::

    RUN_DIR/
      config.json       {"config": TrainConfig, "fingerprint", "data_fingerprint",
                         "versions": {python, numpy, keras, backend, ...}, "status":
                         "running" | "complete", "classes", "n_train", "n_test", timings}
      model.keras       the trained model (Keras 3 format)
      history.csv       one row per epoch: epoch, loss, accuracy, [val_loss, ...], lr
      predictions.csv   one row per image: study_key, patient_key, kind (ANT / POST /
                        fused), aug, split, true, p_<class>..., pred, correct
      metrics.json      scintilab.evaluation.evaluate_run(...) of the test split
      checkpoint/       last epoch's model + state while training (removed when complete)
      nonfinite.txt     only when training stopped on a NaN/inf loss or output: the one-line
                        reason (config.json then has status "nonfinite" and a "nonfinite"
                        record {epoch, where, message}; no model, predictions or metrics)

Only pseudonymous keys are written; notebooks compare runs by reading these folders,
never by re-training. :func:`scintilab.training.find_or_train` reuses a finished run whose configuration
fingerprint matches.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from scintilab.errors import InputError
from scintilab.paths import repo_path
from scintilab.presets import TrainConfig
from scintilab.provenance import jsonable

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoint"
NONFINITE_FILE = "nonfinite.txt"
#: studies the dataset left out (study_key, reason), written when there were any
SKIPPED_FILE = "skipped.csv"
#: ``config.json`` status of a run stopped because the model went non-finite.
NONFINITE_STATUS = "nonfinite"


class NonFiniteError(RuntimeError):
    """Training stopped because the loss or the model's outputs became NaN or infinite.

    ``str(err)`` is one sentence: the run folder, what went non-finite, the epoch and
    what to try (:func:`nonfinite_message`).

    Attributes:
        run_dir: the run folder (its ``nonfinite.txt`` holds the same sentence).
        epoch: the 1-based epoch in which it happened.
        where: what was non-finite (``"training loss"``, ``"outputs"``, ...).
    """

    def __init__(self, run_dir: str | Path, epoch: int, where: str, message: str) -> None:
        self.run_dir, self.epoch, self.where, self.message = Path(run_dir), int(epoch), where, message
        super().__init__(f"{self.run_dir}: {message}")


def nonfinite_message(
    epoch: int | None, where: str, dtype_policy: str | None = "float32", *, after: bool = False
) -> str:
    """The sentence (without the folder) a non-finite run reports, in training and evaluation.

    Args:
        epoch: 1-based epoch (None: unknown).
        where: what was non-finite, e.g. ``"training loss"`` or ``"outputs"``.
        dtype_policy: the run's Keras dtype policy (None: unknown).
        after: the epoch is the last one run, not the one where it started.
    """
    # Under a reduced-precision policy float32 is the first thing to try; in float32 the
    # usual cause is a step the loss surface cannot take.
    hint = (
        "try a lower learning rate"
        if dtype_policy == "float32"
        else "try float32 (mixed_precision=false) or a lower learning rate"
    )
    when = "" if epoch is None else f" {'after' if after else 'at'} epoch {epoch}"
    policy = f" ({dtype_policy})" if dtype_policy else ""
    return f"the model produced non-finite (NaN/inf) {where}{when}{policy}; {hint}"


def record_nonfinite(run_dir: str | Path, info: dict[str, Any], epoch: int, where: str) -> NonFiniteError:
    """Mark ``run_dir`` as stopped on non-finite numbers and return the error to raise.

    Writes ``nonfinite.txt`` and updates ``config.json`` (status ``"nonfinite"``, a
    ``nonfinite`` record). ``info`` is the run's ``config.json`` content (updated in place).
    """
    run_dir = Path(run_dir)
    message = nonfinite_message(epoch, where, run_policy(info))
    info.update({"status": NONFINITE_STATUS, "nonfinite": {"epoch": int(epoch), "where": where, "message": message}})
    write_json(run_dir / CONFIG_FILE, info)
    (run_dir / NONFINITE_FILE).write_text(message + "\n")
    return NonFiniteError(run_dir, epoch, where, message)


def run_policy(info: dict[str, Any]) -> str:
    """The Keras dtype policy a run trained with (``config.json``'s ``speed`` record)."""
    return str((info.get("speed") or {}).get("dtype_policy", "float32"))


@dataclass
class Run:
    """A run directory as read back from disk.

    Attributes:
        path: the folder.
        config: the :class:`TrainConfig` it was trained with.
        info: the whole ``config.json`` (fingerprints, versions, status, counts, timings).
        history: per-epoch history (empty if none yet).
        predictions: per-image predictions (empty if none yet).
        metrics: ``metrics.json`` (empty dict if not written).
    """

    path: Path
    config: TrainConfig
    info: dict[str, Any]
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The folder name."""
        return self.path.name

    @property
    def complete(self) -> bool:
        """True when training finished and every file was written."""
        return self.info.get("status") == "complete" and all(
            (self.path / f).exists() for f in (MODEL_FILE, HISTORY_FILE, PREDICTIONS_FILE, METRICS_FILE)
        )

    @property
    def nonfinite(self) -> dict[str, Any] | None:
        """The ``{epoch, where, message}`` record when training stopped on NaN/inf, else None."""
        return self.info.get("nonfinite") if self.info.get("status") == NONFINITE_STATUS else None

    @property
    def fingerprint(self) -> str:
        """The configuration + data fingerprint recorded for this run."""
        return str(self.info.get("fingerprint", ""))

    @property
    def classes(self) -> list[str]:
        """Class names in model-output order."""
        return list(self.info.get("classes") or self.config.classes)

    def load_model(self):
        """The trained Keras model (imports Keras and the custom layers on demand)."""
        import keras

        import scintilab.models  # noqa: F401  (registers custom layers for deserialisation)

        path = self.path / MODEL_FILE
        if not path.exists():
            raise InputError(path, "run has no saved model")
        return keras.saving.load_model(path, compile=False)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (a crash never leaves half a config behind)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(jsonable(obj), indent=1))
    os.replace(tmp, path)


def read_info(run_dir: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a run folder.

    Raises:
        InputError: missing or unreadable.
    """
    path = Path(run_dir) / CONFIG_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "not a run directory (no config.json)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable run config ({exc})") from exc


def load_predictions(run_dir: str | Path) -> pd.DataFrame:
    """The per-image predictions table of a run.

    Raises:
        InputError: missing, unreadable, or lacking the needed columns.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise InputError(run_dir, "no such run folder")
    if not run_dir.is_dir():
        raise InputError(run_dir, "is a file, not a run folder written by 'scintilab train'")
    path = run_dir / PREDICTIONS_FILE
    if not path.exists():
        raise InputError(path, "run has no predictions (did training finish?)")
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable predictions table ({exc})") from exc
    needed = {"study_key", "patient_key", "true"}
    missing = sorted(needed - set(df.columns))
    if missing or not any(c.startswith("p_") for c in df.columns):
        raise InputError(path, f"predictions table lacks columns {missing or ['p_<class>']}")
    return df


def load_run(run_dir: str | Path) -> Run:
    """Read a run folder (config, history, predictions, metrics; the model on demand).

    Args:
        run_dir: a folder written by :func:`scintilab.training.train`.

    Returns:
        A :class:`Run`; missing history/predictions/metrics come back empty.

    Raises:
        InputError: not a run directory.
    """
    run_dir = Path(run_dir)
    info = read_info(run_dir)
    config = TrainConfig.from_dict(info.get("config", {}))
    hist_path = run_dir / HISTORY_FILE
    history = pd.read_csv(hist_path) if hist_path.exists() else pd.DataFrame()
    predictions = load_predictions(run_dir) if (run_dir / PREDICTIONS_FILE).exists() else pd.DataFrame()
    metrics_path = run_dir / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return Run(run_dir, config, info, history, predictions, metrics)


def list_runs(runs_root: str | Path) -> pd.DataFrame:
    """One row per run folder under ``runs_root``: name, model, preset, status, key metrics.

    Folders that are not runs are skipped silently; unreadable runs appear with their
    problem in ``status``.
    """
    rows = []
    root = Path(runs_root)
    for cfg in sorted(root.glob(f"*/{CONFIG_FILE}")):
        try:
            run = load_run(cfg.parent)
        except InputError as exc:
            rows.append({"run": cfg.parent.name, "status": f"unreadable: {exc.problem}"})
            continue
        m = run.metrics.get("metrics", {})
        rows.append(
            {
                "run": run.name,
                "model": run.config.model,
                "preset": run.config.preset,
                "dataset": run.config.dataset,
                "classes": run.config.num_classes,
                "epochs": len(run.history),
                "status": run.info.get("status", "?"),
                "fingerprint": run.fingerprint,
                "accuracy": m.get("accuracy"),
                "f1": m.get("f1"),
                "auc": m.get("auc"),
            }
        )
    return pd.DataFrame(rows)


def resolve_run_dir(run_dir: str | Path = "", runs_root: str | Path = "runs") -> Path:
    """The run folder a notebook should read: ``run_dir`` if given, else the newest finished
    run under ``runs_root`` (relative paths are taken from the repo root).

    Raises:
        InputError: no such run.
    """
    if run_dir:
        path = repo_path(run_dir)
        read_info(path)  # raises InputError naming the folder when it is not a run
        return path
    root = repo_path(runs_root)
    done = []
    for cfg in root.glob(f"*/{CONFIG_FILE}"):
        try:
            if load_run(cfg.parent).complete:
                done.append(cfg.parent)
        except InputError:
            continue
    if not done:
        raise InputError(root, "no finished run here: train one first (notebook 03 or 'scintilab train')")
    return max(done, key=lambda p: (p / METRICS_FILE).stat().st_mtime)


def summary(run: Run) -> pd.DataFrame:
    """A short, identity-free description of a run for notebooks (one column of values)."""
    c = run.config
    rows = {
        "run": run.name,
        "model": c.model,
        "model options": json.dumps(c.model_options),
        "preset": c.preset,
        "dataset": c.dataset,
        "classes": ", ".join(run.classes),
        "input (rows x cols)": f"{c.image_size[0]} x {c.image_size[1]}",
        "optimizer": f"{c.optimizer}, lr {c.learning_rate:g}, batch {c.batch_size}",
        "epochs run / max": f"{run.info.get('epochs_run', len(run.history))} / {c.epochs}",
        "seed": c.seed,
        "train images (patients)": f"{run.info.get('n_train')} ({run.info.get('n_train_patients')})",
        "test images (patients)": f"{run.info.get('n_test')} ({run.info.get('n_test_patients')})",
        "fingerprint": run.fingerprint,
        "status": run.info.get("status"),
    }
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))


def find_run(config: TrainConfig, runs_root: str | Path, data_fingerprint: str | None = None) -> Path | None:
    """A completed run under ``runs_root`` with the same fingerprint as ``config``, or None."""
    want = config.fingerprint(data_fingerprint)
    root = Path(runs_root)
    for cfg in sorted(root.glob(f"*/{CONFIG_FILE}")):
        try:
            run = load_run(cfg.parent)
        except InputError:
            continue
        if run.fingerprint == want and run.complete:
            return run.path
    return None


def run_name(config: TrainConfig, data_fingerprint: str | None = None) -> str:
    """Default folder name: ``<model>-<preset>-<dataset>-<classes>c-<fingerprint[:8]>``."""
    return f"{config.model}-{config.preset}-{config.dataset}-{config.num_classes}c-{config.fingerprint(data_fingerprint)[:8]}"
