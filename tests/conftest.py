"""Shared test fixtures: tiny cohorts written with scintilab's own DICOM and LabelMe writers.

Other modules test against these without the synthetic generator:

* ``tmp_cohort_dir(n=4, labels=None, **options) -> Path`` writes a cohort folder in the
  layout of docs/CONVENTIONS.md (``dicom/case_NNNN/``, ``annotations/``, ``labels.csv``,
  ``demographics.csv``) and returns it. See :func:`make_cohort` for the options.
* ``tmp_manifest(n=4, labels=None, **options) -> Path`` does the same and runs
  :func:`scintilab.ingest.ingest`, returning the manifest CSV path.

Images are 256x64 phantoms: a body outline, a bright spine and, for metastatic labels,
a few hot spots that the LabelMe files outline. The raw identities are planted on
purpose (``PLANTED_NAME``/``PLANTED_ID`` prefixes) so tests can check none leaks; so are
the other identifying fields of a real export (:func:`planted_export_header`: other names
and ids, institution, station, operators, physicians, device serial, comments and a GE
Genie-style private tag repeating the name).
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from scintilab.dicomio import ExportHeader, write_study
from scintilab.labelme import write_labelme
from scintilab.study import CLASSES, Shape
from scintilab.utils import as_rng

# the notebook tests' session fixtures, shared by the papermill and the browser runs
from notebook_support import cohort_small, run_dir, runs_root, two_visit_cohort  # noqa: E402,F401

#: Every planted PatientName starts with this; it must never reach an output.
PLANTED_NAME = "Plantedname^Secret"
#: Every planted PatientID starts with this; it must never reach an output.
PLANTED_ID = "PIDSECRET"


def planted_export_header(i: int, seed: int = 0, *, image_comments: bool = True) -> ExportHeader:
    """Distinct identifying values for patient ``i`` in every header field beyond the patient
    module that an export carries, a GE Genie-style private name tag among them. Each holds
    ``SECRET`` so a leak is easy to read in a failing assertion."""
    tag = f"{seed:02d}{i:02d}"
    return ExportHeader(
        other_patient_names=f"Othersecret{tag}^Olga",
        other_patient_ids=f"OPIDSECRET{tag}",
        institution=f"Secretville Hospital {tag}",
        institution_address=f"{tag} Secretroad Lane",
        station=f"STNSECRET{tag}",
        operators=f"Opsecret{tag}^Ivan",
        referring_physician=f"Refsecret{tag}^Mia",
        performing_physician=f"Perfsecret{tag}^Tom",
        device_serial=f"SNSECRET{tag}",
        image_comments=f"Imgcommentsecret {tag}" if image_comments else "",
        study_comments=f"Studycommentsecret {tag}",
        patient_comments=f"Patcommentsecret {tag}",
        private_patient_name=f"Geniesecret{tag}^{PLANTED_NAME.split('^')[0]}",
    )


def phantom(
    shape: tuple[int, int], lesions: Sequence[tuple[int, int, int]], rng: np.random.Generator, *, level: float = 1.0
) -> np.ndarray:
    """A Poisson whole-body-like phantom: body ellipse, spine, hot spots (row, col, radius)."""
    rows, cols = shape
    rr, cc = np.mgrid[0:rows, 0:cols]
    mean = np.zeros(shape, float)
    body = ((rr - rows / 2) / (rows * 0.48)) ** 2 + ((cc - cols / 2) / (cols * 0.35)) ** 2 <= 1
    mean[body] = 4.0
    spine = body & (np.abs(cc - cols / 2) <= max(1, cols // 32)) & (rr > rows * 0.1) & (rr < rows * 0.6)
    mean[spine] = 30.0
    for r, c, rad in lesions:
        mean[(rr - r) ** 2 + (cc - c) ** 2 <= rad**2] += 150.0
    return rng.poisson(mean * level).astype(np.uint16)


def make_cohort(
    root: Path,
    n: int = 4,
    *,
    labels: Sequence[str] | None = None,
    layout: str = "multiframe",
    shape: tuple[int, int] = (256, 64),
    annotations: bool = True,
    visits: int = 1,
    view_naming: str = "standard",
    seed: int = 0,
    sop_class: str = "nm",
) -> Path:
    """Write a tiny cohort folder and return it.

    Args:
        root: the cohort folder to create.
        n: number of patients.
        labels: one label per patient (default: cycling through CLASSES).
        layout: ``multiframe`` or ``pair`` (see :func:`scintilab.dicom_write.write_study`).
        shape: (rows, columns) matrix.
        annotations: write LabelMe files (one per view) outlining each hot spot.
        visits: studies per patient (different StudyDate, same PatientID).
        view_naming: how views are named in the DICOM files.
        seed: randomness for images and lesion positions.
        sop_class: ``nm`` or ``sc`` (Secondary Capture, pair layout only).

    Returns:
        ``root``, holding ``dicom/``, ``annotations/``, ``labels.csv``, ``demographics.csv``.
    """
    rng = as_rng(seed)
    root = Path(root)
    labels = list(labels) if labels is not None else [CLASSES[i % len(CLASSES)] for i in range(n)]
    if len(labels) != n:
        raise ValueError("one label per patient")
    rows, cols = shape
    label_rows, demo_rows = [], []
    for i in range(n):
        patient_id = f"{PLANTED_ID}{seed:02d}{i:04d}"
        name = f"{PLANTED_NAME}{i}"
        sex, age = ("M", "F")[i % 2], 50 + i
        demo_rows.append({"patient_id": patient_id, "sex": sex, "age": age})
        for v in range(visits):
            study_id = f"ACC{seed:02d}{i:04d}{v}"
            label = labels[i]
            n_les = 0 if label == "NoMet" else int(rng.integers(1, 4))
            spots = [
                (
                    int(rng.integers(rows * 0.15, rows * 0.85)),
                    int(rng.integers(cols * 0.3, cols * 0.7)),
                    int(rng.integers(2, 4)),
                )
                for _ in range(n_les)
            ]
            ant = phantom(shape, spots, rng)
            # The posterior view is a left-right mirror of the body, stored as acquired.
            post = phantom(shape, [(r, cols - 1 - c, rad) for r, c, rad in spots], rng, level=1.2)
            stem = f"study_{i:04d}_{v}"
            case_dir = root / "dicom" / f"case_{i:04d}"
            files = write_study(
                case_dir,
                ant,
                post,
                stem=stem,
                layout=layout,
                patient_id=patient_id,
                patient_name=name,
                study_id=study_id,
                study_date=dt.date(2020, 1, 1) + dt.timedelta(days=120 * v + i),
                birth_date="19600101",
                sex=sex,
                age=age,
                accession_number=f"{patient_id}{v}",
                view_naming=view_naming,
                sop_class=sop_class,
                export_header=planted_export_header(i, seed, image_comments=view_naming != "image_comments"),
            )
            label_rows.append({"patient_id": patient_id, "study_id": study_id, "label": label})
            if annotations:
                for view, pts in (("ANT", spots), ("POST", [(r, cols - 1 - c, rad) for r, c, rad in spots])):
                    shapes = [
                        Shape("lesion:punctate:ribs", np.array([[c, r], [c + rad, r]], float), "circle", view)
                        if k % 2 == 0
                        else Shape(
                            "lesion:patchy:thoracic_spine",
                            np.array(
                                [[c - rad, r - rad], [c + rad, r - rad], [c + rad, r + rad], [c - rad, r + rad]], float
                            ),
                            "polygon",
                            view,
                        )
                        for k, (r, c, rad) in enumerate(pts)
                    ]
                    dcm_name = (
                        files[0].name if layout == "multiframe" else next(f.name for f in files if view in f.name)
                    )
                    write_labelme(
                        root / "annotations" / f"{stem}_{view}.json", shapes, image_path=dcm_name, image_hw=shape
                    )
    with open(root / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["patient_id", "study_id", "label"])
        writer.writeheader()
        writer.writerows(label_rows)
    with open(root / "demographics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["patient_id", "sex", "age"])
        writer.writeheader()
        writer.writerows(demo_rows)
    return root


def store_rotated(root: Path, quarter_turns: int, *, patient_position: str | None = None) -> list[Path]:
    """Rewrite a cohort from :func:`make_cohort` as stored turned by ``quarter_turns`` x 90°
    counter-clockwise (every view; 2: head down), with the LabelMe shapes redrawn on the
    stored images and, when given, PatientPosition set. Returns the DICOM files rewritten."""
    import json

    import pydicom

    from scintilab.orientation import rotate, rotate_points

    files = sorted((Path(root) / "dicom").rglob("*.dcm"))
    for f in files:
        ds = pydicom.dcmread(f)
        arr = ds.pixel_array
        out = rotate(arr, quarter_turns).astype(arr.dtype)
        ds.Rows, ds.Columns = int(out.shape[-2]), int(out.shape[-1])
        ds.PixelData = out.tobytes()
        if patient_position is not None:
            ds.PatientPosition = patient_position
        ds.save_as(f)
    for ann in sorted((Path(root) / "annotations").glob("*.json")):
        d = json.loads(ann.read_text())
        hw = (d["imageHeight"], d["imageWidth"])
        for shape in d["shapes"]:
            shape["points"] = rotate_points(np.array(shape["points"], float), hw, quarter_turns).tolist()
        if quarter_turns % 2:
            d["imageHeight"], d["imageWidth"] = hw[1], hw[0]
        ann.write_text(json.dumps(d))
    return files


def store_head_down(root: Path, *, patient_position: str | None = "FFS") -> list[Path]:
    """A cohort from :func:`make_cohort` as a feet-first camera stores it without correction:
    every view turned 180°, PatientPosition ``patient_position`` (None: the header keeps
    HFS), the LabelMe shapes redrawn on the stored images."""
    return store_rotated(root, 2, patient_position=patient_position)


@pytest.fixture
def tmp_cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``tmp_cohort_dir(n=4, labels=None, **options)`` -> a fresh cohort folder.

    Options are those of :func:`make_cohort` (layout, shape, annotations, visits,
    view_naming, seed).
    """

    def factory(n: int = 4, labels: Sequence[str] | None = None, **options) -> Path:
        return make_cohort(tmp_path_factory.mktemp("cohort"), n, labels=labels, **options)

    return factory


@pytest.fixture
def tmp_manifest(tmp_cohort_dir: Callable[..., Path]) -> Callable[..., Path]:
    """Factory: ``tmp_manifest(n=4, labels=None, **options)`` -> an ingested manifest CSV.

    The manifest sits at ``<cohort>/manifest.csv`` (paths in it relative to the cohort).
    """
    from scintilab.ingest import ingest

    def factory(n: int = 4, labels: Sequence[str] | None = None, **options) -> Path:
        root = tmp_cohort_dir(n, labels, **options)
        out = root / "manifest.csv"
        ingest(root / "dicom", root / "labels.csv", root / "annotations", out, progress=False)
        return out

    return factory


@pytest.fixture(autouse=True)
def _isolated_keras_state():
    """After each test that used Keras: the global dtype policy, the global seed state, layer
    name counters and TensorFlow's kernel cache are reset (issue 30), so no test's numbers
    depend on what ran before it in the same process. Tests that never import Keras pay nothing.
    """
    yield
    keras = sys.modules.get("keras")
    if keras is None:
        return
    keras.backend.clear_session(free_memory=False)  # also resets the dtype policy to float32
    keras.config.set_dtype_policy("float32")
