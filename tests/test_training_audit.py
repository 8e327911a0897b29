"""Leak-proof training (issue 14): the audit's duplicate pairs shape and guard the split.

A tiny real cohort (DICOM via conftest's writer) gets one exact copy of a study planted
under a new patient id (scintilab.faults, on disk), is ingested and audited; training then
has to keep the pair on one side, refuse a split that straddles it, and go on with a
warning only when told to.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_cohort

from scintilab.audit import LeakageError, audit
from scintilab.faults import plant_faults_on_disk
from scintilab.ingest import ingest, load_cohort
from scintilab.presets import config_from_preset
from scintilab.runs import find_run
from scintilab.training import audit_files, cli_main, load_image_set, split_indices, train

# Eager mode, 64 x 32 input, width 4, one epoch: seconds on a CPU.
TINY = {
    "image_size": (64, 32),
    "model_options": {"width": 4},
    "epochs": 1,
    "batch_size": 8,
    "n_boot": 20,
    "verbose": 0,
    "run_eagerly": True,
    "dataset": "D1",
}


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An ingested, audited cohort with one planted exact duplicate (under another patient)."""
    base = tmp_path_factory.mktemp("leak")
    clean = make_cohort(base / "clean", 8, labels=["ADMet", "nADMet"] * 4, seed=3)
    ingest(clean / "dicom", clean / "labels.csv", clean / "annotations", clean / "manifest.csv", progress=False)
    faulty = base / "faulty"
    truth = plant_faults_on_disk(clean, faulty, clean / "manifest.csv", kinds=["exact_copy"], rng=0)
    manifest = faulty / "manifest.csv"
    ingest(faulty / "dicom", faulty / "labels.csv", faulty / "annotations", manifest, progress=False)
    result = audit(manifest, out=faulty / "audit")
    pair = (str(truth.loc[0, "study_a"]), str(truth.loc[0, "study_b"]))
    dup = result.flags[result.flags["kind"] == "exact_duplicate"]
    assert {tuple(sorted(p)) for p in zip(dup["study_a"], dup["study_b"])} == {tuple(sorted(pair))}
    cfg = config_from_preset("quick", data=str(manifest), **TINY)
    ds = load_image_set(cfg, load_cohort(manifest))
    return {"manifest": manifest, "pair": pair, "cfg": cfg, "ds": ds, "flags": faulty / "audit" / "flags.csv"}


def _sides(ds, parts) -> dict[str, set[str]]:
    keys = np.asarray(ds.study_keys).astype(str)
    out: dict[str, set[str]] = {}
    for name, idx in zip(("train", "val", "test"), parts):
        for k in keys[idx]:
            out.setdefault(k, set()).add(name)
    return out


def test_audit_groups_keep_the_pair_together_and_cli_trains(audited: dict, tmp_path: Path) -> None:
    cfg, ds, (a, b) = audited["cfg"], audited["ds"], audited["pair"]
    assert a in set(ds.study_keys) and b in set(ds.study_keys)
    assert audit_files(cfg)[2] == "auto"  # <manifest folder>/audit/flags.csv is found by itself
    # Without the audit the patient split separates the copy from its original for some
    # seed (they carry different patient keys); with it, never.
    off_leaky = [
        s
        for s in range(12)
        if _sides(ds, split_indices(cfg.replace(audit_flags="off", seed=s), ds))[a]
        != _sides(ds, split_indices(cfg.replace(audit_flags="off", seed=s), ds))[b]
    ]
    assert off_leaky, "the patient split never straddled the pair: the test would prove nothing"
    for s in range(12):
        sides = _sides(ds, split_indices(cfg.replace(seed=s), ds))
        assert sides[a] == sides[b], f"seed {s}: {sides[a]} vs {sides[b]}"

    # The CLI, with a seed at which a plain patient split would leak: trains one epoch.
    run_dir = tmp_path / "run"
    rc = cli_main(
        [
            "--data",
            str(audited["manifest"]),
            "--out",
            str(run_dir),
            "--quiet",
            "--set",
            f"audit_flags={audited['flags']}",
            "--set",
            "allow_leaks=true",
            "--set",
            f"seed={off_leaky[0]}",
            "--set",
            "image_size=[64,32]",
            "--set",
            "model_options.width=4",
            "--set",
            "epochs=1",
            "--set",
            "dataset=D1",
            "--set",
            "run_eagerly=true",
            "--set",
            "n_boot=20",
        ]
    )
    assert rc == 0
    info = json.loads((run_dir / "config.json").read_text())
    assert info["audit"]["applied"] is True and info["audit"]["source"] == "config"
    assert info["audit"]["flags"] == "audit/flags.csv" and info["audit"]["straddling"] == []
    assert info["config"]["allow_leaks"] is True and info["epochs_run"] == 1
    test_keys = set(pd.read_csv(run_dir / "predictions.csv")["study_key"])
    assert (a in test_keys) == (b in test_keys)
    # The audit files are part of the run's identity: find_run agrees with train, and the
    # same settings without the audit are another run.
    same = cfg.replace(audit_flags=str(audited["flags"]), allow_leaks=True, seed=off_leaky[0], verbose=2, n_boot=20)
    assert find_run(same, tmp_path) == run_dir
    assert find_run(same.replace(audit_flags="off"), tmp_path) is None


def _leaky_split(ds, pair) -> pd.DataFrame:
    keys = sorted(set(np.asarray(ds.study_keys).astype(str)))
    side = {k: ("train" if i % 3 else "test") for i, k in enumerate(keys)}
    side[pair[0]], side[pair[1]] = "train", "test"
    return pd.DataFrame({"study_key": list(side), "split": list(side.values())})


def test_straddling_split_is_refused_naming_the_pair(audited: dict, tmp_path: Path) -> None:
    cfg, ds, (a, b) = audited["cfg"], audited["ds"], audited["pair"]
    with pytest.raises(LeakageError) as err:
        train(cfg, tmp_path / "run", dataset=ds, split=_leaky_split(ds, (a, b)))
    assert a in str(err.value) and b in str(err.value) and "exact_duplicate" in str(err.value)
    assert not (tmp_path / "run" / "model.keras").exists()  # refused before fitting
    # Switching the audit off trains the same split without a word (nothing to check against).
    assert audit_files(cfg.replace(audit_flags="off"))[0] is None


def test_allow_leaks_goes_on_with_a_warning(audited: dict, tmp_path: Path) -> None:
    cfg, ds, (a, b) = audited["cfg"], audited["ds"], audited["pair"]
    with pytest.warns(UserWarning, match="allow_leaks") as rec:
        result = train(cfg.replace(allow_leaks=True), tmp_path / "run", dataset=ds, split=_leaky_split(ds, (a, b)))
    assert any(a in str(w.message) and b in str(w.message) for w in rec)
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert info["status"] == "complete" and info["audit"]["applied"] is True
    assert len(info["audit"]["straddling"]) == 1 and a in info["audit"]["straddling"][0]
    assert len(result.history) == 1
