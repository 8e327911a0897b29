"""The quantification's parameters as records: provenance, overrides, the active context, the output record."""

from __future__ import annotations

import dataclasses
import json
import threading

import pandas as pd
import pytest

from scintilab import quant_params as qp
from scintilab.cli import main
from scintilab.hotspots import detect_hotspots, uptake_probability
from scintilab.ingest import load_cohort
from scintilab.quantify import params_table, quantify_cohort


@pytest.fixture(scope="module")
def synthetic_cohort(tmp_path_factory) -> object:
    """Six synthetic patients at 512x128, ingested."""
    root = tmp_path_factory.mktemp("qp")
    assert (
        main(
            [
                "synth",
                str(root),
                "--patients",
                "6",
                "--size",
                "tiny",
                "--seed",
                "5",
                "--matrix",
                "512x128",
                "--variety",
                "narrow",
                "--quiet",
            ]
        )
        == 0
    )
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
def tiny_study(synthetic_cohort):
    return load_cohort(synthetic_cohort / "manifest.csv")[0]


def test_every_parameter_says_where_it_comes_from() -> None:
    rows = qp.provenance()
    assert len(rows) == 43 and len({r["name"] for r in rows}) == 43
    for r in rows:
        assert r["source"] in qp.SOURCES and r["what"], r
        assert bool(r["fitted_on"]) == (r["source"] == "fitted"), r
    by_name = {r["name"]: r for r in rows}
    assert by_name["followup.pcwg3_confirm_days"]["source"] == "literature"
    assert by_name["followup.pcwg3_confirm_days"]["default"] == 42
    assert "seed 1" in by_name["rules.facial_min_ap"]["fitted_on"]
    with pytest.raises(ValueError, match="names the cohorts"):
        qp.knob(1.0, "fitted", "a fitted value without its cohorts")


def test_records_are_frozen_and_overrides_are_typed() -> None:
    base = qp.QuantParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.rules.facial_min_ap = 2.0  # type: ignore[misc]
    p = base.replace({"rules.facial_min_ap": "1.8", "detection.split_peaks": "off", "bsi.healthy_margin_px": "3"})
    assert p.rules.facial_min_ap == 1.8 and p.detection.split_peaks is False and p.bsi.healthy_margin_px == 3
    assert base.rules.facial_min_ap == 1.6  # the original is untouched
    assert p.changed() == {"detection.split_peaks": False, "rules.facial_min_ap": 1.8, "bsi.healthy_margin_px": 3}
    for bad, match in [
        ({"rules.nope": 1}, "rules has"),
        ({"nope.x": 1}, "GROUP one of"),
        ({"bsi.healthy_margin_px": "2.5"}, "expected a int"),
        ({"detection.split_peaks": "maybe"}, "expected a bool"),
        ({"rules.facial_min_ap": "high"}, "expected a float"),
    ]:
        with pytest.raises(ValueError, match=match):
            base.replace(bad)
    assert qp.parse_sets("rules.facial_min_ap=1.8; bsi.extent_level=0.5") == {
        "rules.facial_min_ap": "1.8",
        "bsi.extent_level": "0.5",
    }
    with pytest.raises(ValueError, match="GROUP.NAME=VALUE"):
        qp.parse_sets(["rules.facial_min_ap"])
    with pytest.raises(ValueError, match="unknown quantification preset"):
        qp.params_from_preset("fancy")


def test_using_sets_the_values_the_code_reads_and_restores_them() -> None:
    before = uptake_probability(3.0)
    with qp.using(qp.QuantParams().replace({"rules.uptake_midpoint": 3.0})) as p:
        assert qp.active() is p
        inside = uptake_probability(3.0)
    assert inside < before  # a higher midpoint makes the same uptake less suspicious
    assert uptake_probability(3.0) == before and qp.active() == qp.QuantParams()
    seen: list[float] = []
    with qp.using(qp.QuantParams().replace({"rules.uptake_midpoint": 3.0})):
        t = threading.Thread(target=lambda: seen.append(qp.active().rules.uptake_midpoint))
        t.start()
        t.join()
    assert seen == [2.6]  # a context, not a global: another thread keeps the defaults


def test_the_detection_threshold_comes_from_the_active_record(tiny_study) -> None:
    default = detect_hotspots(tiny_study)
    with qp.using(qp.QuantParams().replace({"detection.threshold": 4.0})):
        strict = detect_hotspots(tiny_study)
    assert len(strict.hotspots) < len(default.hotspots)
    assert len(detect_hotspots(tiny_study, threshold=4.0).hotspots) == len(strict.hotspots)


def test_quantify_writes_the_parameters_it_used_and_the_cli_sets_them(synthetic_cohort, tmp_path, capsys) -> None:
    manifest = synthetic_cohort / "manifest.csv"
    out = tmp_path / "q"
    code = main(
        [
            "quantify",
            str(manifest),
            "--out",
            str(out),
            "--no-reports",
            "--quiet",
            "--set",
            "detection.threshold=4.0",
            "--set",
            "rules.facial_min_ap=1.8",
        ]
    )
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / qp.PARAMS_FILE).read_text())
    assert doc["changed"] == {"detection.threshold": 4.0, "rules.facial_min_ap": 1.8}
    assert qp.read_params(out) == qp.QuantParams().replace(doc["changed"])
    strict = pd.read_csv(out / "hotspots.csv")
    default = quantify_cohort(manifest, tmp_path / "d", reports=False, progress=False)
    assert json.loads((tmp_path / "d" / qp.PARAMS_FILE).read_text())["changed"] == {}
    assert len(strict) < len(default.hotspots)  # the parameter reached the detection

    code = main(["quantify", str(manifest), "--out", str(tmp_path / "x"), "--set", "rules.facial_min_ap=tall"])
    err = capsys.readouterr().err
    assert code == 2 and "rules.facial_min_ap='tall': expected a float" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()

    assert main(["quantify", "--list-params"]) == 0
    listing = capsys.readouterr().out
    assert "followup.pcwg3_confirm_days" in listing and "literature" in listing


def test_params_table_shows_values_beside_defaults() -> None:
    table = params_table(qp.QuantParams().replace({"bsi.extent_level": 0.5}))
    row = table.set_index("name").loc["bsi.extent_level"]
    assert row["value"] == 0.5 and row["default"] == 0.4 and row["source"] == "fitted"
    assert list(table.columns) == ["name", "value", "default", "source", "fitted_on", "what"]


def test_read_params_names_a_bad_record(tmp_path) -> None:
    from scintilab.errors import InputError

    with pytest.raises(InputError, match="no quant_params.json"):
        qp.read_params(tmp_path)
    (tmp_path / qp.PARAMS_FILE).write_text('{"params": {"rules": {"nope": 1}}}')
    with pytest.raises(InputError, match="not a quantification parameter record"):
        qp.read_params(tmp_path)


def test_the_no_anatomy_rules_preset_switches_those_rules_off(synthetic_cohort) -> None:
    anatomy = {"symmetric_anatomy", "facial_bones", "anterior_thigh", "pelvic_anatomy", "lumbar_facet"}
    manifest = synthetic_cohort / "manifest.csv"
    default = quantify_cohort(manifest, None, progress=False)
    bare = quantify_cohort(manifest, None, progress=False, params=qp.params_from_preset("no-anatomy-rules"))
    assert anatomy & set(default.hotspots["kind"])  # the rules fire on this cohort ...
    assert not anatomy & set(bare.hotspots["kind"])  # ... and the preset stops them
    assert len(bare.hotspots) == len(default.hotspots)  # the same hot spots, scored without them
