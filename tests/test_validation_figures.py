"""The validation figures (scintilab.synth.validation_figures) against hand computations on
hand-made truth / quantification tables (no generator), and once end to end on a tiny cohort."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from scintilab.synth.validate import validate_against_truth, validation_summary_text, validation_verdict
from scintilab.synth.validation_figures import (
    ALL,
    BRIGHT_DEFINITION,
    MIN_N,
    bar_met,
    family_table,
    figures_lines,
    froc_points,
    validation_figures,
)

# six studies of metastatic patients (one at true BSI 0: still metastatic, by its label)
MET_TRUE = [0.5, 1.0, 2.0, 3.0, 0.0, 4.0]
MET_MEASURED = [0.6, 0.9, 2.5, 2.8, 0.1, 4.4]
NOMET_MEASURED = [0.0, 0.0, 0.2, 0.0, 0.05]


def _tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    studies = pd.DataFrame(
        {
            "study_key": [f"s{i}" for i in range(1, 12)],
            "label": ["ADMet", "nADMet", "ADMet", "ADMet", "nADMet", "ADMet"] + ["NoMet"] * 5,
            "bsi": MET_MEASURED + NOMET_MEASURED,
            "true_bsi": MET_TRUE + [0.0] * 5,
        }
    )
    lesions = pd.DataFrame(
        {
            "study_key": ["s1", "s1", "s2", "s3", "s3", "s4", "s5", "s6", "s6"],
            "contrast": [3.0, 2.0, 5.0, 1.5, float("nan"), 2.5, 1.2, 4.0, 10.0],
            "called": [True, False, True, True, False, True, False, True, False],
            # the last is outside the picture (no pixel in its label map): not counted
            "visible": [True] * 8 + [False],
        }
    )
    hotspots = pd.DataFrame(
        {
            "study_key": ["s1", "s1", "s2", "s7", "s9", "s9", "s10"],
            "called": [True, True, True, True, False, True, True],
            "lesion": [True, False, True, False, False, False, False],
        }
    )
    unchanged_new = [0, 0, 1, 0, 0]
    changed_true, changed_new = [1, 2, 1, 3, 1], [1, 2, 0, 2, 1]
    true_pcwg3 = ["none"] * 5 + ["unconfirmed", "confirmed", "none", "unconfirmed", "none"]
    pcwg3 = ["none", "none", "unconfirmed", "none", "none", "unconfirmed", "confirmed", "none", "none", "none"]
    pairs = pd.DataFrame(
        {
            "study_key": [f"f{i}" for i in range(1, 11)],
            "baseline_study_key": [f"b{i}" for i in range(1, 11)],
            "new": unchanged_new + changed_new,
            "true_new": [0] * 5 + changed_true,
            "pcwg3": pcwg3,
            "true_pcwg3": true_pcwg3,
        }
    )
    return lesions, hotspots, studies, pairs


def test_each_figure_and_baseline_matches_a_hand_computation() -> None:
    figs = validation_figures(*_tables())
    assert list(figs) == [ALL]  # no families in the truth: everything is in "all" only
    f = figs[ALL]
    # detection: 8 visible lesions, 5 called; bright (contrast >= 2; NaN is not) 5, 4 called
    assert (f["lesions"], f["lesions_bright"], f["lesions_not_visible"], f["scans"]) == (8, 5, 1, 11)
    assert f["sensitivity_all_at_op"] == pytest.approx(5 / 8)
    assert f["sensitivity_bright_at_op"] == pytest.approx(4 / 5)
    assert f["fp_per_scan_at_op"] == pytest.approx(4 / 11)  # called and on no lesion: s1, s7, s9, s10
    # BSI agreement on the six metastatic studies only
    m, t = np.array(MET_MEASURED), np.array(MET_TRUE)
    d = m - t
    ba = f["bsi"]
    assert ba["n"] == 6
    assert ba["pearson_r"] == pytest.approx(np.corrcoef(m, t)[0, 1])
    assert ba["spearman_rho"] == pytest.approx(stats.spearmanr(m, t).statistic)
    assert ba["bias"] == pytest.approx(d.mean())
    assert ba["loa_low"] == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))
    assert ba["loa_high"] == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))
    # every study together (the old figure) differs: the NoMet zeros lift r
    allm, allt = np.r_[m, NOMET_MEASURED], np.r_[t, np.zeros(5)]
    assert f["bsi_all_studies"]["n"] == 11
    assert f["bsi_all_studies"]["pearson_r"] == pytest.approx(np.corrcoef(allm, allt)[0, 1])
    # NoMet apart
    assert f["bsi_nomet"] == pytest.approx({"n": 5, "mean": 0.05, "max": 0.2, "share_zero": 0.6})
    # follow-up: 10 pairs, 5 with true new lesions
    assert (f["followup_pairs"], f["followup_pairs_changed"]) == (10, 5)
    assert f["new_count_exact"] == pytest.approx(7 / 10)
    assert f["new_count_exact_always_0"] == pytest.approx(5 / 10)
    assert f["new_count_exact_changed"] == pytest.approx(3 / 5)
    assert f["new_count_exact_changed_always_0"] == 0.0
    assert f["pcwg3_right"] == pytest.approx(8 / 10)
    assert f["pcwg3_right_always_none"] == pytest.approx(7 / 10)


def test_families_take_their_own_studies_and_small_ones_report_only_n() -> None:
    lesions, hotspots, studies, pairs = _tables()
    families = {
        **{f"s{i}": ["cut_fov"] for i in range(1, 7)},
        "s2": ["cut_fov", "obese"],
        "s7": ["obese"],
        "b1": ["obese"],  # a pair is in the families of its baseline too
        "f2": ["obese"],
    }
    figs = validation_figures(lesions, hotspots, studies, pairs, families)
    assert list(figs) == [ALL, "cut_fov", "obese"]
    cut = figs["cut_fov"]
    assert cut["bsi"] == pytest.approx(figs[ALL]["bsi"])  # the same six metastatic studies
    assert cut["bsi_nomet"] == {"n": 0, "mean": None, "max": None, "share_zero": None}
    assert cut["scans"] == 6 and cut["fp_per_scan_at_op"] == pytest.approx(1 / 6)
    assert cut["followup_pairs"] == 0 and cut["new_count_exact"] is None and cut["pcwg3_right"] is None
    obese = figs["obese"]
    assert (obese["scans"], obese["lesions"], obese["followup_pairs"]) == (2, 1, 2)
    assert obese["bsi"]["n"] == 1 and obese["bsi"]["pearson_r"] is None
    assert obese["sensitivity_all_at_op"] is None and obese["fp_per_scan_at_op"] is None
    assert obese["new_count_exact"] is None and obese["new_count_exact_always_0"] is None
    table = family_table(figs).set_index("family")
    assert table.loc["obese", "scans"] == 2 and pd.isna(table.loc["obese", "bsi_r"])
    assert table.loc[ALL, "new_exact_changed"] == pytest.approx(0.6)
    text = "\n".join(figures_lines(obese))
    assert "n/a (n=1)" in text and "Pearson r n/a" in text
    assert MIN_N == 5


def test_verdict_and_summary_print_the_new_figures() -> None:
    figs = validation_figures(*_tables())[ALL]
    run = {**figs, "families": {ALL: figs}, "bright_definition": BRIGHT_DEFINITION, "operating_threshold": 0.35}
    verdict = validation_verdict(run)
    assert "always 0 new" in verdict and "0.500" in verdict  # the baseline beside the count
    assert "always no progression" in verdict and "0.700" in verdict
    assert "metastatic studies" in verdict and "NoMet" in verdict
    summary = validation_summary_text({"c1": run, "c2": run})
    assert "sens all" in summary and "new chg" in summary
    assert bar_met(run, "bsi_pearson_r") is True and bar_met(run, "new_count_exact") is False
    # a sensitivity whose false-positive rate was not measured (too few scans) meets nothing
    assert bar_met({**run, "fp_per_scan_at_op": None}, "sensitivity_bright_at_op") is None
    assert bar_met(run, "sensitivity_bright_at_op", family="obese") is None  # no such family


def test_end_to_end_on_a_tiny_cohort(tmp_path: Path) -> None:
    """Through validate_against_truth (4 patients x 3 visits at 512x128): the top-level
    figures are family "all", and a truth that names families gets them reported."""
    from scintilab.synth.cohort import write_cohort

    root = tmp_path / "c"
    write_cohort(root, n_patients=4, seed=2, visits=3, matrix=(512, 128), progress=False)
    # families as the generator's --variety clinic writes them: two studies "obese"
    truth = sorted((root / "truth").glob("*.json"))
    for p in truth[:2]:
        rec = json.loads(p.read_text())
        p.write_text(json.dumps({**rec, "families": ["obese"]}))
    res = validate_against_truth(root, repeats=0, progress=False)
    fams = res["families"]
    assert list(fams) == [ALL, "obese"] and fams["obese"]["scans"] == 2
    assert res["bright_definition"] == BRIGHT_DEFINITION and "NoMet" in res["metastatic_definition"]
    for key in ("sensitivity_all_at_op", "bsi", "new_count_exact", "pcwg3_right_always_none"):
        assert res[key] == fams[ALL][key]
    pairs = res["bsi_pairs"]
    assert res["bsi"]["n"] == int((pairs["label"] != "NoMet").sum()) >= MIN_N
    assert math.isfinite(res["bsi"]["pearson_r"]) and res["bsi"]["spearman_rho"] is not None
    assert res["bsi_nomet"]["n"] == int((pairs["label"] == "NoMet").sum())
    fu = res["followup_table"]
    assert res["followup_pairs"] == len(fu) == 8 and res["followup_pairs_changed"] == int((fu["true_new"] > 0).sum())
    assert res["new_count_exact_always_0"] == pytest.approx(float((fu["true_new"] == 0).mean()))
    assert res["pcwg3_right_always_none"] == pytest.approx(float((fu["true_pcwg3"] == "none").mean()))
    assert fams["obese"]["bsi"]["pearson_r"] is None  # two studies: n only
    assert "always 0" in res["text"] and "obese" in res["text"]
    json.dumps({k: v for k, v in res.items() if isinstance(v, (dict, int, float, str, type(None)))})


def test_froc_points_read_each_false_positive_level_off_the_sweep() -> None:
    """Sensitivity at 0.5 / 1 / 2 false positives per scan, worked out by hand."""
    scans = 10
    lesions = pd.DataFrame(
        {
            "study_key": ["s"] * 6,
            "contrast": [3.0] * 6,
            "called": [True] * 6,
            "visible": [True, True, True, True, True, False],
            "max_p": [0.95, 0.85, 0.55, 0.35, 0.0, 0.99],  # the invisible one never counts
        }
    )
    # false-positive scores: 5 at 0.9 (0.5 per scan), 5 more at 0.6 (1.0), 10 more at 0.3 (2.0)
    fp_p = [0.9] * 5 + [0.6] * 5 + [0.3] * 10
    hotspots = pd.DataFrame(
        {"study_key": ["s"] * 22, "called": [True] * 22, "p": [*fp_p, 0.95, 0.85], "lesion": [False] * 20 + [True] * 2}
    )
    got = froc_points(lesions, hotspots, scans)
    # <= 0.5 FP/scan: thresholds above 0.6 -> lesions at 0.95 and 0.85 (2 of 5)
    # <= 1.0: thresholds above 0.3 -> also 0.55 and 0.35 (4 of 5); <= 2.0: every threshold -> 4 of 5
    assert got == {"0.5": pytest.approx(0.4), "1": pytest.approx(0.8), "2": pytest.approx(0.8)}
    assert froc_points(lesions.drop(columns="max_p"), hotspots, scans) == {}
    assert froc_points(lesions, hotspots, 3) == {}  # too few scans behind it
    many = pd.concat([hotspots] * 30)  # 30 x 20 false positives over 10 scans: never down to 0.5
    assert froc_points(lesions, many.assign(p=0.99), scans)["0.5"] is None
