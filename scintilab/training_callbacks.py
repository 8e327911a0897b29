"""The Keras callbacks of a training run, and its training curves.

* :func:`checkpoint_callbacks`: after every epoch, the history row and a full checkpoint
  (model with optimizer state, and the epoch reached) that :func:`scintilab.training.train`
  resumes from; early stopping whose patience survives a resume.
* :func:`nonfinite_guard`: stops training at the first NaN or infinite loss or output
  (issue 30).
* :func:`live_curves_callback` redraws the curves in a notebook after each epoch;
  :func:`history_figure` draws them from a history table.

Keras is imported inside the functions only: importing this module does not load it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab import runs as runs_mod
from scintilab.presets import TrainConfig

#: The checkpoint folder's files: the epoch reached, and the full model with its optimizer state.
STATE_FILE = "state.json"
CKPT_MODEL = "last.keras"


def checkpoint_callbacks(
    config: TrainConfig, run_dir: Path, history_rows: list[dict[str, Any]], es_monitor: str
) -> list[Any]:
    """Checkpoint + history writer (+ early stopping), resumable from ``history_rows``.

    Args:
        config: supplies the early stopping's patience and minimum change.
        run_dir: the run folder (history and checkpoint are written there).
        history_rows: the epochs so far (from a resumed run's history); appended to.
        es_monitor: the quantity early stopping watches (``val_loss`` or ``loss``).
    """
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
