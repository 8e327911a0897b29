"""Issue 30: a run whose loss or outputs go NaN/inf stops, says so, and evaluation refuses it.

Everything goes non-finite for real: an absurd learning rate on a tiny model (the loss
overflows within the first epoch), and a batch norm with an impossible (negative) moving
variance, which leaves the training loss finite but makes every inference output NaN.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scintilab import evaluation as ev
from scintilab import runs
from scintilab.errors import InputError

#: absurd on purpose: one Adam step moves every weight by about this much
HUGE_LR = 1e30


def test_cli_train_stops_on_nan_loss_records_it_and_evaluate_refuses(tmp_manifest, tmp_path: Path, capsys) -> None:
    from scintilab.cli import main

    manifest = tmp_manifest(6)
    out = tmp_path / "run"
    argv = [
        "train",
        "--preset",
        "quick",
        "--data",
        str(manifest),
        "--out",
        str(out),
        "--quiet",
        "--set",
        "image_size=[64,16]",
        "--set",
        'model_options={"width":4,"blocks":[1,1,1,1]}',
        "--set",
        "epochs=2",
        "--set",
        "batch_size=4",
        "--set",
        "run_eagerly=true",
        "--set",
        f"learning_rate={HUGE_LR}",
    ]
    assert main(argv) == 1
    printed = capsys.readouterr().out.strip().splitlines()
    info = json.loads((out / "config.json").read_text())
    assert info["status"] == "nonfinite"
    epoch, where = info["nonfinite"]["epoch"], info["nonfinite"]["where"]
    # one sentence, naming the folder, what went wrong, the epoch and what to try (no traceback)
    assert printed == [
        f"scintilab train: {out}: the model produced non-finite (NaN/inf) {where} at epoch "
        f"{epoch} (float32); try a lower learning rate"
    ]
    assert (out / runs.NONFINITE_FILE).read_text().strip() == info["nonfinite"]["message"]
    assert printed[0].endswith(info["nonfinite"]["message"])
    # it stopped in that epoch: the history ends there, with the bad loss when the loss was it
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == list(range(1, epoch + 1)) and epoch < 2
    assert where in {"training loss", "outputs"}
    if where == "training loss":
        assert not np.isfinite(history["loss"].iloc[-1]) and np.isfinite(history["loss"].iloc[:-1]).all()
    for name in ("model.keras", "predictions.csv", "metrics.json", "checkpoint"):
        assert not (out / name).exists(), name  # nothing a NaN model made, no NaN checkpoint to resume
    assert runs.load_run(out).nonfinite == info["nonfinite"] and not runs.load_run(out).complete
    # evaluation refuses the folder in one sentence
    with pytest.raises(InputError) as err:
        ev.evaluate_run(out)
    assert str(err.value) == f"{out}: {info['nonfinite']['message']}"
    assert main(["evaluate", str(out), "--n-boot", "0"]) == 1
    assert capsys.readouterr().out.strip().splitlines() == [f"skipped {out}: {info['nonfinite']['message']}"]
    # the same command again trains afresh (not from the NaN checkpoint) and says the same
    assert main(argv) == 1
    assert capsys.readouterr().out.strip().splitlines() == printed


def test_guard_catches_nan_outputs_behind_a_finite_loss() -> None:
    import keras

    from scintilab.training import nonfinite_guard

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    norm = keras.layers.BatchNormalization()
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(norm(keras.layers.Dense(8)(inputs))))
    # A moving variance no batch could produce: training uses batch moments (finite loss),
    # inference divides by sqrt(variance + eps) (NaN), as a corrupted batch norm does.
    norm.moving_variance.assign(-np.ones(8, np.float32))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype(np.float32), np.arange(16) % 3
    guard = nonfinite_guard(x[:4])
    hist = model.fit(x, y, batch_size=8, epochs=3, callbacks=[guard], verbose=0)
    assert np.isfinite(hist.history["loss"]).all()  # Keras' TerminateOnNaN would go on
    assert guard.found == (1, "outputs") and len(hist.epoch) == 1
    # and a healthy model trains on
    norm.moving_variance.assign(np.ones(8, np.float32))
    healthy = nonfinite_guard(x[:4])
    assert (
        len(model.fit(x, y, batch_size=8, epochs=2, callbacks=[healthy], verbose=0).epoch) == 2
        and healthy.found is None
    )


def _predictions(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), n)
    df = pd.DataFrame(
        {
            "study_key": [f"S-{i}" for i in range(n)],
            "patient_key": [f"P-{i // 2}" for i in range(n)],
            "split": "test",
            "true": np.array(["NoMet", "ADMet", "nADMet"])[np.arange(n) % 3],
        }
    )
    for k, c in enumerate(("NoMet", "ADMet", "nADMet")):
        df[f"p_{c}"] = p[:, k]
    return df


def test_evaluation_refuses_nan_predictions_in_one_sentence(tmp_path: Path) -> None:
    run = tmp_path / "old_bf16_run"
    run.mkdir()
    df = _predictions()
    df.loc[[2, 5], ["p_NoMet", "p_ADMet", "p_nADMet"]] = np.nan  # as a bfloat16 run wrote them before the guard
    df.to_csv(run / "predictions.csv", index=False)
    runs.write_json(
        run / "config.json", {"status": "complete", "epochs_run": 4, "speed": {"dtype_policy": "mixed_bfloat16"}}
    )
    with pytest.raises(InputError) as err:
        ev.evaluate_run(run, n_boot=0)
    assert str(err.value) == (
        f"{run / 'predictions.csv'}: 2 of 12 rows have NaN/inf probabilities: the model produced "
        "non-finite (NaN/inf) outputs after epoch 4 (mixed_bfloat16); "
        "try float32 (mixed_precision=false) or a lower learning rate"
    )
    with pytest.raises(ValueError, match="2 of 12 predictions have NaN/inf probabilities"):
        ev.evaluate_predictions(df, n_boot=0)
    df.loc[[2, 5], "p_NoMet"] = np.inf
    with pytest.raises(ValueError, match="NaN/inf"):
        ev.evaluate_predictions(df, n_boot=0)
    # the finite rows alone score as before
    assert ev.evaluate_predictions(df.drop(index=[2, 5]), n_boot=0)["n_images"] == 10
