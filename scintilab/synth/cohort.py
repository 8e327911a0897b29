"""Write a synthetic cohort exactly as a hospital export looks (``scintilab synth``).

Layout (see docs/CONVENTIONS.md)::

    OUT/
      dicom/case_0001/case_0001_01.dcm          multiframe (or _ANT.dcm / _POST.dcm pairs)
      annotations/case_0001_01_ANT.json         LabelMe, one per recorded view
      labels.csv                                patient_id, study_id, label
      demographics.csv                          patient_id, sex, age
      truth/<study_id>.json, <study_id>_maps.npz   ground truth (synthetic only)
      cohort.json                               how the cohort was made (size, seed, ...)

The default ``paper`` size mirrors Guo et al. 2022: 506 patients, 1011 images (one ADMet
patient's posterior view was not recorded), image shares 60.7 / 23.4 / 15.8 %.
Each patient is drawn from its own seed ``(seed, case number)``, so the output is the same
bytes for the same arguments, whatever the number of worker processes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scintilab.anatomy import BONES
from scintilab.cohorts import EXPECTED, has_images, manifest_of
from scintilab.dicom_write import write_study
from scintilab.errors import InputError
from scintilab.ingest import ingest
from scintilab.labelme import write_labelme
from scintilab.outputs import RECORD_FILE, file_record_path
from scintilab.study import CLASSES
from scintilab.synth.identity import export_header
from scintilab.synth.phantom import BONE_IDS, PAPER_MATRIX, spacing_for
from scintilab.synth.scan import SynthPatient, SynthStudy, generate_patient, render_study
from scintilab.synth.variety import FAMILIES, VARIETIES, check_variety

#: Patient counts per class for the named sizes (NoMet, ADMet, nADMet).
#: ``paper``: 307 / 119 / 80 patients -> 614 / 237 / 160 images with one POST missing (ADMet).
SIZES: dict[str, int] = {"paper": 506, "small": 120, "tiny": 12}
#: The paper's image shares (614, 237, 160 of 1011).
CLASS_SHARES: dict[str, float] = {"NoMet": 614 / 1011, "ADMet": 237 / 1011, "nADMet": 160 / 1011}

BSI_METHOD = (
    "true_bsi = 100 * sum over bone groups b of (lesion pixels on b / pixels of b) * share_b, "
    "pixels counted on the ANT-orientation projection label maps (truth maps 'bone' and "
    "'lesion'), share_b = scintilab.anatomy.BONE_MASS_FRACTION[b]; benign findings excluded."
)


@dataclass
class CohortInfo:
    """What :func:`write_cohort` wrote.

    Attributes:
        root: the cohort folder.
        labels_csv / demographics_csv: the two tables.
        dicom_dir / annotations_dir / truth_dir: the three folders.
        n_patients / n_studies / n_images: sizes (an image is one view).
        patient_counts / image_counts: per class.
        missing_views: (study_id, view) of views not recorded.
        seconds: wall time of the generation.
    """

    root: Path
    labels_csv: Path
    demographics_csv: Path
    dicom_dir: Path
    annotations_dir: Path
    truth_dir: Path
    n_patients: int
    n_studies: int
    n_images: int
    patient_counts: dict[str, int]
    image_counts: dict[str, int]
    missing_views: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def class_plan(n_patients: int) -> list[str]:
    """Class of each patient (before shuffling), by largest remainder on the paper's shares."""
    raw = {c: CLASS_SHARES[c] * n_patients for c in CLASSES}
    counts = {c: int(np.floor(v)) for c, v in raw.items()}
    left = n_patients - sum(counts.values())
    for c in sorted(CLASSES, key=lambda c: raw[c] - counts[c], reverse=True)[:left]:
        counts[c] += 1
    return [c for c in CLASSES for _ in range(counts[c])]


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Compressed .npz with fixed zip timestamps (np.savez stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            data = io.BytesIO()
            np.lib.format.write_array(data, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, data.getvalue())
    path.write_bytes(buf.getvalue())


def _study_uid(seed: int, patient_id: str, visit: int) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["scintilab-synth", str(seed), patient_id, str(visit)]))


def _write_patient(args: tuple[int, str, str | None, dict[str, Any]]) -> list[dict[str, Any]]:
    """Generate, render and write every visit of one patient (runs in a worker)."""
    index, label, missing, opt = args
    root = Path(opt["root"])
    seed = opt["seed"]
    pat: SynthPatient = generate_patient(
        np.random.default_rng([seed, index]),
        label,
        index=index,
        matrix=tuple(opt["matrix"]) if opt["matrix"] else PAPER_MATRIX,
        visits=opt["visits"],
        seed=seed,
        missing_view=missing,
        variety=opt["variety"],
        draw_matrix=opt["matrix"] is None,
    )
    matrix = pat.matrix
    spacing = pat.phantom.spacing
    case = f"case_{index:04d}"
    rows: list[dict[str, Any]] = []
    for visit in range(pat.visits):
        st: SynthStudy = render_study(pat, np.random.default_rng([seed, index, visit, 3]), visit=visit)
        study_id = f"{st.study_date:%Y%m%d}{index:04d}"
        uid = _study_uid(seed, pat.patient_id, visit)
        stem = f"{case}_{visit + 1:02d}"
        ant = st.anterior if st.anterior is not None else None
        post = st.posterior
        if ant is None:  # the writer needs the ANT slot filled; a POST-only study is a pair file
            raise ValueError('the generator leaves out posterior views only (missing_view="POST")')
        files = write_study(
            root / "dicom" / case,
            ant,
            post,
            stem=stem,
            layout=opt["layout"],
            patient_id=pat.patient_id,
            patient_name=pat.patient_name,
            study_id=study_id,
            study_uid=uid,
            study_date=st.study_date,
            pixel_spacing=spacing,
            birth_date=pat.birth_date.strftime("%Y%m%d"),
            sex=pat.sex,
            age=pat.age + (st.study_date - pat.visit_dates[0]).days // 365,
            accession_number=f"A{seed % 1000:03d}{index:05d}{visit:02d}",
            export_header=export_header(index, seed, pat.patient_name),
        )
        by_view: dict[str, str] = {}
        for f in files:
            by_view["POST" if f.stem.endswith("_POST") else "ANT"] = f.name
        for view, img in (("ANT", st.anterior), ("POST", st.posterior)):
            if img is None:
                continue
            write_labelme(
                root / "annotations" / f"{stem}_{view}.json",
                [s for s in st.shapes if s.view == view],
                image_path=by_view.get(view, files[0].name),
                image_hw=img.shape,
            )
        truth = {
            "study_id": study_id,
            "study_uid": uid,
            "patient_id": pat.patient_id,
            "case": case,
            "label": pat.label,
            "visit": visit,
            "date": st.study_date.isoformat(),
            "baseline_date": pat.visit_dates[0].isoformat(),
            "files": [str(f.relative_to(root)) for f in files],
            "annotations": [
                f"annotations/{stem}_{v}.json"
                for v, img in (("ANT", st.anterior), ("POST", st.posterior))
                if img is not None
            ],
            "missing_view": pat.missing_view,
            "matrix": list(matrix),
            "pixel_spacing": list(spacing),
            "post_shift_rc": list(st.shift_rc),
            "post_shift_note": "stored POST[r, c] = fliplr(POST in ANT orientation)[r - rows, c - cols]",
            "counts": st.counts,
            "sex": pat.sex,
            "age": pat.age,
            "height_mm": round(pat.anatomy.height_mm, 1),
            "thickness_cm": {k: round(v, 2) for k, v in pat.anatomy.thickness_cm.items()},
            "lesions": st.lesions,
            "n_new_lesions": int(sum(1 for les in st.lesions if les["new"])),
            "benign": st.benign,
            "true_bsi": st.true_bsi,
            "bsi_method": BSI_METHOD,
            "involved_fraction": st.involved_fraction,
            "bone_ids": BONE_IDS,
        }
        if pat.variety.clinic:  # narrow truth stays as it was (tests pin it)
            truth["variety"] = {"patient": pat.variety.record(), "visit": st.variety.record(), "cut_row": st.cut_row}
            truth["families"] = st.families
            if st.superscan is not None:
                truth["superscan"] = st.superscan
        tdir = root / "truth"
        (tdir / f"{study_id}.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
        _save_npz(
            tdir / f"{study_id}_maps.npz",
            {
                "bone": st.bone_maps,
                "lesion": st.lesion_maps,
                "benign": st.benign_maps,
                "body": st.body_map.astype(np.uint8),
            },
        )
        rows.append(
            {
                "patient_id": pat.patient_id,
                "study_id": study_id,
                "label": pat.label,
                "sex": pat.sex,
                "age": pat.age,
                "visit": visit,
                "views": int(st.anterior is not None) + int(st.posterior is not None),
                "missing": pat.missing_view,
            }
        )
    return rows


def write_cohort(
    out_dir: str | Path,
    *,
    n_patients: int | None = None,
    size: str = "paper",
    seed: int = 0,
    layout: str = "multiframe",
    visits: int = 1,
    matrix: tuple[int, int] | None = None,
    progress: bool = True,
    workers: int = 1,
    missing_views: int | None = None,
    variety: str = "narrow",
) -> CohortInfo:
    """Write a synthetic cohort (DICOM + LabelMe + CSV + ground truth).

    Args:
        out_dir: the cohort folder (created; must be empty or a cohort written before).
        n_patients: number of patients (default: from ``size``).
        size: ``paper`` (506), ``small`` (120) or ``tiny`` (12); same class shares.
        seed: cohort seed; the same arguments give the same bytes.
        layout: ``multiframe`` (one file, 2 frames) or ``pair`` (``_ANT`` / ``_POST`` files).
        visits: studies per patient, months apart (issue 13's follow-up scans).
        matrix: (rows, cols); smaller matrices keep the field of view (larger pixels).
            None: the paper's for ``narrow``; drawn per patient for ``clinic``
            (:data:`scintilab.synth.variety.CLINIC_MATRICES`); given, it holds for all.
        progress: show a tqdm bar.
        workers: processes (1 = in this process).
        missing_views: how many posterior views were not recorded (default 1 for
            ``paper``/``small``, 0 for ``tiny``); taken from ADMet patients, as in the paper.
        variety: ``narrow`` (the generator the analysis was tuned on; the library default,
            which tests rely on) or ``clinic`` (habitus, pose, field of view, matrix, counts,
            camera, findings anywhere: :mod:`scintilab.synth.variety`; the CLI's default).

    Returns:
        A :class:`CohortInfo`.

    Raises:
        ValueError: bad size, layout, visits or matrix; or ``out_dir`` holds other files.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {list(SIZES)}, got {size!r}")
    if layout not in ("multiframe", "pair"):
        raise ValueError(f"layout must be 'multiframe' or 'pair', got {layout!r}")
    if visits < 1:
        raise ValueError(f"visits must be >= 1, got {visits}")
    check_variety(variety)
    if matrix is None and variety == "narrow":
        matrix = PAPER_MATRIX
    if matrix is not None:
        rows_, cols_ = (int(v) for v in matrix)
        if rows_ < 64 or cols_ < 16:
            raise ValueError(f"matrix {matrix} too small (at least 64 x 16)")
    root = Path(out_dir)
    if root.exists() and any(root.iterdir()) and not (root / "cohort.json").exists():
        raise ValueError(f"{root} is not empty and holds no synthetic cohort; refusing to write into it")
    n = SIZES[size] if n_patients is None else int(n_patients)
    if n < 1:
        raise ValueError(f"n_patients must be >= 1, got {n}")
    t0 = time.perf_counter()
    plan = class_plan(n)
    order = np.random.default_rng([seed, 4242]).permutation(n)
    labels = [plan[i] for i in order]
    if missing_views is None:
        missing_views = 0 if size == "tiny" and n_patients is None else int(n >= 50)
    admet = [i for i, lab in enumerate(labels) if lab == "ADMet"]
    missing_idx = set(admet[-missing_views:]) if missing_views and admet else set()
    for sub in ("dicom", "annotations", "truth"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    opt = {
        "root": str(root),
        "seed": int(seed),
        "matrix": None if matrix is None else (rows_, cols_),
        "visits": int(visits),
        "layout": layout,
        "variety": variety,
    }
    jobs = [(i + 1, labels[i], "POST" if i in missing_idx else None, opt) for i in range(n)]
    results: list[list[dict[str, Any]]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="synth", unit="patient", file=sys.stderr)
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for res in pool.imap(_write_patient, jobs, chunksize=4):
                results.append(res)
                if bar:
                    bar.update(1)
    else:
        for job in jobs:
            results.append(_write_patient(job))
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    study_rows = [r for res in results for r in res]
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "study_id", "label"])
        for r in study_rows:
            w.writerow([r["patient_id"], r["study_id"], r["label"]])
    with open(root / "demographics.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "sex", "age"])
        for r in study_rows:
            if r["visit"] == 0:
                w.writerow([r["patient_id"], r["sex"], r["age"]])
    patient_counts = {c: sum(1 for lab in labels if lab == c) for c in CLASSES}
    image_counts = {c: sum(r["views"] for r in study_rows if r["label"] == c) for c in CLASSES}
    missing = [(r["study_id"], r["missing"]) for r in study_rows if r["missing"]]
    meta = {
        "generator": "scintilab.synth",
        "size": size,
        "n_patients": n,
        "seed": int(seed),
        "layout": layout,
        "visits": int(visits),
        "variety": variety,
        "matrix": None if matrix is None else [rows_, cols_],
        "pixel_spacing": None if matrix is None else list(spacing_for((rows_, cols_))),
        "patients_per_class": patient_counts,
        "images_per_class": image_counts,
        "missing_views": [list(m) for m in missing],
        "bone_ids": BONE_IDS,
        "bones": list(BONES),
        "bsi_method": BSI_METHOD,
    }
    (root / "cohort.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return CohortInfo(
        root=root,
        labels_csv=root / "labels.csv",
        demographics_csv=root / "demographics.csv",
        dicom_dir=root / "dicom",
        annotations_dir=root / "annotations",
        truth_dir=root / "truth",
        n_patients=n,
        n_studies=len(study_rows),
        n_images=sum(r["views"] for r in study_rows),
        patient_counts=patient_counts,
        image_counts=image_counts,
        missing_views=missing,
        seconds=time.perf_counter() - t0,
    )


def ensure_cohort(
    data_dir: str | Path,
    *,
    size: str = "small",
    seed: int = 0,
    matrix: tuple[int, int] | None = None,
    progress: bool = True,
    manifest_name: str = "manifest.csv",
    n_patients: int | None = None,
    visits: int = 1,
    variety: str = "narrow",
) -> Path:
    """Make sure ``data_dir`` holds a cohort and its manifest; return the manifest path.

    A manifest CSV given as ``data_dir`` is used as it is, and so is a folder that already
    holds a manifest (it need not be synthetic). A missing or empty folder gets a synthetic
    cohort of ``size`` first. A folder of images without a manifest (a cohort's ``dicom/``
    beside its labels, or a hospital export itself) is ingested, never written into
    beyond its new manifest; a folder with neither is refused in one sentence.

    Args:
        data_dir: the cohort folder, or a manifest CSV.
        size / seed / matrix / n_patients / visits / variety: passed to :func:`write_cohort` when a
            cohort is written (ignored for a folder that holds one).
        progress: progress bars.
        manifest_name: the manifest file inside ``data_dir``.

    Returns:
        The manifest CSV path.

    Raises:
        InputError: ``data_dir`` is a file that is not a CSV, or a folder holding neither a
            manifest nor images.
    """
    root = Path(data_dir)
    if root.is_file():
        return manifest_of(root)
    manifest = root / manifest_name
    if manifest.exists():
        return manifest
    if not root.exists() or not any(root.iterdir()):
        write_cohort(
            root,
            size=size,
            seed=seed,
            matrix=matrix,
            progress=progress,
            n_patients=n_patients,
            visits=visits,
            variety=variety,
        )
    source = root / "dicom" if (root / "dicom").is_dir() else root
    if not has_images(source):
        raise InputError(root, f"a folder with neither {manifest_name} nor images to ingest: {EXPECTED}")
    labels = root / "labels.csv"
    ann = root / "annotations"
    ingest(source, labels if labels.exists() else None, ann if ann.is_dir() else None, manifest, progress=progress)
    return manifest


def _matrix(text: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"matrix must look like 1024x256, got {text!r}") from None
    return r, c


def clear_cohort(root: str | Path) -> None:
    """Remove a synthetic cohort from ``root`` and what was made from it (manifest, audit).

    Only the generator's files and the files ingest and audit derive from them go; anything
    else a user put in the folder stays. A rewrite with fewer patients then leaves no old
    case behind, and no manifest or audit describes a cohort that is gone.
    """
    import shutil

    from scintilab.audit.core import AUDIT_OUTPUTS

    root = Path(root)
    for sub in ("dicom", "annotations", "truth"):
        shutil.rmtree(root / sub, ignore_errors=True)
    # cohort.json stays: it marks the folder as the generator's, which write_cohort then rewrites
    derived = [
        "labels.csv",
        "demographics.csv",
        "manifest.csv",
        "skipped.csv",
        file_record_path(root / "manifest.csv").name,
    ]
    derived += [f"audit/{name}" for name in (*AUDIT_OUTPUTS, RECORD_FILE)]
    for name in derived:
        (root / name).unlink(missing_ok=True)


def cli_main(argv: list[str]) -> int:
    """``scintilab synth OUT_DIR [--patients N] [--size paper|small|tiny] [--seed 0] ...``."""
    parser = argparse.ArgumentParser(
        prog="scintilab synth",
        description="Write the built-in synthetic cohort: whole-body bone scans as DICOM, LabelMe "
        "annotations, labels.csv, demographics.csv and ground truth (truth/).",
    )
    parser.add_argument(
        "out_dir", type=Path, help="cohort folder to write (new or empty; an earlier cohort needs --overwrite)"
    )
    parser.add_argument("--patients", type=int, default=None, help="number of patients (default: from --size)")
    parser.add_argument(
        "--size",
        choices=list(SIZES),
        default="paper",
        help="paper: 506 patients as in Guo et al. 2022; small: 120; tiny: 12",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    parser.add_argument(
        "--layout",
        choices=["multiframe", "pair"],
        default="multiframe",
        help="one 2-frame DICOM per study, or an _ANT/_POST file pair",
    )
    parser.add_argument("--visits", type=int, default=1, help="studies per patient, months apart (follow-up)")
    parser.add_argument(
        "--matrix",
        type=_matrix,
        default=None,
        help="ROWSxCOLS for every patient (default: drawn per patient for clinic, 1024x256 for narrow)",
    )
    parser.add_argument(
        "--variety",
        choices=list(VARIETIES),
        default="clinic",
        help="clinic (default): thin to obese, arms raised or missing, cut fields of view, three matrices, "
        "0.5-6 M counts, 6-14 mm cameras, findings anywhere; narrow: the generator the analysis was tuned "
        "on (average builds, arms at the sides, one matrix)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier cohort in OUT_DIR, and the manifest and audit made from it",
    )
    args = parser.parse_args(argv)
    root = args.out_dir
    if root.exists() and not root.is_dir():
        raise InputError(root, "is a file, not a folder: OUT_DIR of scintilab synth is the cohort folder to write")
    if (root / "cohort.json").exists():
        if not args.overwrite:
            raise InputError(
                root,
                "already holds a synthetic cohort; pass --overwrite to replace it (and the "
                "manifest and audit made from it), or choose another folder",
            )
        clear_cohort(root)
    try:
        info = write_cohort(
            args.out_dir,
            n_patients=args.patients,
            size=args.size,
            seed=args.seed,
            layout=args.layout,
            visits=args.visits,
            matrix=args.matrix,
            progress=not args.quiet,
            workers=args.workers,
            variety=args.variety,
        )
    except ValueError as err:
        print(f"scintilab synth: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {info.n_patients} patients, {info.n_studies} studies, {info.n_images} images "
        f"to {info.root} in {info.seconds:.1f} s"
    )
    print("patients per class: " + ", ".join(f"{k} {v}" for k, v in info.patient_counts.items()))
    print("images per class:   " + ", ".join(f"{k} {v}" for k, v in info.image_counts.items()))
    if args.variety == "clinic":
        print(f"variety: clinic (families per study in truth/*.json; known: {', '.join(FAMILIES)})")
    if info.missing_views:
        print(f"views not recorded: {len(info.missing_views)}")
    return 0
