"""The per-family benchmark scripts: their figures against hand computations, and the
protocol check before any work (issue 23)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module(name)


def test_classification_figures_match_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    cc = _script(monkeypatch, "classify_cohort")
    rng = np.random.default_rng(0)
    y = np.array([0] * 12 + [1] * 5 + [2] * 3)
    proba = rng.dirichlet(np.ones(3), size=len(y))
    proba[np.arange(len(y)), y] += 0.4  # better than chance, not perfect
    proba /= proba.sum(axis=1, keepdims=True)
    got = cc.family_metrics(y, proba)
    pred = proba.argmax(axis=1)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert got["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert got["macro_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    met = (y > 0).astype(int)
    p_met = proba[:, 1] + proba[:, 2]
    assert got["met_accuracy"] == pytest.approx(accuracy_score(met, (p_met > 0.5).astype(int)))
    assert got["met_auc"] == pytest.approx(roc_auc_score(met, p_met))
    # the trivial answer: always NoMet (12 of 20)
    assert got["always_nomet_accuracy"] == pytest.approx(0.6) and got["always_nomet_met_accuracy"] == pytest.approx(0.6)
    assert cc.family_metrics(y[:5], proba[:5]) == {"studies": 5}  # too few: no figure


def test_leave_one_out_reads_a_family_row(monkeypatch: pytest.MonkeyPatch) -> None:
    lofo = _script(monkeypatch, "leave_one_family_out")
    figures = {
        "scans": 9,
        "lesions": 20,
        "sensitivity_all_at_op": 0.8,
        "fp_per_scan_at_op": 2.0,
        "bsi": {"pearson_r": 0.7},
        "new_count_exact_changed": 0.5,
        "pcwg3_right": 0.9,
        "families": {"obese": {"scans": 3, "lesions": 4, "sensitivity_all_at_op": None, "bsi": {}}},
    }
    assert lofo.family_figures(figures, "all")["bsi_r"] == 0.7
    obese = lofo.family_figures(figures, "obese")
    assert obese["scans"] == 3 and obese["sensitivity_all_at_op"] is None and obese["bsi_r"] is None
    assert lofo.family_figures(figures, "thin")["scans"] is None  # a family the cohort lacks


@pytest.mark.parametrize(
    ("script", "args", "words"),
    [
        ("classify_cohort", ["--run", "r", "--seed", "1"], "seed 1"),
        ("leave_one_family_out", ["--train-seed", "5001"], "seed 5001"),
        ("leave_one_family_out", ["--seed", "6001"], "seed 6001"),
    ],
)
def test_a_seed_against_the_protocol_stops_before_any_work(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    script: str,
    args: list,
    words: str,
) -> None:
    mod = _script(monkeypatch, script)
    folders = ["--cohort", str(tmp_path / "c")] + (
        ["--train-cohort", str(tmp_path / "t")] if "family" in script else []
    )
    if script == "classify_cohort":
        folders += ["--variety", "narrow"]
    with pytest.raises(SystemExit) as exc:
        mod.main(folders + args)
    assert exc.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "t").exists()
