"""No identity leaks, private tags included: every identifying header value an export carries
is planted, then every output of ingest, audit, lesions and quantify (tables, logs, HTML
reports, figures' data, the DICOM SEG/SR/PDF) is searched for it.

The planted values (tests/conftest.py :func:`planted_export_header`) sit in OtherPatientNames,
OtherPatientIDs, InstitutionName/Address, StationName, OperatorsName, the referring and
performing physicians, DeviceSerialNumber, the image, study and patient comments, and a GE
Genie-style private block ((0009,0010) ``GEMS_GENIE_1``, (0009,1040) the patient's name),
beside PatientName, PatientID, BirthDate, AccessionNumber and StudyID; one case folder is
named by the patient, as exports often are.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import pydicom
import pytest

from scintilab import reports
from scintilab.cli import main
from scintilab.dicomio import GE_PRIVATE_CREATOR
from tests.conftest import PLANTED_ID, PLANTED_NAME, make_cohort, planted_export_header

SEED = 5
N = 3
#: Text outputs searched as text; DICOM outputs are searched in their bytes (Latin-1).
TEXT_SUFFIXES = {".csv", ".json", ".html", ".htm", ".md", ".txt", ".svg", ".log", ".tsv"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    root = make_cohort(
        tmp_path_factory.mktemp("privacy") / "cohort",
        N,
        layout="pair",
        shape=(256, 64),
        seed=SEED,
        labels=["ADMet", "NoMet", "nADMet"],
    )
    # exports often name the folder by patient: the path is identifying too
    first = root / "dicom" / "case_0000"
    first.rename(root / "dicom" / f"{PLANTED_ID}{SEED:02d}0000_{PLANTED_NAME.split('^')[0]}")
    return root


@pytest.fixture(scope="module")
def outputs(exported: Path, tmp_path_factory) -> dict:
    """Run every command that reads the cohort; keep what each printed (stdout, stderr and
    log records: capsys is per test, so this captures by hand) and wrote."""
    out = tmp_path_factory.mktemp("privacy_out")
    printed: dict[str, str] = {}

    def run(name: str, argv: list[str], ok: tuple[int, ...] = (0,)) -> None:
        buf_out, buf_err, logs = io.StringIO(), io.StringIO(), io.StringIO()
        handler = logging.StreamHandler(logs)
        logging.getLogger().addHandler(handler)
        try:
            with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
                code = main(argv)
        finally:
            logging.getLogger().removeHandler(handler)
        printed[name] = buf_out.getvalue() + buf_err.getvalue() + logs.getvalue()
        assert code in ok, f"{name} exited {code}: {printed[name][-2000:]}"

    manifest = out / "ingest" / "manifest.csv"
    run(
        "ingest",
        [
            "ingest",
            str(exported / "dicom"),
            "--labels",
            str(exported / "labels.csv"),
            "--annotations",
            str(exported / "annotations"),
            "--out",
            str(manifest),
        ],
    )
    run("audit", ["audit", str(manifest), "--out", str(out / "audit")])
    run(
        "lesions",
        [
            "lesions",
            str(manifest),
            "--out",
            str(out / "lesions" / "lesions.csv"),
            "--stats",
            str(out / "lesions" / "stats.csv"),
        ],
    )
    run("quantify", ["quantify", str(manifest), "--out", str(out / "quantify"), "--dicom", "--quiet"])
    return {"root": out, "printed": printed, "manifest": manifest}


def _terms(exported: Path) -> set[str]:
    return reports.phi_terms_from_dicom([exported / "dicom"])


def test_the_check_knows_every_planted_value(exported: Path) -> None:
    """The search is only as good as its terms: each planted value, the private one included."""
    terms = _terms(exported)
    for i in range(N):
        for value in planted_export_header(i, SEED).values():
            assert value in terms, f"{value!r} is not searched for"
    ds = pydicom.dcmread(next((exported / "dicom").rglob("*.dcm")))
    creators = [e.value for e in ds if e.tag.group == 0x0009 and e.tag.is_private_creator]
    assert GE_PRIVATE_CREATOR in creators


def test_a_planted_value_is_found_where_it_leaks(exported: Path) -> None:
    """A scan that cannot fail proves nothing: each kind of term is found in a page showing it."""
    terms = _terms(exported)
    h = planted_export_header(1, SEED)
    for value, shown in (
        (h.private_patient_name, h.private_patient_name.replace("^", " ")),
        (h.operators, h.operators.split("^")[0]),
        (h.institution, h.institution),
        (h.device_serial, h.device_serial),
        (h.image_comments, h.image_comments),
    ):
        page = f"<html><body><p>Study of {shown}</p></body></html>"
        assert reports.scan_for_phi(page, terms), f"{value!r} shown as {shown!r} was not found"


def test_the_commands_ran_on_every_study(outputs: dict) -> None:
    import pandas as pd

    man = pd.read_csv(outputs["manifest"])
    assert len(man) == N and set(man["status"]) <= {"ok", "flagged"}
    studies = pd.read_csv(outputs["root"] / "quantify" / "studies.csv")
    assert len(studies) == N
    assert len(list((outputs["root"] / "quantify" / "dicom").rglob("*.dcm"))) >= 3 * N  # SEG, SR, PDF each


def test_no_identity_in_anything_printed_or_written(outputs: dict, exported: Path) -> None:
    terms = _terms(exported)
    hits: dict[str, list[str]] = {}
    for name, text in outputs["printed"].items():
        found = reports.scan_for_phi(text, terms)
        if found:
            hits[f"printed by {name}"] = found
    searched = {"text": 0, "dicom": 0}
    for path in sorted(p for p in outputs["root"].rglob("*") if p.is_file()):
        rel = str(path.relative_to(outputs["root"]))
        if path.name in ("manifest.csv", "skipped.csv") and path.parent.name == "ingest":
            # the manifest is the local index of the source files: its path columns point at
            # them (and so name the patient's folder); every other column is checked
            import pandas as pd

            table = pd.read_csv(path, dtype=str).fillna("")
            table = table.drop(columns=[c for c in table.columns if c.endswith("_path") or c == "path"])
            text = table.to_csv(index=False)
        elif path.suffix.lower() in TEXT_SUFFIXES:
            text = path.read_text(encoding="utf-8", errors="replace")
        elif path.suffix.lower() == ".dcm":
            ds = pydicom.dcmread(path)
            assert not any(e.tag.is_private for e in ds.iterall() if e.tag.group in (0x0009, 0x0011, 0x0013)), (
                f"{rel}: a private tag was copied"
            )
            text = path.read_bytes().decode("latin-1")
            searched["dicom"] += 1
        else:
            continue  # PNG figures: drawn from pseudonymous keys only; their text is in the HTML
        searched["text"] += path.suffix.lower() != ".dcm"
        found = reports.scan_for_phi(text, terms)
        if found:
            hits[rel] = found
    assert searched["text"] >= 10 and searched["dicom"] >= 3 * N
    assert not hits, f"identity leaked: {hits}"
