"""The truth-only ceiling (issue 25, item 1): what it reads, how it folds, that it can tell signal from none."""

from __future__ import annotations

import copy
import csv
import importlib
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from scintilab.protocol import PROTOCOL_FILE, require
from scintilab.synth.ceiling import (
    FEATURES,
    KEY_COLUMNS,
    ceiling,
    ceiling_from_table,
    fraction_of_ceiling,
    grouped_folds,
    study_features,
    truth_features,
)
from scintilab.synth.cohort import write_cohort

ROOT = Path(__file__).resolve().parents[1]
SEED = 4401  # validation/cohorts.yaml: test-ceiling


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(SEED, "tests", "narrow", what="tests/test_ceiling.py")
    root = tmp_path_factory.mktemp("ceiling") / "cohort"
    write_cohort(root, n_patients=12, seed=SEED, matrix=(256, 64), progress=False)
    return root


def _records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "truth").glob("*.json"))]


def test_features_count_what_the_image_shows(cohort: Path) -> None:
    table = truth_features(cohort)
    assert list(table.columns) == [*KEY_COLUMNS, *FEATURES]
    assert len(table) == 12 and table["patient"].nunique() == 12
    with open(cohort / "labels.csv", newline="") as fh:
        labels = {r["patient_id"]: r["label"] for r in csv.DictReader(fh)}
    assert dict(zip(table["patient"], table["label"])) == labels
    by_patient = table.set_index("patient")
    for rec in _records(cohort):
        row = by_patient.loc[rec["patient_id"]]
        seen = [les for les in rec["lesions"] if les["pixels"] > 0]
        assert row["n_lesions"] == len(seen)
        sr, sc = rec["pixel_spacing"]
        assert row["area_mm2_total"] == pytest.approx(sum(les["pixels"] for les in seen) * sr * sc)
        assert row["n_shape_punctate"] == sum(les["shape"] == "punctate" for les in seen)
        if rec["label"] == "NoMet":
            assert row["n_lesions"] == 0 and row["true_bsi"] == 0
    assert table.loc[table["label"] != "NoMet", "n_lesions"].gt(0).all()


def test_features_do_not_read_the_label_the_patient_or_class_draws(cohort: Path) -> None:
    rec = next(r for r in _records(cohort) if r["label"] == "ADMet")
    other = copy.deepcopy(rec)
    other.update(label="nADMet", patient_id="someone else", case="case_9999", missing_view="POST", age=20)
    other["variety"] = {"patient": {"anything": 1}}
    assert study_features(other) == study_features(rec)
    # a lesion that paints no pixel is invisible to any image model (the generator rarely
    # writes one: even a 9 mm pixel holds every lesion of this cohort)
    other["lesions"][0]["pixels"] = 0
    assert study_features(other)["n_lesions"] == study_features(rec)["n_lesions"] - 1


def test_grouping_keeps_each_patient_in_one_fold() -> None:
    rng = np.random.default_rng(0)
    patients = np.repeat([f"P{i:02d}" for i in range(30)], 3)  # three visits each
    y = np.repeat(rng.choice(3, size=30, p=[0.6, 0.25, 0.15]), 3)
    y[:9] = np.repeat([0, 1, 2], 3)  # every class has patients
    y[9:15] = np.repeat([1, 2], 3)
    for seed in range(5):
        splits = grouped_folds(y, patients, folds=5, seed=seed)
        tested = np.concatenate([te for _, te in splits])
        assert sorted(tested.tolist()) == list(range(len(y)))  # each study tested once
        for tr, te in splits:
            assert not set(patients[tr]) & set(patients[te])
    # a class with two patients caps the folds at two
    assert len(grouped_folds(np.array([0, 0, 0, 1, 1, 2, 2]), np.arange(7), folds=5)) == 2


def _toy(n: int = 150, seed: int = 0) -> pd.DataFrame:
    """A table whose label is written in two features (and noise in two more)."""
    rng = np.random.default_rng(seed)
    label = rng.choice(3, size=n, p=[0.6, 0.25, 0.15])
    return pd.DataFrame(
        {
            "patient": [f"P{i:03d}" for i in range(n)],
            "label": np.array(["NoMet", "ADMet", "nADMet"])[label],
            "a": (label > 0) * 5.0 + rng.normal(0, 1, n),
            "b": (label == 2) * 5.0 + rng.normal(0, 1, n),
            "c": rng.normal(0, 1, n),
            "d": rng.normal(0, 1, n),
        }
    )


def test_a_separable_table_reaches_high_accuracy_and_shuffled_labels_chance() -> None:
    table = _toy()
    good = ceiling_from_table(table, n_boot=200, importance_repeats=3, features=("a", "b", "c", "d"), repeats=2)
    assert good["accuracy"]["estimate"] >= 0.95 and good["met_accuracy"]["estimate"] >= 0.95
    assert good["accuracy"]["low"] <= good["accuracy"]["estimate"] <= good["accuracy"]["high"]
    assert set(list(good["importances"])[:2]) == {"a", "b"}
    shuffled = table.assign(label=np.random.default_rng(1).permutation(table["label"].to_numpy()))
    bad = ceiling_from_table(shuffled, n_boot=200, importance_repeats=3, features=("a", "b", "c", "d"), repeats=2)
    assert bad["majority_rate"] == pytest.approx(good["majority_rate"])
    assert bad["accuracy"]["estimate"] <= bad["majority_rate"] + 0.08
    assert bad["accuracy"]["low"] <= bad["majority_rate"]


def test_the_ceiling_of_a_cohort_and_a_model_as_a_fraction_of_it(cohort: Path) -> None:
    res = ceiling(cohort, folds=5, n_boot=200, repeats=2)
    assert res["cohort"]["seed"] == SEED and res["cohort"]["variety"] == "narrow"
    assert res["folds"] == 2  # the rarest class has two patients in 12
    assert res["studies"] == 12 and res["majority_class"] == "NoMet" and res["majority_rate"] == pytest.approx(7 / 12)
    assert sum(f["studies"] for f in res["per_fold"]) == 12 and len(res["cv_repeats"]["accuracy"]) == 2
    assert np.sum(res["confusion"]) == pytest.approx(12)
    assert f"seed {SEED} (narrow)" in res["text"]
    json.dumps(res)  # JSON-ready
    frac = fraction_of_ceiling(
        {"accuracy": 0.6, "macro_f1": 0.5, "met_accuracy": 0.7},
        {**res, "accuracy": {"estimate": 0.8, "low": 0.75, "high": 1.0}, "majority_rate": 0.5},
    )
    assert frac["accuracy"] == pytest.approx(0.75)
    assert frac["accuracy_ceiling_range"] == pytest.approx([0.6, 0.8])
    assert frac["gain_over_majority"] == pytest.approx(1 / 3)


def _script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module("ceiling")


def _refused(script: ModuleType, capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> None:
    with pytest.raises(SystemExit) as exc:
        script.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for n in needles:
        assert n in err, err


def test_the_script_checks_the_protocol_before_any_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, cohort: Path
) -> None:
    script = _script(monkeypatch)
    fresh = tmp_path / "fresh"
    _refused(script, capsys, ["--cohort", str(fresh), "--seed", "4999"], PROTOCOL_FILE, "seed 4999", "not registered")
    _refused(script, capsys, ["--cohort", str(fresh), "--seed", "0"], PROTOCOL_FILE, "tuning figure")
    _refused(script, capsys, ["--cohort", str(fresh), "--seed", "4401"], "registered only for tests")
    assert not fresh.exists()  # nothing was written
    # the folder's cohort.json decides, not --seed: the tests cohort is no reporting cohort
    out = tmp_path / "out.json"
    _refused(script, capsys, ["--cohort", str(cohort), "--seed", "163", "--json", str(out)], "seed 4401")
    # an unreadable image-model file is refused before any work too
    _refused(
        script, capsys, ["--cohort", str(fresh), "--seed", "163", "--classify", str(tmp_path / "x.json")], "x.json"
    )
    assert not fresh.exists() and not out.exists()
