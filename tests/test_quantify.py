"""``scintilab quantify``: tables, per-study reports (rendered in Chromium), no identity leaks."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from scintilab import quant_params as qp
from scintilab import reports
from scintilab.cli import main
from scintilab.quantify import FOLLOWUP_COLUMNS, HOTSPOT_COLUMNS, quantify_cohort
from scintilab.synth.validate import (
    VALIDATION_BARS,
    summarise_validations,
    validation_summary_text,
    validation_verdict,
)

PLANTED_NAME = "Plantedname^Secret"  # same planted values as tests/conftest.py
PLANTED_ID = "PIDSECRET"


@pytest.fixture(scope="module")
def two_visits(tmp_path_factory) -> Path:
    """A 3-patient synthetic cohort, two visits each, small matrix, with planted identities."""
    import pydicom

    root = tmp_path_factory.mktemp("quant")
    assert (
        main(
            [
                "synth",
                str(root),
                "--patients",
                "3",
                "--size",
                "tiny",
                "--seed",
                "2",
                "--visits",
                "2",
                "--matrix",
                "512x128",
                "--variety",
                "narrow",
                "--quiet",
            ]
        )
        == 0
    )
    # plant a recognisable name and id (the generator's are random-looking already)
    for f in sorted((root / "dicom").rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        old = str(ds.PatientID)
        ds.PatientName = f"{PLANTED_NAME}{old[-2:]}"
        ds.PatientID = f"{PLANTED_ID}{old}"
        ds.save_as(f)
    labels = (root / "labels.csv").read_text()
    labels = re.sub(r"^(LC\d+)", lambda m: f"{PLANTED_ID}{m.group(1)}", labels, flags=re.M)
    (root / "labels.csv").write_text(labels)
    assert (
        main(
            [
                "ingest",
                str(root / "dicom"),
                "--labels",
                str(root / "labels.csv"),
                "--annotations",
                str(root / "annotations"),
                "--out",
                str(root / "manifest.csv"),
            ]
        )
        == 0
    )
    return root


@pytest.fixture(scope="module")
def quantified(two_visits: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qout")
    assert main(["quantify", str(two_visits / "manifest.csv"), "--out", str(out), "--quiet"]) == 0
    return out


def test_tables_have_the_agreed_columns(quantified: Path, two_visits: Path) -> None:
    man = pd.read_csv(two_visits / "manifest.csv")
    studies = pd.read_csv(quantified / "studies.csv")
    assert set(studies["study_key"]) == set(man["study_key"])
    for col in (
        "study_key",
        "patient_key",
        "bsi",
        "hotspots_total",
        "hotspots_metastatic",
        "bsi_ribs",
        "hotspots_ribs",
    ):
        assert col in studies.columns
    assert (studies["bsi"] >= 0).all() and (studies["bsi"] < 100).all()
    hot = pd.read_csv(quantified / "hotspots.csv")
    assert list(hot.columns) == list(HOTSPOT_COLUMNS)
    assert set(hot["study_key"]) <= set(man["study_key"])
    assert hot["p_metastatic"].between(0, 1).all()
    assert (hot["row"] >= 0).all() and (hot["row"] < man["rows"].max()).all()
    # one cut everywhere: the default rules' operating threshold decides "metastatic" in
    # hotspots.csv and in the per-study counts of studies.csv

    clear = (hot["p_metastatic"] - qp.active().rules.metastatic_p).abs() > 1e-4  # p is rounded in the CSV
    assert (hot["metastatic"][clear] == (hot["p_metastatic"][clear] >= qp.active().rules.metastatic_p)).all()
    per_study = hot.groupby("study_key")["metastatic"].sum().reindex(studies["study_key"], fill_value=0)
    assert list(per_study) == list(studies["hotspots_metastatic"])
    fu = pd.read_csv(quantified / "followup.csv")
    assert list(fu.columns) == list(FOLLOWUP_COLUMNS)
    assert len(fu) == man["patient_key"].nunique()  # one follow-up per patient
    assert set(fu["pcwg3"]) <= {"none", "unconfirmed", "confirmed"}
    assert (fu["days"] > 0).all()


def test_reports_carry_no_identity(quantified: Path, two_visits: Path) -> None:
    pages = sorted((quantified / "reports").glob("*.html"))
    assert len(pages) == len(pd.read_csv(quantified / "studies.csv"))
    terms = reports.phi_terms_from_dicom([two_visits / "dicom"])
    assert any(PLANTED_ID in t for t in terms) and any("Plantedname" in t for t in terms)
    hits = reports.check_reports(pages, terms)
    assert not hits, f"identity in reports: {hits}"
    for p in pages:
        text = p.read_text()
        assert str(two_visits) not in text and "case_0" not in text and ".dcm" not in text
        assert "Bone Scan Index" in text and "data:image/png;base64" in text


def test_followup_report_shows_baseline_and_followup(quantified: Path) -> None:
    fu = pd.read_csv(quantified / "followup.csv")
    page = (quantified / "reports" / f"{fu['study_key'].iloc[0]}.html").read_text()
    assert "Follow-up" in page and "PCWG3" in page and "baseline and follow-up" in page


def test_report_renders_in_headless_chromium(quantified: Path, tmp_path: Path) -> None:
    if reports.find_chromium() is None:
        pytest.skip("no chromium on PATH: cannot check that reports render (apt-get install chromium)")
    page = sorted((quantified / "reports").glob("*.html"))[0]
    shot = tmp_path / "report.png"
    dom = reports.chromium_render(page, screenshot=shot, window=(1100, 1400))
    assert "Bone Scan Index" in dom and "<img" in dom
    assert shot.exists() and shot.stat().st_size > 20_000  # a real picture, not a blank page


def test_a_broken_study_is_reported_and_the_rest_go_on(two_visits: Path, tmp_path: Path) -> None:
    man = pd.read_csv(two_visits / "manifest.csv", dtype=str, keep_default_na=False)
    man.loc[0, "ant_path"] = "dicom/missing.dcm"
    man.loc[0, "post_path"] = "dicom/missing.dcm"
    path = two_visits / "manifest_broken.csv"
    man.to_csv(path, index=False)
    res = quantify_cohort(path, tmp_path / "out", reports=False, progress=False)
    assert [k for k, _ in res.failed] == [man.loc[0, "study_key"]]
    assert len(res.studies) == len(man) - 1
    failed = pd.read_csv(tmp_path / "out" / "failed.csv")
    assert failed["study_key"].tolist() == [man.loc[0, "study_key"]]
    assert "missing.dcm" in failed["reason"].iloc[0] or "cannot read" in failed["reason"].iloc[0]


def test_cli_rejects_a_missing_manifest(tmp_path: Path, capsys) -> None:
    assert main(["quantify", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_validation_verdict_reads_every_figure_from_the_run() -> None:
    """The notebook's summary states the measured figures against the bars: change a
    figure and the sentence (and its verdict) changes with it."""
    figs = {
        "scans": 12,
        "patients": 4,
        "followup_pairs": 8,
        "operating_threshold": 0.5,
        "sensitivity_bright_at_op": 0.93,
        "fp_per_scan_at_op": 0.4,
        "best_sensitivity_bright_at_1fp": 0.95,
        "threshold_at_1fp": 0.3,
        "fp_per_scan_at_that_threshold": 0.9,
        "bsi": {"pearson_r": 0.961, "bias": 0.05, "loa_low": -0.4, "loa_high": 0.5},
        "new_count_exact": 0.875,
        "pcwg3_right": 0.9,
        "repeatability": {"n": 3, "sd": 0.021, "mean": 1.2},
    }
    text = validation_verdict(figs)
    lines = {k: next(ln for ln in text.splitlines() if what in ln) for k, (_, what) in VALIDATION_BARS.items()}
    assert "0.930" in lines["sensitivity_bright_at_op"] and "0.40 false positives" in lines["sensitivity_bright_at_op"]
    assert lines["sensitivity_bright_at_op"].endswith("meets)")
    assert "0.961" in lines["bsi_pearson_r"] and "-0.400 .. +0.500" in lines["bsi_pearson_r"]
    assert lines["pcwg3_right"].endswith("misses)") and lines["new_count_exact"].endswith("meets)")
    assert "0.021" in text and "12 scans of 4 patients" in text
    # too many false positives: the sensitivity no longer meets the bar
    worse = validation_verdict({**figs, "fp_per_scan_at_op": 1.4})
    assert next(ln for ln in worse.splitlines() if "operating point" in ln and "sensitivity" in ln).endswith("misses)")
    # a cohort of single visits: the follow-up figures are not measured, not missed
    single = validation_verdict(
        {**figs, "followup_pairs": 0, "new_count_exact": float("nan"), "pcwg3_right": float("nan")}
    )
    fu_lines = [ln for ln in single.splitlines() if "follow-up pairs:" in ln]
    assert len(fu_lines) == 2 and all(
        ln.endswith("(bar >= 0.85: not measured on this cohort)")
        or ln.endswith("(bar >= 0.95: not measured on this cohort)")
        for ln in fu_lines
    )


def test_summary_over_cohorts_counts_who_meets_each_bar() -> None:
    """Several cohorts against the bars: the mean and range are over the cohorts that
    measured a figure, a sensitivity with too many false positives misses, and a cohort
    without follow-up pairs is 'not measured', not a miss."""
    base = {
        "sensitivity_bright_at_op": 0.93,
        "fp_per_scan_at_op": 0.4,
        "best_sensitivity_bright_at_1fp": 0.95,
        "bsi": {"pearson_r": 0.96},
        "new_count_exact": 0.9,
        "pcwg3_right": 0.97,
    }
    runs = {
        "s1": base,
        "s2": {**base, "bsi": {"pearson_r": 0.90}, "fp_per_scan_at_op": 1.3, "new_count_exact": 0.8},
        "s3": {**base, "new_count_exact": float("nan"), "pcwg3_right": None},
    }
    summary = summarise_validations(runs)
    r = summary["bsi_pearson_r"]
    assert r["meets"] == 2 and r["misses"] == ["s2"]
    assert r["mean"] == pytest.approx((0.96 + 0.90 + 0.96) / 3) and (r["min"], r["max"]) == (0.90, 0.96)
    assert summary["sensitivity_bright_at_op"]["misses"] == ["s2"]  # 0.93, but at 1.3 FP per scan
    new = summary["new_count_exact"]
    assert new["not_measured"] == ["s3"] and new["misses"] == ["s2"] and new["meets"] == 1
    assert new["mean"] == pytest.approx(0.85)
    assert summary["pcwg3_right"]["not_measured"] == ["s3"] and summary["pcwg3_right"]["meets"] == 2
    text = validation_summary_text(runs)
    assert "BSI r misses: s2 (0.9000)" in text and "new exact misses: s2 (0.8000)" in text
    assert re.search(r"cohorts meet\s+2/3\s+3/3\s+2/3\s+1/2\s+2/2", text)


def test_cli_trains_a_hotspot_model_on_the_annotations_and_uses_it(two_visits: Path, tmp_path: Path) -> None:
    """``--train-hotspot-model`` trains on the manifest's LabelMe lesions, saves JSON (no
    pickle) with the out-of-fold threshold, and quantifies with it."""
    import json

    from scintilab.hotspots import HotspotModel

    model_path = tmp_path / "hs.json"
    out = tmp_path / "q"
    assert (
        main(
            [
                "quantify",
                str(two_visits / "manifest.csv"),
                "--out",
                str(out),
                "--train-hotspot-model",
                str(model_path),
                "--no-reports",
                "--quiet",
            ]
        )
        == 0
    )
    data = json.loads(model_path.read_text())
    assert data["type"] == "scintilab-hotspot-logreg" and data["info"]["patients"] == 3
    assert data["info"]["folds"] == 3 and 0 < data["info"]["raw_threshold"] < 1
    model = HotspotModel.load(model_path)
    assert "log_partner_ratio" in model.features and "bone_skull" in model.features
    hot = pd.read_csv(out / "hotspots.csv")
    assert len(hot) and hot["p_metastatic"].between(0, 1).all()
    assert (
        main(
            [
                "quantify",
                str(two_visits / "manifest.csv"),
                "--out",
                str(tmp_path / "q2"),
                "--hotspot-model",
                str(model_path),
                "--no-reports",
                "--quiet",
            ]
        )
        == 0
    )
    again = pd.read_csv(tmp_path / "q2" / "hotspots.csv")
    assert list(again["p_metastatic"]) == list(hot["p_metastatic"])


def test_cli_with_a_trained_classifier_adds_probabilities_and_grad_cam(tmp_path: Path) -> None:
    """``scintilab quantify --classifier RUN_DIR`` with a real (tiny, 1-epoch) training run."""
    root = tmp_path / "cohort"
    assert (
        main(
            [
                "synth",
                str(root),
                "--size",
                "tiny",
                "--seed",
                "3",
                "--matrix",
                "512x128",
                "--variety",
                "narrow",
                "--quiet",
            ]
        )
        == 0
    )
    manifest = root / "manifest.csv"
    assert (
        main(
            [
                "ingest",
                str(root / "dicom"),
                "--labels",
                str(root / "labels.csv"),
                "--annotations",
                str(root / "annotations"),
                "--out",
                str(manifest),
            ]
        )
        == 0
    )
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--preset",
                "quick",
                "--data",
                str(root),
                "--model",
                "inrac",
                "--out",
                str(run),
                "--set",
                "image_size=[128,32]",
                "--set",
                'model_options={"width":8}',
                "--set",
                "epochs=1",
                "--set",
                "n_boot=20",
            ]
        )
        == 0
    )
    small = pd.read_csv(manifest).head(2)  # two studies are enough to exercise the path
    small.to_csv(root / "manifest_two.csv", index=False)
    out = tmp_path / "q"
    assert (
        main(["quantify", str(root / "manifest_two.csv"), "--out", str(out), "--classifier", str(run), "--quiet"]) == 0
    )
    studies = pd.read_csv(out / "studies.csv")
    probs = studies[["p_NoMet", "p_ADMet", "p_nADMet"]]
    assert probs.notna().all().all() and ((probs.sum(axis=1) - 1).abs() < 1e-3).all()
    page = (out / "reports" / f"{studies['study_key'].iloc[0]}.html").read_text()
    assert "Classifier" in page and "Grad-CAM" in page and "NoMet" in page
