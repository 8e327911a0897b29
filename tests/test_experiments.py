"""The paper's comparison tables as data, experiment plans, and our tables beside the paper's.

No training here: results are built from hand-made records (notebooks 05/06 run the real
thing under tests/test_notebooks.py).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from scintilab import experiments as ex

PAPER = Path("/work/shared/seed/guo2022_lung_cancer_bone_metastasis_insights_imaging.txt")


def _paper_rows(text: str, title: str) -> list[list[float]]:
    """Rows of four 0.xxxx numbers under a table title of the paper's text."""
    block = text.split(title, 1)[1].split("Best value", 1)[0]
    return [
        [float(v) for v in re.findall(r"0\.\d{4}", line)]
        for line in block.splitlines()
        if len(re.findall(r"0\.\d{4}", line)) == 4
    ]


@pytest.mark.skipif(not PAPER.exists(), reason="paper text not available on this machine")
def test_paper_numbers_match_the_paper_text() -> None:
    text = PAPER.read_text(encoding="utf-8")
    for key, title in [
        ("table4", "Table 4 Scores"),
        ("table5", "Table 5 Scores"),
        ("table6", "Table 6 Effects"),
        ("table10", "Table 10 Scores"),
    ]:
        rows = _paper_rows(text, title)
        ours = [list(v) for v in ex.PAPER_TABLES[key].values()]
        assert ours == rows, key


def test_paper_table_layout() -> None:
    t6 = ex.paper_table("table6")
    assert list(t6.columns) == ["Residual", "Attention", "Accuracy", "Precision", "Recall", "F-1 score"]
    assert t6.loc["Classifier-inRAC", "Accuracy"] == 0.7782 and t6.loc["plain", "Residual"] == "×"
    assert ex.paper_table("table5").index.name == "Dataset"
    assert math.isnan(ex.paper_table("table7").loc["Classifier-18", "Accuracy"])  # only drawn in Fig. 9
    with pytest.raises(ValueError, match="unknown experiment"):
        ex.paper_table("table99")


def test_plan_expands_rows_seeds_and_shares_fingerprints() -> None:
    planned = ex.plan(
        ["table6", "table4", "table5"],
        preset="quick",
        seeds=[0, 1],
        **ex.overrides_from(epochs=2, image_size=[128, 32], width=16),
    )
    assert len(planned) == (4 + 2 + 3) * 2
    assert all(p.config.epochs == 2 and p.config.image_size == (128, 32) for p in planned)
    assert {p.config.model_options["width"] for p in planned} == {16}
    fps = {(p.table, p.row.label, p.seed): p.config.fingerprint() for p in planned}
    # Classifier-inRAC on D3 is the same run in Tables 4, 5 and 6.
    assert fps[("table6", "Classifier-inRAC", 0)] == fps[("table4", "Classifier-inRAC", 0)] == fps[("table5", "D3", 0)]
    assert fps[("table5", "D1", 0)] != fps[("table5", "D3", 0)]
    assert fps[("table6", "plain", 0)] != fps[("table6", "plain", 1)]
    assert {p.config.dataset for p in planned if p.table == "table5"} == {"D1", "D2", "D3"}
    only = ex.plan(["table6", "table10"], models=["inrac", "vgg11"])
    assert [(p.table, p.row.label) for p in only] == [
        ("table6", "Classifier-inRAC"),
        ("table10", "VGG 11"),
        ("table10", "Classifier-inRAC"),
    ]
    frame = ex.plan_frame(only)
    assert list(frame["model"]) == ["inrac", "vgg11", "inrac"] and "status" not in frame


def _result(values: dict[tuple[str, str, int], float]) -> ex.ExperimentResult:
    records = []
    for (table, row, seed), acc in values.items():
        for metric, shift in (("accuracy", 0.0), ("precision", 0.01), ("recall", 0.02), ("f1", -0.01)):
            v = acc + shift
            records.append(
                {
                    "table": table,
                    "row": row,
                    "seed": seed,
                    "metric": metric,
                    "value": v,
                    "low": v - 0.1,
                    "high": v + 0.1,
                    "run": f"r-{row}-{seed}",
                    "reused": False,
                    "seconds": 1.0,
                }
            )
    planned = [
        ex.PlannedRun(t, next(r for r in ex.experiment(t).rows if r.label == row), s, None) for (t, row, s) in values
    ]
    return ex.ExperimentResult(planned, records, [])


def test_comparison_table_beside_the_paper_with_cis_and_seed_means() -> None:
    result = _result(
        {
            ("table6", "plain", 0): 0.50,
            ("table6", "plain", 1): 0.60,
            ("table6", "residual only", 0): 0.70,
            ("table6", "Classifier-inRAC", 0): 0.80,
        }
    )
    table = ex.comparison_table(result, "table6")
    assert list(table.index) == ["plain", "residual only", "Classifier-inRAC"]  # paper order; missing row left out
    assert table.loc["plain", "Accuracy"] == "0.5500 (0.450–0.650)"  # mean over two seeds, mean CI bounds
    assert table.loc["plain", "Accuracy (paper)"] == "0.6937"
    assert table.loc["plain", "seeds"] == 2
    assert table.loc["plain", "seed SD (Accuracy)"] == f"{pd.Series([0.5, 0.6]).std():.4f}"
    assert table.loc["Classifier-inRAC", "Residual"] == "✓"
    agreement = ex.ranking_agreement(result, "table6")
    assert agreement["ours_best"] == agreement["paper_best"] == "Classifier-inRAC"
    assert agreement["spearman"] == pytest.approx(1.0)
    reversed_result = _result(
        {("table6", "plain", 0): 0.9, ("table6", "residual only", 0): 0.7, ("table6", "Classifier-inRAC", 0): 0.5}
    )
    assert ex.ranking_agreement(reversed_result, "table6")["spearman"] == pytest.approx(-1.0)
    assert "no run" in ex.comparison_table(result, "table4").iloc[0, 0]
    assert ex.headline(result)["table6.plain.accuracy"] == pytest.approx(0.55)
    assert "best accuracy here is Classifier-inRAC" in ex.describe(result)


def test_comparison_figure_has_our_bars_and_the_papers_markers() -> None:
    result = _result({("table10", "VGG 11", 0): 0.6, ("table10", "Classifier-inRAC", 0): 0.7})
    fig = ex.comparison_figure(result, "table10")
    bars = [t for t in fig.data if t.type == "bar"]
    marks = [t for t in fig.data if t.type == "scatter"]
    assert len(bars) == len(marks) == 4
    assert list(bars[0].x) == ["VGG 11", "Classifier-inRAC"]
    assert list(bars[0].y) == pytest.approx([0.6, 0.7])
    assert list(marks[0].y) == pytest.approx([0.7324, 0.7782])
    assert list(bars[0].error_y.array) == pytest.approx([0.1, 0.1])
    empty = ex.comparison_figure(result, "table4")
    assert "not run" in empty.layout.annotations[0].text
