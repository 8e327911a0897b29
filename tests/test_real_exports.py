"""Issue 22's done-when: an export as a GE camera hands it over, in a folder of other things.

The study: Secondary Capture, one frame, 1024x256 at 2.26 mm, anterior only, JPEG Lossless
SV1, signed pixels, nothing naming the view (no ViewCodeSequence, a neutral description,
comments about the compression), the patient's name repeated in a GE Genie private tag, a
broad patient. Beside it: CT, MR and US images, a SEG, a PDF renamed .dcm, a broken JPEG
file, a file with no extension and no DICOM marker, and a text sidecar (left alone).
Ingest must keep the one study (flagged, with the counts of the stored pixels) and name
every other file with its reason.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from scintilab.cli import main
from scintilab.dicomio import ExportHeader, write_study

#: A held-out seed (benchmarks/cohorts.md): never used to tune the view recogniser.
SEED = 4101
NAME = "Exportsecret^Gerda"
PID = "GEPID4101"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    from scintilab.synth.scan import generate_patient, render_study

    root = tmp_path_factory.mktemp("ge_export")
    pat = generate_patient(np.random.default_rng(SEED), "NoMet", index=1, matrix=(1024, 256), seed=SEED)
    pat.anatomy = dataclasses.replace(pat.anatomy, width=1.3)  # a broad (obese) patient
    pat._phantom = None
    ant = render_study(pat, np.random.default_rng([SEED, 1])).anterior
    ge = root / "export" / "WB_20240102"
    written = write_study(
        ge,
        ant.astype(np.int16),
        None,
        stem="WHOLE_BODY_E",
        layout="pair",
        sop_class="sc",
        signed=True,
        compress="jpeg-lossless-sv1",
        view_naming="none",
        pixel_spacing=(2.26, 2.26),
        patient_id=PID,
        patient_name=NAME,
        study_id="GE4101",
        manufacturer="GE MEDICAL SYSTEMS",
        export_header=ExportHeader(
            private_patient_name=NAME,
            image_comments="Lossless JPEG compression",
            station="MGCAM01",
            institution="Exportsecret Hospital",
        ),
    )
    other = root / "export" / "other"
    rng = np.random.default_rng(0)
    img = rng.poisson(20, (128, 32)).astype(np.uint16)
    for modality in ("CT", "MR", "US"):
        write_study(
            other / modality,
            img,
            img,
            stem=f"series_{modality}",
            patient_id="OTHER1",
            patient_name="Other^P",
            study_id=f"O{modality}",
            modality=modality,
        )
    write_study(
        other / "SEG",
        img,
        img,
        stem="seg",
        patient_id="OTHER1",
        patient_name="Other^P",
        study_id="OSEG",
        modality="SEG",
    )
    (other / "notes.txt").write_text("a sidecar: text and tables (labels, annotations, notes) are left alone")
    (other / "screenshot.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (other / "IM000001").write_bytes(b"no extension, no DICOM marker" * 10)
    (other / "report.dcm").write_bytes(b"%PDF-1.4\n% a PDF saved with the wrong name\n")
    out = root / "out" / "manifest.csv"
    code = main(["ingest", str(root / "export"), "--out", str(out)])
    return {"root": root, "file": written[0], "counts": int(ant.sum()), "code": code, "out": out}


def test_the_ge_export_is_kept_with_its_counts(mixed) -> None:
    man = pd.read_csv(mixed["out"])
    assert mixed["code"] == 3  # partial: the study is kept, the other files are skipped and listed
    assert len(man) == 1
    row = man.iloc[0]
    assert row["status"] == "flagged" and row["views"] == "ANT"
    assert (int(row["rows"]), int(row["cols"])) == (1024, 256)
    assert int(row["counts_ant"]) == mixed["counts"]  # JPEG Lossless: bit-exact after decoding
    flags = str(row["flags"])
    assert "view inferred from the image (p" in flags, flags
    assert "one view only" in flags and "signed pixel data" in flags
    assert str(row["view_source"]).startswith("image (p ")


def test_every_other_file_is_named_with_its_reason(mixed) -> None:
    skipped = pd.read_csv(mixed["out"].parent / "skipped.csv", dtype=str)
    reasons = {row["path"].replace("\\", "/").removeprefix("other/"): row["reason"] for _, row in skipped.iterrows()}
    expected = {
        "CT/series_CT.dcm": "wrong modality CT",
        "MR/series_MR.dcm": "wrong modality MR",
        "US/series_US.dcm": "wrong modality US",
        "SEG/seg.dcm": "segmentation object (Modality SEG), not an image",
        "report.dcm": "not a DICOM file",
        "screenshot.jpg": "not a DICOM file",
        "IM000001": "not a DICOM file",
    }
    assert "notes.txt" not in reasons  # sidecars are not images that failed
    for name, words in expected.items():
        assert name in reasons, f"{name} is not listed in skipped.csv: {sorted(reasons)}"
        assert words in reasons[name], f"{name}: {reasons[name]!r}"
