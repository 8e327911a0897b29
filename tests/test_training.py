"""Tests for scintilab.presets, scintilab.training and scintilab.runs (tiny models, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scintilab import runs, training
from scintilab.datasets import ImageSet
from scintilab.presets import PRESETS, TrainConfig, config_from_preset, parse_override

# Eager mode: tracing inrac's graph costs more than two epochs of a 64 x 32 model on a CPU.
TINY = {
    "image_size": (64, 32),
    "model_options": {"width": 4},
    "epochs": 2,
    "batch_size": 8,
    "n_boot": 50,
    "verbose": 0,
    "run_eagerly": True,
}


def blob_set(n: int = 24, hw: tuple[int, int] = (64, 32), seed: int = 0) -> ImageSet:
    """A real ImageSet of noise images; metastatic classes carry bright blobs (12 patients)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    rr, cc = np.mgrid[0:h, 0:w]
    images, labels = [], []
    for i in range(n):
        label = i % 3
        img = rng.normal(0.2, 0.05, hw)
        for _ in range(label * 2):
            r, c = rng.integers(6, h - 6), rng.integers(6, w - 6)
            img[(rr - r) ** 2 + (cc - c) ** 2 <= 9] += 1.0
        images.append(img)
        labels.append(label)
    keys = np.array([f"P-{i // 2:04d}" for i in range(n)])
    return ImageSet(
        images=np.asarray(images, np.float32),
        labels=np.asarray(labels),
        patient_keys=keys,
        study_keys=np.array([f"S-{i:04d}" for i in range(n)]),
        kinds=np.array(["fused"] * n),
        aug=np.array(["orig"] * n),
        name="D3",
    )


# --------------------------------------------------------------------------- presets
def test_paper_preset_is_the_paper() -> None:
    cfg = config_from_preset("paper")
    assert cfg.image_size == (1024, 256) and cfg.batch_size == 32 and cfg.epochs == 300
    assert cfg.learning_rate == 0.01 and cfg.optimizer == "adam" and cfg.dataset == "D3" and cfg.test_size == 0.3
    quick = config_from_preset("quick")
    assert quick.image_size[0] * quick.image_size[1] < cfg.image_size[0] * cfg.image_size[1]
    assert quick.epochs < cfg.epochs
    assert set(PRESETS) >= {"paper", "quick"}


def test_the_config_fingerprint_reads_the_manifest_from_the_repo_root(tmp_manifest, tmp_path, monkeypatch) -> None:
    """A relative ``data`` names a path under the repository root wherever the command runs,
    so the fingerprint find_run compares is the one train recorded."""
    import os

    from scintilab.paths import repo_root
    from scintilab.presets import TrainConfig as Config
    from scintilab.training import resolve_data_fingerprint

    manifest = tmp_manifest(2)
    cfg = Config(data=os.path.relpath(manifest, repo_root()), audit_flags="off")
    at_root = cfg.fingerprint()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cfg.fingerprint() == at_root == cfg.fingerprint(resolve_data_fingerprint(cfg))
    assert cfg.fingerprint() == cfg.replace(data=str(manifest)).fingerprint()  # the same file, however named


def test_overrides_and_fingerprint() -> None:
    cfg = config_from_preset("quick", epochs=3, model_options={"dropout": 0.1})
    assert cfg.epochs == 3 and cfg.model_options == {"width": 16, "dropout": 0.1}
    assert cfg.fingerprint("abc") == config_from_preset("quick", epochs=3, model_options={"dropout": 0.1}).fingerprint(
        "abc"
    )
    assert cfg.fingerprint("abc") != cfg.replace(seed=1).fingerprint("abc")
    assert cfg.fingerprint("abc") != cfg.fingerprint("abd")  # other data, other run
    assert cfg.fingerprint("abc") == cfg.replace(verbose=0, preset="renamed").fingerprint("abc")
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown"):
        config_from_preset("quick", epoch=3)
    with pytest.raises(ValueError, match="num_classes"):
        config_from_preset("quick", num_classes=4)
    assert parse_override("epochs=5") == ("epochs", 5)
    assert parse_override("model=outrac") == ("model", "outrac")
    assert parse_override("image_size=[128,32]") == ("image_size", [128, 32])
    assert parse_override("model_options.width=8") == ("model_options", {"width": 8})
    assert parse_override("class_weights=balanced") == ("class_weights", "balanced")


def test_balanced_class_weights() -> None:
    from scintilab.training import class_weight_dict

    cfg = TrainConfig(class_weights="balanced")
    w = class_weight_dict(cfg, np.array([0, 0, 0, 1, 2, 2]))
    assert w == pytest.approx({0: 6 / 9, 1: 6 / 3, 2: 6 / 6})
    assert class_weight_dict(TrainConfig(class_weights={"ADMet": 2.0}), np.array([0, 1])) == {0: 1.0, 1: 2.0, 2: 1.0}


# --------------------------------------------------------------------------- training
def test_same_seed_same_history(tmp_path: Path) -> None:
    from scintilab.training import train

    ds = blob_set()
    cfg = config_from_preset("quick", **TINY)
    a = train(cfg, tmp_path / "a", dataset=ds)
    b = train(cfg, tmp_path / "b", dataset=ds)
    assert not a.reused and not b.reused
    assert len(a.history) == 2
    pd.testing.assert_frame_equal(a.history, b.history)
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    c = train(cfg.replace(seed=7), tmp_path / "c", dataset=ds)
    assert not np.allclose(a.history["loss"], c.history["loss"])
    # a finished run in the same folder is reused, not retrained
    again = train(cfg, tmp_path / "a", dataset=ds)
    assert again.reused and again.model is None
    found = training.find_or_train(cfg, tmp_path, dataset=ds)
    assert found.reused and found.run_dir.name in {"a", "b"}
    with pytest.raises(ValueError, match="another configuration"):
        train(cfg.replace(learning_rate=0.5), tmp_path / "a", dataset=ds)


class _Interrupt(Exception):
    pass


def test_resume_after_interruption(tmp_path: Path) -> None:
    import keras

    from scintilab.training import train

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise _Interrupt("simulated crash after epoch 1")

    class CountEpochs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs: list[int] = []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(epoch)

    ds = blob_set()
    cfg = config_from_preset("quick", **TINY)
    out = tmp_path / "run"
    with pytest.raises(_Interrupt):
        train(cfg, out, dataset=ds, callbacks=[StopAfterFirstEpoch()])
    info = json.loads((out / "config.json").read_text())
    assert info["status"] == "running"
    assert (out / "checkpoint" / "last.keras").exists()
    assert len(pd.read_csv(out / "history.csv")) == 1
    counter = CountEpochs()
    res = train(cfg, out, dataset=ds, callbacks=[counter])
    assert counter.epochs == [1]  # only the missing second epoch ran
    assert res.history["epoch"].tolist() == [1, 2]
    assert runs.load_run(out).complete
    assert not (out / "checkpoint").exists()


def test_early_stopping_stops(tmp_path: Path) -> None:
    from scintilab.training import train

    # no epoch can improve the loss by 10 (min_delta): patience 1 stops after the second epoch.
    # (A near-zero learning rate is not enough: reshuffled batches move the training loss.)
    cfg = config_from_preset("quick", **{**TINY, "epochs": 6}, early_stopping=1, learning_rate=1e-12, min_delta=10.0)
    res = train(cfg, tmp_path / "es", dataset=blob_set())
    assert len(res.history) == 2 and res.info["stopped_early"]


@pytest.mark.slow
def test_cli_trains_inrac_on_a_cohort_and_leaves_a_complete_run(tmp_manifest, tmp_path: Path, capsys) -> None:
    from scintilab.cli import main
    from scintilab.evaluation import evaluate_run

    manifest = tmp_manifest(9)
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--preset",
            "quick",
            "--data",
            str(manifest),
            "--model",
            "inrac",
            "--out",
            str(out),
            "--set",
            "image_size=[128,32]",
            "--set",
            "model_options.width=8",
            "--set",
            "epochs=2",
            "--set",
            "n_boot=50",
            "--set",
            "batch_size=8",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "Epoch 2/2" in printed  # Keras per-epoch lines
    run = runs.load_run(out)
    assert run.complete
    for name in ("config.json", "model.keras", "history.csv", "predictions.csv", "metrics.json", "test_images.npy"):
        assert (out / name).exists(), name
    assert run.info["versions"]["keras"] and run.info["data_fingerprint"]
    assert run.config.model == "inrac" and run.config.image_size == (128, 32)
    assert len(run.history) == 2
    pred = run.predictions
    assert {"study_key", "patient_key", "kind", "aug", "true", "p_NoMet", "p_ADMet", "p_nADMet", "pred"} <= set(
        pred.columns
    )
    assert np.allclose(pred[["p_NoMet", "p_ADMet", "p_nADMet"]].sum(axis=1), 1.0, atol=1e-4)
    assert pred["study_key"].str.startswith("S-").all() and pred["patient_key"].str.startswith("P-").all()
    # test patients never appear among training patients (patient-level split)
    assert run.info["n_test_patients"] == pred["patient_key"].nunique()
    # no raw identity or source path anywhere in the run folder
    for f in out.iterdir():
        if f.suffix in {".json", ".csv"}:
            text = f.read_text()
            if f.name == "config.json":
                # the one place a path may appear: which manifest was trained on (never rendered)
                info = json.loads(text)
                assert info["config"].pop("data") == str(manifest)
                text = json.dumps(info)
            assert "PIDSECRET" not in text, f.name
            assert "Plantedname" not in text, f.name
            assert str(manifest.parent) not in text, f.name
    m = evaluate_run(out, n_boot=20)
    assert m["n_images"] == len(pred) and 0.0 <= m["metrics"]["accuracy"] <= 1.0
    assert run.load_model().output_shape == (None, 3)
    # the same command again reuses the finished run
    assert (
        main(
            [
                "train",
                "--preset",
                "quick",
                "--data",
                str(manifest),
                "--out",
                str(out),
                "--set",
                "image_size=[128,32]",
                "--set",
                "model_options.width=8",
                "--set",
                "epochs=2",
                "--set",
                "n_boot=50",
                "--set",
                "batch_size=8",
            ]
        )
        == 0
    )
    assert "reused" in capsys.readouterr().out


def _stop_after_first_epoch() -> object:
    import keras

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise _Interrupt("simulated crash after epoch 1")

    return StopAfterFirstEpoch()


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    """Issue 29: the same seed gives the same history and weights whether or not the run was cut.

    Dropout and online augmentation on, so every source of randomness is in play: the
    batch order, the augmentation draws and the dropout masks."""
    from scintilab.training import train

    ds = blob_set()
    cfg = config_from_preset(
        "quick", **{**TINY, "epochs": 3, "model_options": {"width": 4, "dropout": 0.3}}, augment_online=True
    )
    whole = train(cfg, tmp_path / "whole", dataset=ds)
    cut = tmp_path / "cut"
    with pytest.raises(_Interrupt):
        train(cfg, cut, dataset=ds, callbacks=[_stop_after_first_epoch()])
    resumed = train(cfg, cut, dataset=ds)
    a, b = whole.history.drop(columns=["lr"], errors="ignore"), resumed.history.drop(columns=["lr"], errors="ignore")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)
    for wa, wb in zip(whole.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
