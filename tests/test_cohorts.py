"""Every command that takes a cohort takes a folder or a manifest, and says one sentence otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from scintilab.cli import main
from scintilab.cohorts import EXPECTED, manifest_of
from scintilab.errors import InputError
from scintilab.ingest import resolve_manifest


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_a_folder_with_a_manifest_gives_it(tmp_manifest) -> None:
    manifest = tmp_manifest(3)
    assert resolve_manifest(manifest.parent) == manifest == manifest_of(manifest.parent)
    assert resolve_manifest(manifest) == manifest


def test_a_folder_without_one_is_ingested_on_the_spot_with_a_note(tmp_cohort_dir) -> None:
    root = tmp_cohort_dir(3)
    before = _snapshot(root)
    notes: list[str] = []
    manifest = resolve_manifest(root, note=notes.append)
    assert manifest == root / "manifest.csv" and len(pd.read_csv(manifest)) == 3
    assert len(notes) == 1 and "no manifest.csv; ingesting" in notes[0] and "only read" in notes[0]
    assert pd.read_csv(manifest)["label"].notna().all()  # labels.csv beside dicom/ was used
    after = _snapshot(root)
    assert {k: v for k, v in after.items() if k in before} == before  # the inputs are untouched


def test_an_export_folder_itself_is_ingested(tmp_cohort_dir) -> None:
    dicom = tmp_cohort_dir(2) / "dicom"  # a bare folder of DICOM files, no labels
    manifest = resolve_manifest(dicom, note=None)
    assert manifest == dicom / "manifest.csv" and len(pd.read_csv(manifest)) == 2


@pytest.mark.parametrize("kind", ["missing", "png", "empty", "sidecars only"])
def test_anything_else_is_one_sentence(kind, tmp_path: Path) -> None:
    path = {
        "missing": tmp_path / "nope",
        "png": tmp_path / "scan.png",
        "empty": tmp_path / "empty",
        "sidecars only": tmp_path / "notes",
    }[kind]
    if kind == "png":
        path.write_bytes(b"\x89PNG")
    elif kind == "empty":
        path.mkdir()
    elif kind == "sidecars only":
        path.mkdir()
        (path / "readme.txt").write_text("nothing to ingest")
    with pytest.raises(InputError) as err:
        resolve_manifest(path)
    assert str(path) in str(err.value) and EXPECTED in str(err.value)


@pytest.mark.parametrize("command", ["lesions", "audit", "quantify", "datasets", "train"])
def test_every_command_refuses_a_wrong_path_in_one_line(command, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"\x89PNG")
    argv = {
        "lesions": ["lesions", str(bad)],
        "audit": ["audit", str(bad), "--out", str(tmp_path / "a")],
        "quantify": ["quantify", str(bad), "--out", str(tmp_path / "q"), "--quiet"],
        "datasets": ["datasets", str(bad), "--out", str(tmp_path / "d")],
        "train": ["train", "--data", str(bad), "--out", str(tmp_path / "r"), "--quiet"],
    }[command]
    assert main(argv) == 2
    captured = capsys.readouterr()
    text = (captured.out + captured.err).strip()
    assert "Traceback" not in text and str(bad) in text and "manifest CSV" in text
    assert len([line for line in text.splitlines() if str(bad) in line]) == 1


def test_commands_take_a_cohort_folder(tmp_cohort_dir, tmp_path: Path, capsys) -> None:
    root = tmp_cohort_dir(3)
    assert main(["lesions", str(root), "--out", str(tmp_path / "lesions.csv")]) == 0
    assert "ingesting" in capsys.readouterr().out  # the first command ingests, saying so
    assert main(["audit", str(root), "--out", str(tmp_path / "audit")]) == 0
    assert "ingesting" not in capsys.readouterr().out  # later ones use the manifest it wrote
    assert len(pd.read_csv(tmp_path / "lesions.csv")) > 0 and (tmp_path / "audit" / "flags.csv").is_file()


def test_train_takes_a_cohort_folder(tmp_cohort_dir, tmp_path: Path) -> None:
    """The user's case: ``scintilab train --data FOLDER`` ended in IsADirectoryError."""
    root = tmp_cohort_dir(6)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--preset",
                "quick",
                "--data",
                str(root),
                "--out",
                str(run),
                "--quiet",
                "--set",
                "image_size=[64,16]",
                "--set",
                'model_options={"width":4,"blocks":[1,1,1,1]}',
                "--set",
                "epochs=1",
                "--set",
                "batch_size=4",
                "--set",
                "n_boot=10",
            ]
        )
        == 0
    )
    config = json.loads((run / "config.json").read_text())
    assert config["status"] == "complete" and Path(config["config"]["data"]).name == "manifest.csv"


def test_notebooks_data_dir_takes_a_manifest_or_an_export_and_never_writes_into_it(
    tmp_manifest, tmp_cohort_dir, tmp_path: Path
) -> None:
    """``ensure_cohort`` (every notebook's data_dir): a manifest CSV as it is; a folder of
    DICOM exports is ingested, not filled with a synthetic cohort; a folder with neither is
    refused."""
    from scintilab.synth.cohort import ensure_cohort

    manifest = tmp_manifest(2)
    assert ensure_cohort(manifest, progress=False) == manifest
    export = tmp_cohort_dir(2) / "dicom"
    before = set(export.rglob("*"))
    got = ensure_cohort(export, progress=False)
    assert got == export / "manifest.csv" and len(pd.read_csv(got)) == 2
    assert set(export.rglob("*")) - before <= {
        export / "manifest.csv",
        export / "skipped.csv",
        *export.glob("manifest.csv*"),
    }
    assert not (export / "truth").exists()  # no synthetic cohort was written there
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no images")
    with pytest.raises(InputError, match="neither manifest.csv nor images"):
        ensure_cohort(notes, progress=False)


def test_train_reads_a_relative_manifest_from_the_current_folder(tmp_cohort_dir, tmp_path: Path, monkeypatch) -> None:
    """Issue 29: ``--data my_manifest.csv`` was read against the project folder, not the current one."""
    root = tmp_cohort_dir(6)
    monkeypatch.chdir(root)
    assert main(["ingest", "dicom", "--labels", "labels.csv", "--annotations", "annotations", "--out", "mine.csv"]) == 0
    assert (
        main(
            [
                "train",
                "--preset",
                "quick",
                "--data",
                "mine.csv",
                "--out",
                "run",
                "--quiet",
                "--set",
                "image_size=[64,16]",
                "--set",
                'model_options={"width":4,"blocks":[1,1,1,1]}',
                "--set",
                "epochs=1",
                "--set",
                "batch_size=4",
                "--set",
                "n_boot=10",
            ]
        )
        == 0
    )
    config = json.loads((root / "run" / "config.json").read_text())
    assert Path(config["config"]["data"]) == (root / "mine.csv").absolute()
