"""Issue 29: odd paths, corrupt headers, silent losses and exit codes, tried as a new user would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import phantom

from scintilab.audit import audit
from scintilab.cli import main as scintilab_main
from scintilab.dicomio import write_study
from scintilab.ingest import ingest


def _write(folder: Path, stem: str, hw=(64, 32), seed=0, **kw) -> list[Path]:
    rng = np.random.default_rng(seed)
    ant, post = phantom(hw, [], rng), phantom(hw, [], rng)
    return write_study(
        folder, ant, post, stem=stem, patient_id=f"P{stem}", patient_name="Test^Name", study_id=f"S{stem}", **kw
    )


def _cohort(root: Path, n: int = 2) -> Path:
    for i in range(n):
        _write(root / f"case_{i}", f"st{i}", seed=i)
    return root


# ----------------------------------------------------------------------------------- 1. odd paths


def test_symlink_loop_is_skipped_with_its_reason(tmp_path: Path) -> None:
    src = _cohort(tmp_path / "dicom")
    os.symlink(src / "loop_b.dcm", src / "loop_a.dcm")
    os.symlink(src / "loop_a.dcm", src / "loop_b.dcm")
    res = ingest(src, out=tmp_path / "out" / "manifest.csv", progress=False)
    assert len(res.manifest) == 2
    reasons = dict(res.skipped)
    assert reasons["loop_a.dcm"] == "symbolic link loop: skipped"


def test_non_utf8_file_name_is_named_not_fatal(tmp_path: Path) -> None:
    src = _cohort(tmp_path / "dicom")
    odd = os.fsdecode(b"caf\xe9_scan.dcm")  # Latin-1 bytes: not UTF-8
    shutil.copy(next((src / "case_0").glob("*.dcm")), src / odd)
    out = tmp_path / "out" / "manifest.csv"
    code = scintilab_main(["ingest", str(src), "--out", str(out), "--quiet"])
    assert code == 3  # kept what it could; one item skipped
    skipped = pd.read_csv(out.parent / "skipped.csv")
    assert list(skipped["path"]) == ["caf\\xe9_scan.dcm"]
    assert "not valid UTF-8" in skipped["reason"].iloc[0]
    assert len(pd.read_csv(out)) == 2


def test_failed_ingest_leaves_no_manifest_that_looks_valid(tmp_path: Path, monkeypatch) -> None:
    src = _cohort(tmp_path / "dicom")
    out = tmp_path / "out" / "manifest.csv"

    def boom(self, path, *a, **k):  # a write that dies half way (disk full, Ctrl-C)
        Path(path).write_text("study_key,patient_key\nS-half")
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError):
        ingest(src, out=out, progress=False)
    assert not out.exists() and not list(out.parent.glob("*manifest*"))


def test_audit_does_not_report_a_stale_skipped_list(tmp_path: Path) -> None:
    src = _cohort(tmp_path / "dicom")
    (src / "junk.dcm").write_bytes(b"not a dicom")
    folder = tmp_path / "out"
    ingest(src, out=folder / "first.csv", progress=False)  # leaves skipped.csv naming junk.dcm
    (src / "junk.dcm").unlink()
    ingest(src, out=folder / "second.csv", progress=False)  # rewrites skipped.csv (empty)
    # first.csv's skipped.csv is gone: its list must not be taken as the current one
    first = audit(folder / "first.csv")
    sk = first.flags[first.flags["kind"] == "ingest_skipped"]
    assert len(sk) == 1 and "another ingest" in sk["detail"].iloc[0]
    # a manifest written by hand (no ingest record) is not tied to any skipped list
    pd.read_csv(folder / "second.csv").to_csv(folder / "copy.csv", index=False)
    (folder / "skipped.csv").write_text("path,reason\nold.dcm,not DICOM\n")
    copy = audit(folder / "copy.csv")
    sk = copy.flags[copy.flags["kind"] == "ingest_skipped"]
    assert len(sk) == 1 and "not tied" in sk["detail"].iloc[0] and "not DICOM" not in sk["detail"].iloc[0]


def test_audit_reads_the_skipped_list_of_its_own_manifest(tmp_path: Path) -> None:
    src = _cohort(tmp_path / "dicom")
    (src / "junk.dcm").write_bytes(b"not a dicom")
    ingest(src, out=tmp_path / "out" / "manifest.csv", progress=False)
    res = audit(tmp_path / "out" / "manifest.csv")
    sk = res.flags[res.flags["kind"] == "ingest_skipped"]
    assert len(sk) == 1 and "not a DICOM file" in sk["detail"].iloc[0]


# --------------------------------------------------------------------- 2. header/pixel consistency


def _short_rows(path: Path, rows: int) -> None:
    """Lower Rows in the header of a written file, the pixel data left as it was."""
    ds = pydicom.dcmread(path)
    ds.Rows = rows
    ds.save_as(path, enforce_file_format=True)


def test_multiframe_rows_smaller_than_its_pixels_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    path = _write(src / "c", "mf", hw=(64, 32))[0]
    _short_rows(path, 60)  # 64 rows per frame stored, 60 said: frame 2 would start inside frame 1
    res = ingest(src, progress=False)
    assert len(res.manifest) == 0
    ((what, why),) = res.skipped
    assert what == "c/mf.dcm" and "frames cannot be placed" in why and "about 64 rows per frame" in why


def test_single_frame_with_extra_pixel_bytes_is_flagged_not_ok(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    paths = _write(src / "c", "pr", hw=(64, 32), layout="pair")
    _short_rows(paths[0], 60)
    res = ingest(src, progress=False)
    row = res.manifest.iloc[0]
    assert row["status"] == "flagged" and "pixel data longer than the header's matrix" in row["flags"]


def test_truncated_pixel_data_is_refused_with_the_sizes(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    path = _write(src / "c", "tr", hw=(64, 32))[0]
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[:-200]
    ds.save_as(path, enforce_file_format=True)
    res = ingest(src, progress=False)
    ((_, why),) = res.skipped
    assert "truncated pixel data" in why and "Rows 64 x Columns 32 x 2 frame(s) x 16 bits" in why


def test_pydicom_pixel_warnings_become_flags(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    path = _write(src / "c", "pr", hw=(64, 32), layout="pair")[0]
    _short_rows(path, 60)
    with pytest.warns(UserWarning, match="excess padding"):  # pydicom only warns
        pydicom.dcmread(path).pixel_array  # noqa: B018
    flags = ingest(src, progress=False).manifest.iloc[0]["flags"]
    assert "ANT: pixel data: The pixel data is 4096 bytes long" in flags and "excess padding" in flags


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads a file of mode 000: no permission error to provoke"
)
def test_unreadable_file_is_reported_as_unreadable(tmp_path: Path) -> None:
    src = _cohort(tmp_path / "dicom")
    locked = src / "locked.dcm"
    shutil.copy(next((src / "case_0").glob("*.dcm")), locked)
    locked.chmod(0)
    try:
        why = dict(ingest(src, progress=False).skipped)["locked.dcm"]
    finally:
        locked.chmod(0o644)
    assert "permission denied" in why and "corrupt" not in why


# ----------------------------------------------------------------------------------- 6. silent losses
def test_annotation_losses_and_label_conflicts_are_flagged(tmp_path: Path) -> None:
    """An unknown label text, an imagePath naming another study's image, and a patient row that
    contradicts a study row were each taken in silence."""
    import json

    from conftest import make_cohort

    root = make_cohort(tmp_path / "c", 3, labels=["ADMet", "nADMet", "ADMet"])
    ant = sorted(a for a in (root / "annotations").rglob("*.json") if a.stem.upper().endswith("_ANT"))
    assert len(ant) == 3
    first, second = json.loads(ant[0].read_text()), json.loads(ant[1].read_text())
    first["shapes"].append({**first["shapes"][0], "label": "metastasis"})  # a clinician's own word
    ant[0].write_text(json.dumps(first))
    second["imagePath"] = "../dicom/" + json.loads(ant[2].read_text())["imagePath"]  # another study's image
    ant[1].write_text(json.dumps(second))
    sheet = pd.read_csv(root / "labels.csv", dtype=str)
    row = sheet.iloc[2]  # the third study: the first two have annotation problems
    other = next(c for c in ("NoMet", "ADMet", "nADMet") if c != row["label"])
    pd.concat(
        [sheet, pd.DataFrame([{"patient_id": row["patient_id"], "study_id": "", "label": other}])], ignore_index=True
    ).to_csv(root / "labels.csv", index=False)
    res = ingest(root / "dicom", root / "labels.csv", root / "annotations", tmp_path / "m.csv", progress=False)
    flags = " | ".join(res.manifest["flags"].fillna(""))
    assert "'metastasis'" in flags and "counted as neither" in flags
    assert "imagePath names" in flags and "not the image this annotation was joined to" in flags
    assert f"patient's row says {other}" in flags and "the study's row is used" in flags
    assert (res.manifest["status"] == "flagged").sum() == 3  # each study has one of the three problems
