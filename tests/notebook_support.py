"""What the notebook tests share (papermill runs in test_notebooks, the browser in test_browser):
the cohort and run fixtures (registered in conftest), the smoke parameters of a notebook, and
the check that no TensorFlow log line reached a notebook's outputs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def smoke_metadata(nb: nbformat.NotebookNode) -> tuple[dict, list[str]]:
    """A notebook's ``metadata.scintilab``: its smoke parameters and the fixtures it needs."""
    meta = nb.metadata.get("scintilab") or {}
    return dict(meta.get("smoke") or {}), list(meta.get("needs") or [])


@dataclass(frozen=True)
class CohortFixture:
    """A cohort folder made for the notebook tests."""

    data_dir: Path
    manifest: Path

    @property
    def dicom_dir(self) -> Path:
        return self.data_dir / "dicom"


def _make_cohort(root: Path, *extra: str) -> CohortFixture:
    from scintilab.cli import main

    rc = main(["synth", str(root), "--size", "tiny", "--seed", "0", "--variety", "narrow", *extra])
    assert rc == 0, f"scintilab synth failed (rc={rc})"
    manifest = root / "manifest.csv"
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
    assert manifest.exists(), "scintilab ingest wrote no manifest"
    return CohortFixture(root, manifest)


@pytest.fixture(scope="session")
def cohort_small(tmp_path_factory) -> CohortFixture:
    """A tiny synthetic cohort (``--size tiny``) and its manifest."""
    return _make_cohort(tmp_path_factory.mktemp("cohort_small"))


@pytest.fixture(scope="session")
def two_visit_cohort(tmp_path_factory) -> CohortFixture:
    """A tiny synthetic cohort with two visits per patient (follow-up), and its manifest."""
    return _make_cohort(tmp_path_factory.mktemp("two_visit_cohort"), "--visits", "2")


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    """One runs folder for the session, so notebooks that train-or-reuse share runs."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def run_dir(cohort_small: CohortFixture, runs_root: Path) -> Path:
    """A finished tiny training run on ``cohort_small`` (quick preset shrunk to 1 epoch at 128x32).

    It goes into ``runs_root`` with the configuration the smoke runs of 05/06 plan for
    Classifier-inRAC, so those notebooks reuse it instead of training again.
    """
    from scintilab.presets import config_from_preset
    from scintilab.training import find_or_train

    config = config_from_preset(
        "quick",
        data=str(cohort_small.manifest),
        image_size=(128, 32),
        epochs=1,
        model_options={"width": 16},
        n_boot=50,
        seed=0,
        model="inrac",
        dataset="D3",
    )
    return Path(find_or_train(config, runs_root, verbose=0).run_dir)


def smoke_parameters(nb_path: Path, fixtures: dict[str, object], tmp: Path, runs_root_dir: Path) -> dict:
    """The parameters to inject: the notebook's smoke values plus fixture paths (see module doc)."""
    import papermill

    nb = read_notebook(nb_path)
    smoke, needs = smoke_metadata(nb)
    declared = papermill.inspect_notebook(str(nb_path))
    places: dict[str, str] = {"tmp": str(tmp), "runs_root": str(runs_root_dir)}
    auto: dict[str, str] = {
        "runs_root": str(runs_root_dir),
        "out_dir": str(tmp / "out"),
        "output_dir": str(tmp / "out"),
    }
    for name in needs:
        value = fixtures[name]
        if isinstance(value, CohortFixture):
            places[name] = str(value.data_dir)
            places[f"{name}_manifest"] = str(value.manifest)
            auto.setdefault("data_dir", str(value.data_dir))
            auto.setdefault("manifest", str(value.manifest))
        else:
            places[name] = str(value)
            auto[name] = str(value)
    params = {k: v for k, v in auto.items() if k in declared}
    for key, value in smoke.items():
        if isinstance(value, str) and "{" in value:
            params[key] = value.format(**places)
        elif key not in params:
            params[key] = value
    return params


# TensorFlow's native log lines (absl's prefix, or its pre-initialisation notice) and its
# Python-side warnings: none may reach an executed notebook or a report made from it.
_TF_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]|WARNING: All log messages before absl"
    r"|WARNING:tensorflow:|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] )"
)


def tf_log_lines(nb: nbformat.NotebookNode) -> list[str]:
    """Lines of TensorFlow log output in a notebook's outputs (streams and plain-text results)."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = (
                out.get("text", "") if out.get("output_type") == "stream" else out.get("data", {}).get("text/plain", "")
            )
            text = "".join(text) if isinstance(text, list) else text
            found += [line for line in text.splitlines() if _TF_LOG_LINE.match(line)]
    return found
