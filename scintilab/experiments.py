"""The paper's comparison experiments as data, and the machinery to rerun them.

Guo et al. 2022 compare Classifier-inRAC with variants in five tables: Table 4 (inRAC vs
outRAC), Table 5 (datasets D1/D2/D3), Table 6 (residual x attention ablation), Table 7 /
Fig. 9 (depth: Classifier-18, -34) and Tables 9-10 (Inception-v1, VGG11). Each table here
is an :class:`Experiment`: its rows (a label and the training-config changes that make
that row), and the paper's own numbers (:data:`PAPER_TABLES`).

:func:`run_experiment` builds one config per row and seed from a preset, trains it or
reuses an earlier run with the same fingerprint (``scintilab.training.find_or_train``), and
collects the test metrics with their patient-bootstrap confidence intervals. Rows shared
between tables (inRAC on D3 appears in four) are trained once. :func:`comparison_table`
lays the result out like the paper, with the paper's values beside ours, and
:func:`comparison_figure` plots it.

Notebooks 05_ablations and 06_depth_and_baselines are thin wrappers around this module.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab.presets import config_from_preset
from scintilab.training import find_or_train

#: Metrics of the paper's comparison tables, in their column order.
TABLE_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1")
#: Column headers as the paper prints them.
METRIC_NAMES: dict[str, str] = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F-1 score",
    "auc": "AUC",
    "specificity": "Specificity",
}

_NAN = float("nan")


@dataclass(frozen=True)
class Row:
    """One row of a comparison table.

    Attributes:
        label: the row name as the paper prints it.
        changes: TrainConfig fields that make this row (``model``, ``dataset``, ...).
        extra: further columns shown before the metrics (Table 6's Residual/Attention).
    """

    label: str
    changes: Mapping[str, Any]
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return str(self.changes.get("model", "inrac"))


@dataclass(frozen=True)
class Experiment:
    """A table of the paper: what it compares and how to rebuild each row."""

    key: str
    title: str
    rows: tuple[Row, ...]
    note: str = ""


_INRAC = {"model": "inrac", "dataset": "D3"}
EXPERIMENTS: dict[str, Experiment] = {
    "table4": Experiment(
        "table4",
        "Table 4: Classifier-inRAC vs Classifier-outRAC (D3, test split)",
        (Row("Classifier-inRAC", _INRAC), Row("Classifier-outRAC", {"model": "outrac", "dataset": "D3"})),
    ),
    "table5": Experiment(
        "table5",
        "Table 5: Classifier-inRAC on datasets D1, D2 and D3 (test split)",
        (
            Row("D1", {"model": "inrac", "dataset": "D1"}),
            Row("D2", {"model": "inrac", "dataset": "D2"}),
            Row("D3", _INRAC),
        ),
    ),
    "table6": Experiment(
        "table6",
        "Table 6: effect of the residual connection and the attention module (D3)",
        (
            Row("plain", {"model": "plain", "dataset": "D3"}, {"Residual": "×", "Attention": "×"}),
            Row("attention only", {"model": "attention", "dataset": "D3"}, {"Residual": "×", "Attention": "✓"}),
            Row("residual only", {"model": "residual", "dataset": "D3"}, {"Residual": "✓", "Attention": "×"}),
            Row("Classifier-inRAC", _INRAC, {"Residual": "✓", "Attention": "✓"}),
        ),
    ),
    "table7": Experiment(
        "table7",
        "Table 7 / Fig. 9: network depth (D3)",
        (
            Row("Classifier-18", {"model": "classifier18", "dataset": "D3"}),
            Row("Classifier-34", {"model": "classifier34", "dataset": "D3"}),
            Row("Classifier-inRAC", _INRAC),
        ),
        note="The paper gives Classifier-18 and -34 only as bars in Fig. 9, not as numbers.",
    ),
    "table10": Experiment(
        "table10",
        "Tables 9-10: classical CNNs vs Classifier-inRAC (D3)",
        (
            Row("Inception v1", {"model": "inception_v1", "dataset": "D3"}),
            Row("VGG 11", {"model": "vgg11", "dataset": "D3"}),
            Row("Classifier-inRAC", _INRAC),
        ),
    ),
}

_INRAC_PAPER = (0.7782, 0.7799, 0.7823, 0.7764)
#: The paper's numbers (accuracy, precision, recall, F-1; macro, test split of D3 unless
#: the row says otherwise). NaN where the paper shows a value only graphically.
PAPER_TABLES: dict[str, dict[str, tuple[float, ...]]] = {
    "table4": {"Classifier-inRAC": _INRAC_PAPER, "Classifier-outRAC": (0.6725, 0.7233, 0.6831, 0.6723)},
    "table5": {"D1": (0.6150, 0.6324, 0.6227, 0.6058), "D2": (0.6968, 0.7001, 0.7024, 0.6930), "D3": _INRAC_PAPER},
    "table6": {
        "plain": (0.6937, 0.7032, 0.7000, 0.6940),
        "attention only": (0.7042, 0.7416, 0.7047, 0.7031),
        "residual only": (0.7500, 0.7614, 0.7532, 0.7497),
        "Classifier-inRAC": _INRAC_PAPER,
    },
    "table7": {"Classifier-18": (_NAN,) * 4, "Classifier-34": (_NAN,) * 4, "Classifier-inRAC": _INRAC_PAPER},
    "table10": {
        "Inception v1": (0.5387, 0.6003, 0.5490, 0.5415),
        "VGG 11": (0.7324, 0.7309, 0.7333, 0.7309),
        "Classifier-inRAC": _INRAC_PAPER,
    },
}
#: Table 8 (two-class, metastatic vs not), for notebooks that compare with it.
PAPER_TABLE8: dict[str, float] = {
    "accuracy": 0.8310,
    "precision": 0.8696,
    "recall": 0.8696,
    "f1": 0.8696,
    "auc": 0.8147,
}
#: The paper's AUC of Classifier-inRAC on D3 (Fig. 6).
PAPER_AUC_INRAC = 0.8364


def experiment(key: str) -> Experiment:
    """The :class:`Experiment` named ``key`` (``table4``, ``table5``, ``table6``, ``table7``, ``table10``).

    Raises:
        ValueError: unknown key.
    """
    if key not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {key!r}; choose one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[key]


def paper_table(key: str) -> pd.DataFrame:
    """The paper's own table ``key`` in its layout (extra columns, then the four metrics)."""
    exp = experiment(key)
    rows = []
    for row in exp.rows:
        values = PAPER_TABLES[key][row.label]
        rows.append({"": row.label, **row.extra, **{METRIC_NAMES[m]: v for m, v in zip(TABLE_METRICS, values)}})
    table = pd.DataFrame(rows).set_index("")
    table.index.name = "Classifier" if key != "table5" else "Dataset"
    return table


# --------------------------------------------------------------------------- configs and runs


@dataclass
class PlannedRun:
    """One training run an experiment needs."""

    table: str
    row: Row
    seed: int
    config: Any  # scintilab.presets.TrainConfig


def select_rows(exp: Experiment, models: Sequence[str] | None) -> list[Row]:
    """The rows of ``exp`` whose model name or label is in ``models`` (all when empty)."""
    if not models:
        return list(exp.rows)
    wanted = {m.lower() for m in models}
    return [r for r in exp.rows if r.model.lower() in wanted or r.label.lower() in wanted]


def plan(
    tables: Sequence[str],
    *,
    preset: str = "quick",
    data: str | Path = "",
    seeds: Sequence[int] = (0,),
    models: Sequence[str] | None = None,
    **overrides: Any,
) -> list[PlannedRun]:
    """Configs for every (table, row, seed): the preset, the row's changes, the overrides.

    Args:
        tables: experiment keys, e.g. ``["table6", "table4", "table5"]``.
        preset: training preset (``quick`` or ``paper``).
        data: the cohort manifest.
        seeds: one run per seed and row.
        models: keep only rows with these model names or labels (None/empty: all).
        **overrides: TrainConfig fields for every run (``epochs=2``, ``image_size=(128, 32)``,
            ``model_options={"width": 8}``); a row's own changes (model, dataset) win.

    Returns:
        The planned runs; identical configs in several tables share one fingerprint.
    """
    planned = []
    for key in tables:
        exp = experiment(key)
        for row in select_rows(exp, models):
            for seed in seeds:
                config = config_from_preset(preset, data=str(data), seed=int(seed), **{**overrides, **row.changes})
                planned.append(PlannedRun(key, row, int(seed), config))
    return planned


@dataclass
class ExperimentResult:
    """Runs an experiment produced: metrics per (table, row, seed), and what failed."""

    planned: list[PlannedRun]
    records: list[dict[str, Any]]
    failures: list[tuple[str, str]]

    def frame(self) -> pd.DataFrame:
        """Long table: table, row, seed, metric, value, low, high, run, reused, seconds."""
        return pd.DataFrame(
            self.records, columns=["table", "row", "seed", "metric", "value", "low", "high", "run", "reused", "seconds"]
        )


def _metric_values(metrics: Mapping[str, Any], name: str) -> tuple[float, float, float]:
    """(value, low, high) of a macro metric from a run's metrics.json (NaN when absent)."""
    m = metrics.get("metrics", metrics)
    value = m.get(name)
    ci = (metrics.get("ci") or {}).get(name) or [None, None]
    as_f = lambda v: _NAN if v is None else float(v)  # noqa: E731 - tiny local converter
    return as_f(value), as_f(ci[0]), as_f(ci[1])


def run_experiment(
    planned: Sequence[PlannedRun],
    runs_root: str | Path,
    *,
    metrics: Sequence[str] = (*TABLE_METRICS, "auc"),
    verbose: int = 0,
    log: Callable[[str], None] | None = print,
) -> ExperimentResult:
    """Train (or reuse by fingerprint) every planned run and collect its test metrics.

    A run that fails is reported in ``failures`` and the others go on. A config trained
    for one table is reused by the others within the same call and across calls.

    Args:
        planned: from :func:`plan`.
        runs_root: folder of run directories (shared with notebook 03 and batch runs).
        metrics: macro metrics to collect (with their CIs).
        verbose: Keras verbosity for runs that train.
        log: one line per run (None: silent).

    Returns:
        An :class:`ExperimentResult`.
    """
    runs_root = Path(runs_root)
    runs_root.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _m: None)
    records: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    done: dict[str, tuple[Any, float]] = {}
    for i, item in enumerate(planned, 1):
        fp = item.config.fingerprint()
        what = f"{item.table} / {item.row.label} / seed {item.seed}"
        try:
            if fp in done:
                result, seconds = done[fp]
                how = "shared with an earlier row"
            else:
                t0 = time.perf_counter()
                result = find_or_train(item.config, runs_root, verbose=verbose)
                seconds = 0.0 if result.reused else time.perf_counter() - t0
                done[fp] = (result, seconds)
                how = "reused" if result.reused else f"trained in {seconds:.0f} s"
        except Exception as exc:  # one failed run must not sink the whole table
            failures.append((what, f"{type(exc).__name__}: {exc}"))
            say(f"[{i}/{len(planned)}] {what}: FAILED ({type(exc).__name__}: {exc})")
            continue
        say(f"[{i}/{len(planned)}] {what}: {how} ({Path(result.run_dir).name})")
        for name in metrics:
            value, low, high = _metric_values(result.metrics, name)
            records.append(
                {
                    "table": item.table,
                    "row": item.row.label,
                    "seed": item.seed,
                    "metric": name,
                    "value": value,
                    "low": low,
                    "high": high,
                    "run": Path(result.run_dir).name,
                    "reused": bool(result.reused),
                    "seconds": round(seconds, 1),
                }
            )
    return ExperimentResult(list(planned), records, failures)


# --------------------------------------------------------------------------- tables and figures


def summarize(result: ExperimentResult, table: str) -> pd.DataFrame:
    """Per row and metric: mean over seeds, mean CI bounds, seed SD, number of seeds."""
    df = result.frame()
    df = df[df["table"] == table]
    if df.empty:
        return pd.DataFrame(columns=["row", "metric", "value", "low", "high", "seed_sd", "n_seeds"])
    g = df.groupby(["row", "metric"], sort=False)
    out = g.agg(
        value=("value", "mean"),
        low=("low", "mean"),
        high=("high", "mean"),
        seed_sd=("value", lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else _NAN),
        n_seeds=("seed", "nunique"),
    ).reset_index()
    return out


def _cell(value: float, low: float, high: float, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    text = f"{value:.{digits}f}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" ({low:.{digits - 1}f}–{high:.{digits - 1}f})"
    return text


def comparison_table(
    result: ExperimentResult,
    table: str,
    *,
    metrics: Sequence[str] = TABLE_METRICS,
    with_paper: bool = True,
    digits: int = 4,
) -> pd.DataFrame:
    """The paper's layout with our numbers (95% CI) and, beside each, the paper's value.

    With several seeds a cell is the mean over seeds and the CI the mean of the per-seed
    patient-bootstrap bounds (test-set uncertainty); ``seed SD`` gives training variance.

    Args:
        result: from :func:`run_experiment`.
        table: experiment key.
        metrics: metric columns.
        with_paper: add a "(paper)" column after each metric.
        digits: decimals (the paper prints 4).

    Returns:
        DataFrame of strings indexed by row label, rows in the paper's order; rows that
        were not run (models subset) are left out.
    """
    exp = experiment(table)
    summary = summarize(result, table)
    rows = []
    for row in exp.rows:
        part = summary[summary["row"] == row.label]
        if part.empty:
            continue
        cells: dict[str, Any] = {"": row.label, **row.extra}
        for name in metrics:
            hit = part[part["metric"] == name]
            v, lo, hi = hit.iloc[0][["value", "low", "high"]] if not hit.empty else (_NAN, _NAN, _NAN)
            cells[METRIC_NAMES.get(name, name)] = _cell(float(v), float(lo), float(hi), digits)
            if with_paper and name in TABLE_METRICS:
                paper = PAPER_TABLES[table][row.label][TABLE_METRICS.index(name)]
                cells[f"{METRIC_NAMES.get(name, name)} (paper)"] = "n/a" if math.isnan(paper) else f"{paper:.{digits}f}"
        n = int(part["n_seeds"].max())
        if n > 1:
            acc = part[part["metric"] == metrics[0]]
            cells[f"seed SD ({METRIC_NAMES.get(metrics[0], metrics[0])})"] = (
                f"{float(acc['seed_sd'].iloc[0]):.{digits}f}"
            )
        cells["seeds"] = n
        rows.append(cells)
    if not rows:
        # Not run (the tables/models parameters left it out): say so instead of an empty frame.
        return pd.DataFrame(
            {"note": [f"{exp.title}: no run; add {table!r} to the tables parameter (and its models) to rebuild it"]}
        )
    out = pd.DataFrame(rows).set_index("")
    out.index.name = "Dataset" if table == "table5" else "Classifier"
    return out


def ranking_agreement(result: ExperimentResult, table: str, metric: str = "accuracy") -> dict[str, Any]:
    """Does our ordering of the rows agree with the paper's? (Spearman rho over rows with both.)

    Returns:
        ``{"rows", "ours_best", "paper_best", "spearman"}``; ``spearman`` is NaN with < 3 rows.
    """
    summary = summarize(result, table)
    part = summary[summary["metric"] == metric].set_index("row")["value"]
    idx = TABLE_METRICS.index(metric) if metric in TABLE_METRICS else None
    pairs = []
    for label, ours in part.items():
        paper = PAPER_TABLES[table][label][idx] if idx is not None else _NAN
        if math.isfinite(ours) and math.isfinite(paper):
            pairs.append((label, ours, paper))
    out: dict[str, Any] = {"rows": len(pairs), "ours_best": None, "paper_best": None, "spearman": _NAN}
    if pairs:
        out["ours_best"] = max(pairs, key=lambda t: t[1])[0]
        out["paper_best"] = max(pairs, key=lambda t: t[2])[0]
    if len(pairs) >= 3:
        ours = pd.Series([p[1] for p in pairs]).rank()
        paper = pd.Series([p[2] for p in pairs]).rank()
        out["spearman"] = float(np.corrcoef(ours, paper)[0, 1])
    return out


def comparison_figure(
    result: ExperimentResult, table: str, *, metrics: Sequence[str] = TABLE_METRICS, title: str | None = None
):
    """Grouped bars: our value per row and metric with 95% CI whiskers; the paper's as diamonds.

    Returns:
        A plotly Figure.
    """
    import plotly.graph_objects as go

    exp = experiment(table)
    summary = summarize(result, table)
    labels = [r.label for r in exp.rows if r.label in set(summary["row"])]
    palette = ["#2f6db5", "#e07b39", "#3a9e5c", "#8c5fb8", "#c0392b", "#7f8c8d"]
    fig = go.Figure()
    for k, name in enumerate(metrics):
        part = summary[summary["metric"] == name].set_index("row").reindex(labels)
        color = palette[k % len(palette)]
        fig.add_bar(
            x=labels,
            y=part["value"],
            name=f"{METRIC_NAMES.get(name, name)} (ours)",
            marker_color=color,
            offsetgroup=str(k),
            error_y={
                "type": "data",
                "symmetric": False,
                "array": (part["high"] - part["value"]).clip(lower=0),
                "arrayminus": (part["value"] - part["low"]).clip(lower=0),
                "thickness": 1.2,
            },
        )
        if name in TABLE_METRICS:
            paper = [PAPER_TABLES[table][lab][TABLE_METRICS.index(name)] for lab in labels]
            fig.add_scatter(
                x=labels,
                y=paper,
                mode="markers",
                name=f"{METRIC_NAMES.get(name, name)} (paper)",
                marker={"symbol": "diamond", "size": 10, "color": color, "line": {"width": 1, "color": "black"}},
                offsetgroup=str(k),
            )
    if not labels:
        fig.add_annotation(
            text="not run (see the tables and models parameters)",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            font={"size": 16},
        )
    fig.update_layout(
        title=title or exp.title,
        barmode="group",
        scattermode="group",
        yaxis_title="score (test split)",
        yaxis_range=[0, 1.05],
        legend={"orientation": "h", "y": -0.2},
        height=460,
        template="plotly_white",
    )
    return fig


def headline(result: ExperimentResult, metric: str = "accuracy") -> dict[str, float]:
    """``{"<table>.<row>.<metric>": mean over seeds}`` for the batch index page."""
    out: dict[str, float] = {}
    for table in dict.fromkeys(p.table for p in result.planned):
        summary = summarize(result, table)
        for _, r in summary[summary["metric"] == metric].iterrows():
            out[f"{table}.{r['row']}.{metric}"] = round(float(r["value"]), 4)
    return out


def runs_table(result: ExperimentResult) -> pd.DataFrame:
    """One line per run used: table, row, seed, run folder, trained or reused, seconds."""
    df = result.frame()
    if df.empty:
        return df
    return df.drop_duplicates(["table", "row", "seed"])[
        ["table", "row", "seed", "run", "reused", "seconds"]
    ].reset_index(drop=True)


# --------------------------------------------------------------------------- notebook helpers


def overrides_from(
    *, epochs: int = 0, image_size: Sequence[int] = (), width: int = 0, n_boot: int | None = None, **more: Any
) -> dict[str, Any]:
    """TrainConfig overrides from notebook parameters, where 0 / empty means "keep the preset's".

    Args:
        epochs: training epochs (0: the preset's).
        image_size: network input ``[rows, cols]`` (empty: the preset's).
        width: network base width (0: the preset's; 64 is the published network).
        n_boot: bootstrap replicates for the CIs (None: the preset's).
        **more: further TrainConfig fields, passed through when not None.

    Returns:
        The overrides for :func:`plan`.
    """
    out: dict[str, Any] = {k: v for k, v in more.items() if v is not None}
    if epochs:
        out["epochs"] = int(epochs)
    if image_size:
        if len(image_size) != 2:
            raise ValueError(f"image_size must be [rows, cols], got {list(image_size)}")
        out["image_size"] = (int(image_size[0]), int(image_size[1]))
    if width:
        out["model_options"] = {**dict(out.get("model_options") or {}), "width": int(width)}
    if n_boot is not None:
        out["n_boot"] = int(n_boot)
    return out


def plan_frame(planned: Sequence[PlannedRun], runs_root: str | Path | None = None) -> pd.DataFrame:
    """What an experiment will run: one line per (table, row, seed) with its fingerprint.

    With ``runs_root``, a ``status`` column says whether a finished run will be reused.
    """
    rows = []
    cache: dict[str, str] = {}
    for p in planned:
        fp = p.config.fingerprint()
        row = {
            "table": p.table,
            "row": p.row.label,
            "seed": p.seed,
            "model": p.config.model,
            "dataset": p.config.dataset,
            "input": "x".join(map(str, p.config.image_size)),
            "epochs": p.config.epochs,
            "fingerprint": fp,
        }
        if runs_root is not None:
            if fp not in cache:
                from scintilab.runs import find_run

                cache[fp] = "reuse" if find_run(p.config, runs_root) is not None else "train"
            row["status"] = cache[fp]
        rows.append(row)
    return pd.DataFrame(rows)


def agreement_frame(result: ExperimentResult, metric: str = "accuracy") -> pd.DataFrame:
    """Per table: which row is best here and in the paper, and the rank correlation."""
    rows = []
    for table in dict.fromkeys(p.table for p in result.planned):
        a = ranking_agreement(result, table, metric)
        rows.append(
            {
                "table": table,
                "rows compared": a["rows"],
                "best here": a["ours_best"],
                "best in paper": a["paper_best"],
                "Spearman rho": a["spearman"],
            }
        )
    return pd.DataFrame(rows)


def describe(result: ExperimentResult, metric: str = "accuracy") -> str:
    """A few plain sentences on the result, for the notebook summary."""
    lines = []
    name = METRIC_NAMES.get(metric, metric).lower()
    for table in dict.fromkeys(p.table for p in result.planned):
        summary = summarize(result, table)
        part = summary[summary["metric"] == metric]
        if part.empty:
            lines.append(f"{experiment(table).title}: no finished run.")
            continue
        best = part.loc[part["value"].idxmax()] if part["value"].notna().any() else part.iloc[0]
        a = ranking_agreement(result, table, metric)
        text = (
            f"{experiment(table).title}: best {name} here is {best['row']} "
            f"({best['value']:.3f}, 95% CI {best['low']:.3f}-{best['high']:.3f})"
        )
        if a["rows"] >= 2:  # with one row the paper has nothing to rank it against
            text += f"; in the paper {a['paper_best']}"
        if math.isfinite(a["spearman"]):
            text += f"; rank agreement with the paper (Spearman) {a['spearman']:.2f}"
        lines.append(text + ".")
    if result.failures:
        lines.append(
            f"{len(result.failures)} run(s) failed: " + "; ".join(f"{w} ({why})" for w, why in result.failures)
        )
    return "\n".join(lines)
