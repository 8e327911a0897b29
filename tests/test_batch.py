"""The papermill batch runner: grids, validation, success, failure kept, skip, force, executors.

Throwaway notebooks are written into tmp folders (tiny: no Keras), and executed for real
with papermill; each kernel start costs a few seconds, so the executed runs are few.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import pytest
import yaml

from scintilab import batch
from scintilab.errors import InputError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_notebook(path: Path) -> Path:
    """A small notebook: parameters x/fail/label, writes a file, records a metric, may raise."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(
        'x: int = 1  # a number\nfail: bool = False  # raise on purpose\nlabel: str = "a"  # some text'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Batch test notebook\nTiny."),
        nbformat.v4.new_markdown_cell("## Parameters"),
        params,
        nbformat.v4.new_markdown_cell("## Setup"),
        nbformat.v4.new_code_cell("from pathlib import Path\nfrom scintilab import reports"),
        nbformat.v4.new_code_cell('print("before-the-failure", x * 10)\nPath("touched.txt").write_text(label)'),
        nbformat.v4.new_code_cell('if fail:\n    raise RuntimeError("planned failure " + label)'),
        nbformat.v4.new_code_cell('reports.record_metrics({"accuracy": x / 10, "label": label})'),
        nbformat.v4.new_markdown_cell("## Summary\nDone."),
    ]
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def nb_path(tmp_path: Path) -> Path:
    return make_notebook(tmp_path / "tiny.ipynb")


def write_yaml(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- validation (no execution)


def test_grid_expansion_names_defaults_and_templates(nb_path: Path, tmp_path: Path) -> None:
    doc = {
        "defaults": {"label": "shared"},
        "runs": [
            {"name": "plain", "notebook": str(nb_path), "parameters": {"x": 3}},
            {"name": "grid", "notebook": str(nb_path), "grid": {"x": [1, 2], "label": ["p", "q"]}},
            {
                "name": "t-{x}",
                "notebook": str(nb_path),
                "grid": {"x": [7]},
                "parameters": {"label": "{out}|{name}"},
                "depends_on": ["grid"],
            },
        ],
    }
    specs = batch.expand_specs(doc, out_root=tmp_path / "out")
    names = [s.name for s in specs]
    assert names == ["plain", "grid-x-1-label-p", "grid-x-1-label-q", "grid-x-2-label-p", "grid-x-2-label-q", "t-7"]
    assert specs[0].parameters == {"label": "shared", "x": 3}
    assert specs[1].parameters == {"label": "p", "x": 1} and specs[1].grid_values == {"x": 1, "label": "p"}
    out_text, name = specs[-1].parameters["label"].split("|")
    assert name == "t-7" and out_text.endswith("out/t-7")
    # A dependency on a grid's base name means every expansion of it.
    assert set(specs[-1].depends_on) == set(names[1:5])


def test_defaults_only_reach_notebooks_that_declare_them(nb_path: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[2].source = "y: float = 0.5  # another parameter"
    nbformat.write(nb, other)
    specs = batch.expand_specs(
        {"defaults": {"x": 4, "y": 1.5}, "runs": [{"notebook": str(nb_path)}, {"notebook": str(other)}]}
    )
    assert specs[0].parameters == {"x": 4} and specs[1].parameters == {"y": 1.5}
    assert [s.name for s in specs] == ["tiny", "other"]


@pytest.mark.parametrize(
    "run, message",
    [
        ({"parameters": {"epoch": 300}}, "unknown parameter 'epoch'"),
        ({"grid": {"seeds": [0, 1]}}, "unknown parameter 'seeds'"),
        ({"parameters": {"x": "three"}}, "declared int but given str"),
        ({"parameters": {"fail": 1}}, "declared bool but given int"),
        ({"depends_on": ["nothing-like-this"]}, "matches no run"),
        ({"grid": {"x": []}}, "non-empty list"),
        ({"colour": "blue"}, "unknown keys ['colour']"),
    ],
)
def test_invalid_runs_are_errors_naming_file_and_problem(
    nb_path: Path, tmp_path: Path, run: dict, message: str
) -> None:
    params_file = write_yaml(tmp_path / "bad.yaml", {"runs": [{"name": "r", "notebook": str(nb_path), **run}]})
    with pytest.raises(InputError) as info:
        batch.load_specs(params_file)
    assert message in str(info.value)
    assert str(params_file) in str(info.value)


def test_misspelt_default_and_missing_notebook_and_duplicates(nb_path: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="declared by none of the notebooks"):
        batch.expand_specs({"defaults": {"lable": "x"}, "runs": [{"notebook": str(nb_path)}]})
    with pytest.raises(InputError, match="notebook not found"):
        batch.expand_specs({"runs": [{"notebook": str(tmp_path / "absent.ipynb")}]})
    with pytest.raises(InputError, match="duplicate run name"):
        batch.expand_specs({"runs": [{"name": "a", "notebook": str(nb_path)}, {"name": "a", "notebook": str(nb_path)}]})
    with pytest.raises(InputError, match="not valid YAML"):
        bad = tmp_path / "broken.yaml"
        bad.write_text("runs: [unclosed", encoding="utf-8")
        batch.load_specs(bad)


def test_unknown_parameter_stops_cli_before_anything_executes(nb_path: Path, tmp_path: Path, capsys) -> None:
    params_file = write_yaml(
        tmp_path / "p.yaml",
        {
            "runs": [
                {"name": "good", "notebook": str(nb_path)},
                {"name": "typo", "notebook": str(nb_path), "parameters": {"X": 2}},
            ]
        },
    )
    out = tmp_path / "out"
    assert batch.cli_main([str(params_file), "--out", str(out)]) == 2
    assert "unknown parameter 'X'" in capsys.readouterr().err
    assert not out.exists()  # not even the valid run started


def test_select_only(nb_path: Path) -> None:
    specs = batch.expand_specs(
        {
            "runs": [
                {"name": "a", "notebook": str(nb_path)},
                {"name": "g", "notebook": str(nb_path), "grid": {"x": [1, 2]}},
            ]
        }
    )
    assert [s.name for s in batch.select(specs, ["g"])] == ["g-x-1", "g-x-2"]
    assert [s.name for s in batch.select(specs, ["*-2", "a"])] == ["a", "g-x-2"]
    with pytest.raises(ValueError, match="matches no run"):
        batch.select(specs, ["zzz"])


# --------------------------------------------------------------------------- execution


@pytest.mark.slow
def test_success_failure_kept_dependants_skipped_then_rerun_skips(nb_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    specs = batch.expand_specs(
        {
            "runs": [
                {"name": "good", "notebook": str(nb_path), "parameters": {"x": 3, "label": "g"}},
                {"name": "bad", "notebook": str(nb_path), "parameters": {"fail": True, "label": "b"}},
                {"name": "after-bad", "notebook": str(nb_path), "depends_on": ["bad"]},
                {"name": "after-good", "notebook": str(nb_path), "parameters": {"x": 5}, "depends_on": ["good"]},
            ]
        },
        out_root=out,
    )
    result = batch.run_batch(specs, out, log=None)
    assert [o.status for o in result.outcomes] == ["ok", "failed", "skipped", "ok"]

    good = json.loads((out / "good" / "status.json").read_text())
    assert good["status"] == "ok" and good["parameters"] == {"x": 3, "label": "g"} and good["seconds"] > 0
    assert json.loads((out / "good" / "params.json").read_text())["parameters"] == {"x": 3, "label": "g"}
    assert (out / "good" / "touched.txt").read_text() == "g"  # executed with cwd = its run folder
    assert json.loads((out / "good" / "metrics.json").read_text())["accuracy"] == pytest.approx(0.3)
    assert (out / "good" / "report.html").exists()

    # The failed run keeps its partial notebook: cells before the failure have their outputs.
    bad = json.loads((out / "bad" / "status.json").read_text())
    assert bad["status"] == "failed" and bad["error"]["ename"] == "RuntimeError"
    assert "planned failure b" in bad["error"]["evalue"]
    partial = (out / "bad" / "tiny.ipynb").read_text()
    assert "before-the-failure" in partial and "planned failure b" in partial
    assert (out / "bad" / "report.html").exists()
    skipped = json.loads((out / "after-bad" / "status.json").read_text())
    assert skipped["status"] == "skipped" and "bad" in skipped["reason"]

    index = (out / "index.html").read_text()
    for name in ("good", "bad", "after-bad", "after-good"):
        assert f">{name}<" in index
    assert "RuntimeError" in index and "accuracy" in index

    # Re-run: what is done is skipped, untouched; the failed run executes again.
    started = good["started"]
    again = batch.run_batch(specs, out, log=None)
    by_name = {o.name: o for o in again.outcomes}
    assert by_name["good"].status == "skipped" and by_name["good"].reason == "up to date"
    assert by_name["after-good"].status == "skipped"
    assert by_name["bad"].status == "failed"
    assert json.loads((out / "good" / "status.json").read_text())["started"] == started

    # Changed parameters mean a different result: executes again; --force re-executes anyway.
    changed = batch.expand_specs(
        {"runs": [{"name": "good", "notebook": str(nb_path), "parameters": {"x": 4}}]}, out_root=out
    )
    assert batch.run_batch(changed, out, log=None, write_index=False).outcomes[0].status == "ok"
    forced = batch.run_batch(changed, out, log=None, force=True, render=False, write_index=False)
    assert forced.outcomes[0].status == "ok"
    assert json.loads((out / "good" / "status.json").read_text())["started"] != started


@pytest.mark.slow
def test_executor_runs_waves_and_keeps_failures(nb_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    specs = batch.expand_specs(
        {
            "runs": [
                {"name": "p", "notebook": str(nb_path), "grid": {"x": [1, 2]}},
                {"name": "boom", "notebook": str(nb_path), "parameters": {"fail": True}},
                {"name": "last", "notebook": str(nb_path), "depends_on": ["p"]},
            ]
        },
        out_root=out,
    )
    with ProcessPoolExecutor(max_workers=2) as pool:
        result = batch.run_batch(specs, out, executor=pool, render=False, log=None)
    assert {o.name: o.status for o in result.outcomes} == {"p-x-1": "ok", "p-x-2": "ok", "boom": "failed", "last": "ok"}
    finished = {n: json.loads((out / n / "status.json").read_text()) for n in ("p-x-1", "p-x-2", "last")}
    assert finished["last"]["started"] >= max(finished["p-x-1"]["finished"], finished["p-x-2"]["finished"])


@pytest.mark.slow
def test_cli_exit_codes_and_list(nb_path: Path, tmp_path: Path, capsys) -> None:
    params_file = write_yaml(
        tmp_path / "p.yaml",
        {
            "runs": [
                {"name": "ok-run", "notebook": str(nb_path)},
                {"name": "fail-run", "notebook": str(nb_path), "parameters": {"fail": True}},
            ]
        },
    )
    out = tmp_path / "out"
    assert batch.cli_main([str(params_file), "--out", str(out), "--list"]) == 0
    assert "ok-run" in capsys.readouterr().out and not out.exists()
    assert batch.cli_main([str(params_file), "--out", str(out), "--only", "ok-run", "--no-report"]) == 0
    assert batch.cli_main([str(params_file), "--out", str(out), "--no-report"]) == 1
    text = capsys.readouterr().out
    assert "1 failed" in text and "ok-run: skipped" in text
