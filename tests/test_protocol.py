"""The validation protocol holds: purposes disjoint, scripts refuse a reporting seed first, every seed registered."""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest
import yaml

from scintilab.protocol import (
    COHORTS_MD,
    DEVELOPMENT,
    PROTOCOL_FILE,
    TUNING_FIGURE,
    ProtocolError,
    format_seeds,
    load_protocol,
    parse_seeds,
    purpose_of,
    render_markdown,
    require,
    require_cohort,
)

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def protocol():
    return load_protocol()


def _script(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    """A benchmark script imported as a module (they import each other by file name)."""
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module(name)


def _tripwire(monkeypatch: pytest.MonkeyPatch, module: ModuleType, *names: str) -> None:
    """Make the script's heavy steps fail loudly, so a refusal is shown to come before them."""

    def boom(*_a: Any, **_k: Any) -> None:
        raise AssertionError("heavy work started before the protocol check")

    for n in names:
        monkeypatch.setattr(module, n, boom)


def _refused(capsys: pytest.CaptureFixture[str], call: Any, *needles: str) -> str:
    with pytest.raises(SystemExit) as exc:
        call()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for n in (PROTOCOL_FILE, *needles):
        assert n in err, err
    return err


# ---- the file ------------------------------------------------------------------------------


def test_no_seed_is_both_development_and_reporting(protocol) -> None:
    varieties = {c.variety for c in protocol.cohorts}
    assert {"narrow", "clinic"} <= varieties
    for variety in varieties:
        dev = protocol.seeds("tuning", variety) | protocol.seeds("training", variety)
        assert dev and not dev & protocol.seeds("reporting", variety), variety
    # across varieties too: one seed's patients come from the same random streams
    all_dev = protocol.seeds("tuning") | protocol.seeds("training")
    assert not all_dev & protocol.seeds("reporting")


def test_the_reserved_blocks_are_fresh(protocol) -> None:
    reserved = [c for c in protocol.cohorts if c.reserved]
    assert {(c.purpose, c.variety) for c in reserved} >= {("reporting", "clinic"), ("tuning", "clinic")}
    for c in reserved:
        others = {s for o in protocol.cohorts if o is not c for s in o.seeds}
        assert not others & set(c.seeds), c.name


def test_a_file_registering_a_seed_both_ways_is_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / PROTOCOL_FILE).read_text())
    doc["cohorts"].append({**doc["cohorts"][0], "name": "leak", "purpose": "tuning", "seeds": [67]})
    bad = tmp_path / "cohorts.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ProtocolError, match=r"seed 67 is registered for tuning \(leak\) and for reporting"):
        load_protocol(bad)


def test_seed_ranges_parse_and_print() -> None:
    assert parse_seeds([1, "4201-4203", 7]) == (1, 4201, 4202, 4203, 7)
    assert format_seeds([0, 1, 2, 3, 5, 7, 8, 20, 21, 22]) == "0-3, 5, 7, 8, 20-22"
    with pytest.raises(ProtocolError):
        parse_seeds(["9-3"])


def test_cohorts_md_is_generated_from_the_yaml(protocol) -> None:
    # regenerate with `python -m scintilab.protocol`
    assert (ROOT / COHORTS_MD).read_text(encoding="utf-8") == render_markdown(protocol)


# ---- require -------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", sorted(DEVELOPMENT))
def test_a_reporting_seed_may_not_tune_or_train(purpose: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        require(67, purpose, what="the rules")
    msg = str(exc.value)
    assert "seed 67" in msg and "registered for reporting" in msg and PROTOCOL_FILE in msg and "the rules" in msg


def test_unregistered_and_test_only_seeds_may_not_tune() -> None:
    with pytest.raises(ProtocolError, match=rf"seed 4999 \(narrow\) is not registered in {PROTOCOL_FILE}"):
        require(4999, "tuning")
    with pytest.raises(ProtocolError, match="registered only for tests"):
        require(4001, "training")
    with pytest.raises(ProtocolError, match="not registered"):
        require(5001, "tuning", "narrow")  # the clinic block is not a narrow seed


def test_reporting_takes_a_registered_reporting_seed() -> None:
    rec = require(67, "reporting")
    assert rec == {
        "seed": 67,
        "variety": "narrow",
        "purpose": "reporting",
        "file": PROTOCOL_FILE,
        "registered_as": ["reporting"],
    }
    assert require(5001, "reporting", "clinic")["purpose"] == "reporting"
    with pytest.raises(ProtocolError, match="add it there as a reporting seed first"):
        require(4999, "reporting")
    with pytest.raises(ProtocolError, match="registered only for tests"):
        require(4201, "reporting")


def test_reporting_on_a_tuning_seed_is_a_labelled_tuning_figure() -> None:
    with pytest.raises(ProtocolError, match=r"seed 1 \(narrow\) is registered for tuning, training and tests"):
        require(1, "reporting")
    rec = require(1, "reporting", allow_tuning_figure=True)
    assert rec["purpose"] == TUNING_FIGURE and rec["registered_as"] == ["tuning", "training", "tests"]


def test_purpose_of(protocol) -> None:
    assert purpose_of(1) == "tuning"
    assert purpose_of(1001) == "training"
    assert purpose_of(67, protocol=protocol) == "reporting"
    assert purpose_of(4001) == "tests"
    assert purpose_of(4999) is None
    assert purpose_of(6001, "clinic") == "tuning" and purpose_of(6001) is None


# ---- the scripts refuse before any work ----------------------------------------------------


def _fake_cohort(root: Path, seed: int) -> Path:
    root.mkdir(parents=True)
    (root / "cohort.json").write_text(json.dumps({"generator": "scintilab.synth", "seed": seed}))
    return root


def test_validate_quantification_checks_first(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    vq = _script(monkeypatch, "validate_quantification")
    _tripwire(monkeypatch, vq, "_ensure_cohort", "train_from_manifest", "validate_against_truth")
    train = _fake_cohort(tmp_path / "train", 67)
    cohort = tmp_path / "cohort"
    # a training cohort the generator wrote with a reporting seed
    _refused(
        capsys,
        lambda: vq.main(["--train-cohort", str(train), "--cohort", str(cohort), "--seed", "71"]),
        "seed 67",
        "registered for reporting",
    )
    # reporting on the default seed 1 (a tuning seed), on an unregistered one
    _refused(capsys, lambda: vq.main(["--cohort", str(cohort)]), "seed 1", "tuning figure")
    _refused(capsys, lambda: vq.main(["--cohort", str(cohort), "--seed", "4999"]), "seed 4999", "not registered")
    # the folder's cohort.json decides, not --seed
    written = _fake_cohort(tmp_path / "written", 23)
    _refused(capsys, lambda: vq.main(["--cohort", str(written), "--seed", "67"]), "seed 23")
    # allowed uses get past the check (into the tripwire)
    with pytest.raises(AssertionError, match="heavy work"):
        vq.main(["--cohort", str(cohort), "--seed", "67"])
    with pytest.raises(AssertionError, match="heavy work"):
        vq.main(["--cohort", str(cohort), "--tuning-figure"])


def test_validate_quantification_records_the_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vq = _script(monkeypatch, "validate_quantification")
    args = argparse.Namespace(
        train_cohort=tmp_path / "t", cohort=tmp_path / "c", seed=67, tuning_figure=False, variety="narrow", train_seed=1
    )
    record, trained_on = vq.check_protocol(args)
    assert (record["seed"], record["purpose"], record["file"]) == (67, "reporting", PROTOCOL_FILE)
    assert (trained_on["seed"], trained_on["purpose"]) == (vq.TRAIN_SEED, "training")
    # training into the validated folder: its figures are tuning figures
    args.cohort = args.train_cohort
    with pytest.raises(ProtocolError, match="seed 1 "):
        vq.check_protocol(args)


def test_measure_template_scale_checks_first(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mts = _script(monkeypatch, "measure_template_scale")
    _tripwire(monkeypatch, mts, "measure")

    def cohort(name: str, seed: int | None) -> str:
        root = tmp_path / name
        if seed is None:
            root.mkdir()
        else:
            _fake_cohort(root, seed)
        (root / "manifest.csv").write_text("study_key\n")
        (root / "truth").mkdir()
        return str(root)

    _refused(capsys, lambda: mts.main(["--cohort", cohort("rep", 67)]), "seed 67", "registered for reporting")
    _refused(capsys, lambda: mts.main(["--cohort", cohort("none", None)]), "no cohort.json")
    _refused(capsys, lambda: mts.main(["--cohort", cohort("tune", 1), "--check"]), "seed 1", "tuning figure")
    with pytest.raises(AssertionError, match="heavy work"):
        mts.main(["--cohort", str(tmp_path / "tune")])


@pytest.mark.parametrize("name", ["train_viewrec", "train_orientation"])
def test_training_scripts_check_first(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    script = _script(monkeypatch, name)
    shipped = "default_recogniser" if name == "train_viewrec" else "default_model"
    _tripwire(monkeypatch, script, "training_set", "views_of", "fit", "measure", shipped)
    # the shipped seeds pass
    script.check_protocol(script.TRAIN, script.HELD_OUT, "model")
    out = ["--out", str(tmp_path / "w.json")]
    monkeypatch.setattr(script, "TRAIN", ((2001, (512, 128)), *script.TRAIN))
    _refused(capsys, lambda: script.main(out), "seed 2001", "registered for reporting")
    # measuring only: the training seeds do not matter, a held-out seed that trained does
    with pytest.raises(AssertionError, match="heavy work"):
        script.main(["--check"])
    monkeypatch.setattr(script, "HELD_OUT", ((1001, (1024, 256)),))
    _refused(capsys, lambda: script.main(["--check"]), "seed 1001", "tuning figure")


# ---- every seed the benchmarks and batches pass is registered ------------------------------


def _int(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    return None


def _benchmark_seeds(path: Path) -> set[int]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    found = {int(m) for m in re.findall(r"--seed[ =]+(\d+)", text)}
    # shell loops over seeds in usage text: `for s in 67 71 79; do ... --seed $s`
    found |= {int(s) for loop in re.findall(r"for \w+ in ((?:\d+ +)*\d+) *;", text) for s in loop.split()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found |= {v for k in node.keywords if k.arg == "seed" and (v := _int(k.value)) is not None}
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and first.value == "--seed":
                found |= {v for k in node.keywords if k.arg == "default" and (v := _int(k.value)) is not None}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = [*node.args.posonlyargs, *node.args.args]
            pairs = list(zip(args[len(args) - len(node.args.defaults) :], node.args.defaults))
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None]
            found |= {v for a, d in pairs if a.arg == "seed" and (v := _int(d)) is not None}
    for node in tree.body:
        targets = [t.id for t in getattr(node, "targets", [getattr(node, "target", None)]) if isinstance(t, ast.Name)]
        value = getattr(node, "value", None)
        if not targets or value is None:
            continue
        if any("SEED" in t for t in targets):
            found |= {v for n in ast.walk(value) if (v := _int(n)) is not None}
        elif any(t in ("TRAIN", "HELD_OUT") for t in targets) and isinstance(value, (ast.Tuple, ast.List)):
            found |= {v for e in value.elts if isinstance(e, ast.Tuple) and (v := _int(e.elts[0])) is not None}
    return found


def _cohort_seed_notebooks() -> set[str]:
    """Notebooks whose ``seed`` parameter is a cohort's seed: they pass it to ``ensure_cohort``."""
    out = set()
    for nb_path in (ROOT / "notebooks").glob("*.ipynb"):
        code = "\n".join(c.source for c in nbformat.read(nb_path, as_version=4).cells if c.cell_type == "code")
        if re.search(r"ensure_cohort\([^)]*\bseed=seed\b", code):
            out.add(f"notebooks/{nb_path.name}")
    return out


def _batch_seeds(path: Path, cohort_notebooks: set[str]) -> set[int]:
    text = path.read_text(encoding="utf-8")
    found = {int(m) for m in re.findall(r"--seed[ =]+(\d+)", text)}  # `scintilab synth ... --seed N` in comments
    spec = yaml.safe_load(text)
    defaults = spec.get("defaults") or {}
    for run in spec.get("runs") or []:
        if run.get("notebook") not in cohort_notebooks:
            continue
        for where in (defaults, run.get("parameters") or {}, run.get("grid") or {}):
            value = where.get("seed")
            found |= {int(v) for v in (value if isinstance(value, list) else [value]) if isinstance(v, int)}
    return found


def test_every_seed_literal_is_registered(protocol) -> None:
    """Every generator seed written into benchmarks/*.py and papermill_runs/*.yaml is in the protocol.

    What counts as a seed (a pragmatic scan, over-inclusive where cheap):

    * in ``benchmarks/*.py``: ``--seed N`` in any text (usage lines, docstring commands) and
      the seeds of a shell ``for s in 67 71 ...;`` loop there, the
      ``default`` of an ``add_argument("--seed", ...)``, ``seed=N`` keywords of any call,
      ``seed`` parameters' integer defaults, module constants whose name holds ``SEED``, and
      the first item of each ``(seed, matrix)`` pair of the ``TRAIN`` / ``HELD_OUT`` tables.
      Some of these seed a benchmark's weights or random batches rather than a cohort
      (``bench_models.py --seed``); they are 0 and registered anyway;
    * in ``papermill_runs/*.yaml``: ``--seed N`` in the comments (the ``scintilab synth``
      commands), and the ``seed`` of runs (defaults, parameters, grid) of notebooks that
      pass their ``seed`` to ``ensure_cohort`` (00, 00b, 09).

    Not counted: ``np.random.default_rng(N)`` and ``set_random_seed(N)`` (augmentation,
    measurement and weight randomness), and the ``seed`` / ``seeds`` of notebooks 02-07,
    which seed a split, augmentation, weights or a bootstrap of a cohort named elsewhere.
    """
    cohort_notebooks = _cohort_seed_notebooks()
    assert {"notebooks/00_cohort_overview.ipynb", "notebooks/09_quantification.ipynb"} <= cohort_notebooks
    assert "notebooks/03_training.ipynb" not in cohort_notebooks
    where: dict[int, list[str]] = {}
    for path in sorted(BENCH.glob("*.py")):
        for s in _benchmark_seeds(path):
            where.setdefault(s, []).append(path.name)
    for path in sorted((ROOT / "papermill_runs").glob("*.yaml")):
        for s in _batch_seeds(path, cohort_notebooks):
            where.setdefault(s, []).append(path.name)
    # the scan sees the seeds it must (so it cannot pass by finding nothing)
    assert {0, 1, 67, 131, 1001, 2001, 2101} <= set(where), sorted(where)
    unregistered = {
        s: files for s, files in where.items() if not any(protocol.purposes_of(s, v) for v in protocol.varieties)
    }
    assert not unregistered, f"seeds not in {PROTOCOL_FILE}: {unregistered}"


def test_require_cohort_reads_the_folders_own_seed_and_variety(tmp_path: Path) -> None:
    """A written cohort is checked by the seed and variety its cohort.json records, not by
    the arguments; a folder still to be written by the arguments."""
    written = tmp_path / "written"
    written.mkdir()
    (written / "cohort.json").write_text(json.dumps({"seed": 5001, "variety": "clinic"}))
    record, variety = require_cohort(written, 6001, "reporting", "narrow", what="a test")
    assert (record["seed"], variety, record["purpose"]) == (5001, "clinic", "reporting")
    with pytest.raises(ProtocolError, match="6001"):  # not yet written: the argument's seed decides
        require_cohort(tmp_path / "new", 6001, "reporting", "clinic", what="a test")
    record, variety = require_cohort(tmp_path / "new", 6001, "training", "clinic", what="a test")
    assert (record["seed"], variety) == (6001, "clinic")
    with pytest.raises(ProtocolError, match="5001"):  # a reporting seed never trains
        require_cohort(written, None, "training", "clinic", what="a test")
