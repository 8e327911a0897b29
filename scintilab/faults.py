"""Plant known faults into a cohort, for tests and demonstrations of the cohort audit.

Every fault the audit is meant to find can be made here on purpose, so its detection rate
can be measured instead of hoped for: copies of a study under new ids and UIDs (exact,
shifted, cropped, requantised, lossy-like, re-exported at another matrix size), views
swapped, an anterior view stored mirrored, a head-down image, partial sweeps, a tenth of
the counts, saturation, an empty frame, spot views, and a re-acquisition of a patient
under a new patient id.

Two levels:

* :func:`apply_fault` / :func:`plant_faults` work on :class:`~scintilab.study.Study`
  records in memory (fast; what the unit tests and benchmarks use);
* :func:`plant_faults_on_disk` copies a DICOM cohort folder and writes the faulty studies
  into the copy with pydicom, so ingest and ``scintilab audit`` see real files. The source
  cohort is only ever read.

The "truth" table both return has columns ``kind, study_a, study_b, detail``: ``study_a``
is the faulty study, ``study_b`` the original it was copied from (empty for a fault of
one study). Keys are pseudonymous study keys, as in the manifest.
"""

from __future__ import annotations

import copy
import csv
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from scintilab.fusion import shift_image
from scintilab.ingest import ingest, load_cohort
from scintilab.manifest import read_manifest
from scintilab.pseudonym import patient_key, study_key
from scintilab.study import Study
from scintilab.utils import as_rng

#: Faults that add a new study copied from an existing one (a pair in the truth table).
PAIR_FAULTS: tuple[str, ...] = (
    "exact_copy",
    "shifted_copy",
    "cropped_copy",
    "requantised_copy",
    "lossy_copy",
    "rematrixed_copy",
    "reacquired",
)
#: Faults that change one study in place (the study itself becomes faulty).
STUDY_FAULTS: tuple[str, ...] = (
    "swapped_views",
    "mirrored_ant",
    "head_down",
    "partial_sweep",
    "tenth_counts",
    "saturated",
    "empty_frame",
    "spot_view",
)
ALL_FAULTS: tuple[str, ...] = PAIR_FAULTS + STUDY_FAULTS
#: File that marks a folder as a faulty copy made by :func:`faulty_copy` (safe to replace).
MARKER = "PLANTED_FAULTS.txt"

#: The audit finding kind that should report each planted fault.
EXPECTED_KIND: dict[str, str] = {
    "exact_copy": "exact_duplicate",
    "shifted_copy": "near_duplicate",
    "cropped_copy": "near_duplicate",
    "requantised_copy": "near_duplicate",
    "lossy_copy": "near_duplicate",
    "rematrixed_copy": "near_duplicate",
    "reacquired": "same_patient",
    "swapped_views": "swapped_views",
    "mirrored_ant": "mirrored_view",
    "head_down": "head_down",
    "partial_sweep": "partial_sweep",
    "tenth_counts": "counts_outlier",
    "saturated": "saturation",
    "empty_frame": "empty_frame",
    "spot_view": "spot_view",
}


def _views(study: Study) -> tuple[np.ndarray | None, np.ndarray | None]:
    return study.anterior, study.posterior


def _map_views(study: Study, fn: Callable[[np.ndarray], np.ndarray]) -> tuple:
    return tuple(None if v is None else fn(v) for v in _views(study))


def _u16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 65535).astype(np.uint16)


def _shift_image(img: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """Shift with zero fill (what a bed offset looks like: background enters at an edge)."""
    return shift_image(img, dr, dc).astype(img.dtype)


def _body_rows(img: np.ndarray) -> tuple[int, int]:
    """First and last rows holding body uptake (a coarse sweep, as the critical points)."""
    prof = ndi.uniform_filter1d(img.astype(np.float64).mean(axis=1), 5)
    thr = 0.1 * np.percentile(prof, 99)
    idx = np.nonzero(prof > thr)[0]
    if idx.size == 0:
        return 0, img.shape[0] - 1
    return int(idx[0]), int(idx[-1])


def apply_fault(study: Study, kind: str, rng: np.random.Generator | int | None = None, *, tag: str = "0") -> Study:
    """Return a faulty version of ``study`` (the input record is not changed).

    Args:
        study: a clean study (ANT and POST as stored).
        kind: one of :data:`ALL_FAULTS`.
        rng: randomness for the fault's parameters.
        tag: makes the new ids of a copied study unique (``PAIR_FAULTS`` only).

    Returns:
        For :data:`PAIR_FAULTS` a new study with new study and patient keys (the copy);
        for :data:`STUDY_FAULTS` the same study (same keys) with faulty pixels.

    Raises:
        ValueError: an unknown ``kind``.
    """
    rng = as_rng(rng)
    ant, post = _views(study)
    spacing = tuple(study.pixel_spacing)
    meta = dict(study.meta)
    meta["planted_fault"] = kind

    if kind == "exact_copy":
        new = (ant, post)
    elif kind == "shifted_copy":
        # A few pixels to a few centimetres: a re-export after re-registration or cropping.
        dr, dc = int(rng.integers(-12, 13)), int(rng.integers(-4, 5))
        dr = dr if dr else 7
        new = _map_views(study, lambda v: _shift_image(v, dr, dc))
        meta["fault_detail"] = f"shifted by {dr} rows, {dc} columns"
    elif kind == "cropped_copy":
        # Cropped to (most of) the margins around the body, as an export "to the patient".
        rows, cols = study.shape_hw
        ref = ant if ant is not None else post
        top, bottom = _body_rows(ref)
        t = int(rng.integers(0, max(1, top) + 1))
        b = int(rng.integers(0, max(1, rows - 1 - bottom) + 1))
        lr = int(rng.integers(0, cols // 16 + 1))
        new = _map_views(study, lambda v: v[t : rows - b, lr : cols - lr].copy())
        meta["fault_detail"] = f"cropped {t} rows top, {b} bottom, {lr} columns each side"
    elif kind == "requantised_copy":
        # Rescaled to another intensity range and rounded: an export through 8 or 12 bits.
        factor = float(rng.choice([0.25, 0.4, 2.5, 4.0]))
        new = _map_views(study, lambda v: _u16(v.astype(np.float64) * factor))
        meta["fault_detail"] = f"intensity x{factor}, rounded"
    elif kind == "lossy_copy":
        # Lossy-compression-like: coarse quantisation plus small noise (JPEG artefacts are
        # blocky quantisation error; this keeps the same order of error without a codec).
        step = float(rng.choice([2.0, 3.0]))

        def lossy(v: np.ndarray) -> np.ndarray:
            q = np.round(v.astype(np.float64) / step) * step
            return _u16(q + rng.normal(0.0, 0.5 * step, v.shape))

        new = _map_views(study, lossy)
        meta["fault_detail"] = f"quantised in steps of {step:g} plus noise"
    elif kind == "rematrixed_copy":
        # Re-exported at half the matrix (2x2 counts summed) or double (each count spread).
        rows, cols = study.shape_hw
        if rows % 2 == 0 and cols % 2 == 0 and rng.random() < 0.7:
            new = _map_views(study, lambda v: _u16(v.reshape(rows // 2, 2, cols // 2, 2).sum(axis=(1, 3))))
            spacing = (spacing[0] * 2, spacing[1] * 2)
            meta["fault_detail"] = "re-exported at half the matrix"
        else:
            new = _map_views(study, lambda v: np.repeat(np.repeat(v, 2, axis=0), 2, axis=1))
            spacing = (spacing[0] / 2, spacing[1] / 2)
            meta["fault_detail"] = "re-exported at double the matrix"
    elif kind == "reacquired":
        # Another acquisition of the same body: the noise-free image estimated by smoothing,
        # other counts, another bed position, new Poisson noise. A stand-in for a second
        # visit filed under a new patient id (a generator's second visit is better).
        scale = float(rng.uniform(0.7, 1.4))
        ref = ant if ant is not None else post
        top, bottom = _body_rows(ref)
        dr = int(rng.integers(-min(10, top // 2), min(10, (ref.shape[0] - 1 - bottom) // 2) + 1))
        dc = int(rng.integers(-3, 4))

        def reacq(v: np.ndarray) -> np.ndarray:
            lam = ndi.gaussian_filter(v.astype(np.float64), 0.8) * scale
            return _u16(rng.poisson(np.clip(_shift_image(lam, dr, dc), 0, None)))

        new = _map_views(study, reacq)
        meta["fault_detail"] = f"re-acquired at x{scale:.2f} counts, moved {dr},{dc} px"
    elif kind == "swapped_views":
        new = (post, ant)
    elif kind == "mirrored_ant":
        new = (None if ant is None else ant[:, ::-1].copy(), post)
    elif kind == "head_down":
        new = _map_views(study, lambda v: v[::-1, :].copy())
    elif kind == "partial_sweep":
        # The sweep stopped early (lower body missing) or started inside the body (head cut).
        ref = ant if ant is not None else post
        top, bottom = _body_rows(ref)
        length = bottom - top
        if rng.random() < 0.5:
            cut = top + int(length * rng.uniform(0.5, 0.75))

            def stop(v: np.ndarray) -> np.ndarray:
                out = v.copy()
                out[cut:] = 0
                return out

            new = _map_views(study, stop)
            meta["fault_detail"] = f"sweep stopped at {100 * (cut - top) / length:.0f}% of the body"
        else:
            lost = int(length * rng.uniform(0.12, 0.3))
            new = _map_views(study, lambda v: _shift_image(v, -(top + lost), 0))
            meta["fault_detail"] = f"top {100 * lost / length:.0f}% of the body outside the field"
    elif kind == "tenth_counts":
        new = _map_views(study, lambda v: rng.binomial(v.astype(np.int64), 0.1).astype(np.uint16))
    elif kind == "saturated":
        # Counts clipped at a ceiling (an 8-bit export, or a count-rate limit).
        def sat(v: np.ndarray) -> np.ndarray:
            body = v[v > 0]
            ceiling = max(1, int(np.percentile(body, 98))) if body.size else 1
            return np.minimum(v, ceiling).astype(np.uint16)

        new = _map_views(study, sat)
    elif kind == "empty_frame":
        which = int(rng.integers(0, 2))
        views = list(_views(study))
        if views[which] is None:
            which = 1 - which
        views[which] = np.zeros_like(views[which])
        new = tuple(views)
        meta["fault_detail"] = f"{('ANT', 'POST')[which]} empty"
    elif kind == "spot_view":
        rows, cols = study.shape_hw
        ref = ant if ant is not None else post
        top, bottom = _body_rows(ref)
        r0 = int(np.clip(top + 0.15 * (bottom - top), 0, max(0, rows - cols)))
        new = _map_views(study, lambda v: v[r0 : r0 + cols, :].copy())
    else:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {ALL_FAULTS}")

    if kind in PAIR_FAULTS:
        skey = study_key(f"planted-{kind}-{tag}-{study.study_key}")
        pkey = patient_key(f"planted-{kind}-{tag}-{study.patient_key}")
        return Study(skey, pkey, new[0], new[1], spacing, study.label, [], study.study_date, [], [], meta)
    return replace(
        study, anterior=new[0], posterior=new[1], pixel_spacing=spacing, shapes=[], meta=meta, flags=list(study.flags)
    )


def plant_faults(
    studies: Sequence[Study],
    kinds: Sequence[str] = ALL_FAULTS,
    per_kind: int = 1,
    rng: np.random.Generator | int | None = None,
) -> tuple[list[Study], pd.DataFrame]:
    """Plant ``per_kind`` faults of each kind into a copy of a cohort held in memory.

    Each fault uses its own victim (studies changed in place are never reused, and a
    copied study is never also changed), so the studies not named in the truth table are
    clean.

    Args:
        studies: the clean cohort.
        kinds: fault kinds from :data:`ALL_FAULTS`.
        per_kind: how many of each.
        rng: randomness for choosing victims and fault parameters.

    Returns:
        ``(studies, truth)``: the cohort with faulty studies changed and copies appended,
        and the truth table (``kind, study_a, study_b, expected, detail``).

    Raises:
        ValueError: the cohort is too small for the faults asked for.
    """
    rng = as_rng(rng)
    studies = [copy.copy(s) for s in studies]
    need = len(kinds) * per_kind
    if need > len(studies):
        raise ValueError(f"{need} faults need at least {need} studies; the cohort has {len(studies)}")
    victims = iter(rng.permutation(len(studies)).tolist())
    rows: list[dict[str, str]] = []
    added: list[Study] = []
    for kind in kinds:
        for j in range(per_kind):
            i = next(victims)
            faulty = apply_fault(studies[i], kind, rng, tag=f"{j}")
            detail = str(faulty.meta.get("fault_detail", kind.replace("_", " ")))
            if kind in PAIR_FAULTS:
                added.append(faulty)
                rows.append(
                    {
                        "kind": kind,
                        "study_a": faulty.study_key,
                        "study_b": studies[i].study_key,
                        "expected": EXPECTED_KIND[kind],
                        "detail": detail,
                    }
                )
            else:
                studies[i] = faulty
                rows.append(
                    {
                        "kind": kind,
                        "study_a": faulty.study_key,
                        "study_b": "",
                        "expected": EXPECTED_KIND[kind],
                        "detail": detail,
                    }
                )
    truth = pd.DataFrame(rows, columns=["kind", "study_a", "study_b", "expected", "detail"])
    return studies + added, truth


# ----------------------------------------------------------------------------- on disk


def _write_pixels(
    src: Path, dst: Path, frames: list[np.ndarray], spacing: tuple[float, float], new_ids: dict[str, str] | None
) -> None:
    """Copy one DICOM file with new pixel data (and optionally new ids), via pydicom."""
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(src)
    arr = np.stack(frames) if len(frames) > 1 else frames[0]
    ds.Rows, ds.Columns = int(arr.shape[-2]), int(arr.shape[-1])
    if len(frames) > 1 or "NumberOfFrames" in ds:
        ds.NumberOfFrames = len(frames)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelSpacing = [f"{spacing[0]:.6g}", f"{spacing[1]:.6g}"]
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.PixelData = arr.astype("<u2").tobytes()
    for kw in ("LargestImagePixelValue", "SmallestImagePixelValue", "WindowCenter", "WindowWidth"):
        if kw in ds:
            delattr(ds, kw)
    if new_ids:
        for kw, val in new_ids.items():
            setattr(ds, kw, val)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)


def plant_faults_on_disk(
    cohort_dir: str | Path,
    out_dir: str | Path,
    manifest: str | Path | pd.DataFrame,
    kinds: Sequence[str] = ALL_FAULTS,
    per_kind: int = 1,
    rng: np.random.Generator | int | None = None,
) -> pd.DataFrame:
    """Copy a DICOM cohort to ``out_dir`` and plant faults in the copy.

    Copies keep the original's label (a row is added to ``labels.csv``) under a new
    PatientID, StudyID and Study/Series/SOP Instance UIDs. Faults of one study rewrite
    that study's files in the copy. Annotations of changed studies are removed from the
    copy (they no longer match the pixels).

    Args:
        cohort_dir: the clean cohort (read only).
        out_dir: where the faulty cohort is written (must not exist or be empty).
        manifest: ingest's manifest of ``cohort_dir`` (paths relative to its folder).
        kinds: fault kinds from :data:`ALL_FAULTS`.
        per_kind: how many of each.
        rng: randomness.

    Returns:
        The truth table, with study keys as ingest will compute them in ``out_dir``.
    """
    import pydicom
    from pydicom.uid import generate_uid

    rng = as_rng(rng)
    cohort_dir, out_dir = Path(cohort_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: not empty; faults are planted into a fresh copy")
    man_path = None if isinstance(manifest, pd.DataFrame) else Path(manifest)
    man = manifest if isinstance(manifest, pd.DataFrame) else pd.read_csv(man_path)
    base = man_path.parent if man_path is not None else cohort_dir
    shutil.copytree(cohort_dir, out_dir, ignore=shutil.ignore_patterns("manifest*.csv", "truth"))
    cohort = load_cohort(man_path if man_path is not None else man)
    ok = [i for i in range(len(man)) if str(man.iloc[i].get("status", "ok")) == "ok"]
    need = len(kinds) * per_kind
    if need > len(ok):
        raise ValueError(f"{need} faults need at least {need} usable studies; the manifest has {len(ok)}")
    victims = iter(rng.permutation(ok).tolist())
    labels_rows: list[dict[str, str]] = []
    truth: list[dict[str, str]] = []

    def src_path(p: str) -> Path:
        p = Path(p)
        return p if p.is_absolute() else (base / p)

    def out_path(p: Path) -> Path:
        return out_dir / p.resolve().relative_to(cohort_dir.resolve())

    for kind in kinds:
        for j in range(per_kind):
            i = next(victims)
            row = man.iloc[i]
            study = cohort[i]
            faulty = apply_fault(study, kind, rng, tag=str(j))
            ant_src = src_path(row["ant_path"]) if isinstance(row.get("ant_path"), str) else None
            post_src = src_path(row["post_path"]) if isinstance(row.get("post_path"), str) else None
            head = pydicom.dcmread(ant_src or post_src, stop_before_pixels=True)
            new_ids = None
            if kind in PAIR_FAULTS:
                uid = generate_uid()
                pid = f"PLANT{kind[:4].upper()}{j:02d}{i:04d}"
                sid = f"PL{j:02d}{i:04d}"
                new_ids = {
                    "PatientID": pid,
                    "PatientName": f"Planted^{kind}",
                    "StudyID": sid,
                    "StudyInstanceUID": uid,
                    "SeriesInstanceUID": generate_uid(),
                }
                labels_rows.append({"patient_id": pid, "study_id": sid, "label": study.label or ""})
                skey = study_key(uid)
                truth.append(
                    {
                        "kind": kind,
                        "study_a": skey,
                        "study_b": study.study_key,
                        "expected": EXPECTED_KIND[kind],
                        "detail": str(faulty.meta.get("fault_detail", kind)),
                    }
                )
            else:
                truth.append(
                    {
                        "kind": kind,
                        "study_a": study_key(str(head.StudyInstanceUID)),
                        "study_b": "",
                        "expected": EXPECTED_KIND[kind],
                        "detail": str(faulty.meta.get("fault_detail", kind.replace("_", " "))),
                    }
                )
            views = {"ANT": faulty.anterior, "POST": faulty.posterior}
            for v in views:
                if views[v] is None:  # keep geometry consistent for a missing view
                    other = views["POST" if v == "ANT" else "ANT"]
                    views[v] = np.zeros_like(other)
            if ant_src is not None and post_src is not None and ant_src == post_src:
                frames = [None, None]
                frames[int(row.get("ant_frame", 0) or 0)] = views["ANT"]
                frames[int(row.get("post_frame", 1) or 1)] = views["POST"]
                dst = out_path(ant_src)
                if kind in PAIR_FAULTS:
                    dst = dst.with_name(f"{dst.stem}_plant{j}{kind[:3]}{dst.suffix}")
                _write_pixels(ant_src, dst, frames, faulty.pixel_spacing, new_ids)
            else:
                for v, src in (("ANT", ant_src), ("POST", post_src)):
                    if src is None:
                        continue
                    dst = out_path(src)
                    if kind in PAIR_FAULTS:
                        dst = dst.with_name(dst.stem.replace(f"_{v}", "") + f"_plant{j}{kind[:3]}_{v}{dst.suffix}")
                    _write_pixels(src, dst, [views[v]], faulty.pixel_spacing, new_ids)
            if kind not in PAIR_FAULTS:
                for ann in ("annotation_ant", "annotation_post"):
                    a = row.get(ann)
                    if isinstance(a, str) and a:
                        target = out_path(src_path(a))
                        if target.exists():
                            target.unlink()
    if labels_rows:
        with open(out_dir / "labels.csv", "a", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["patient_id", "study_id", "label"])
            w.writerows(labels_rows)
    return pd.DataFrame(truth, columns=["kind", "study_a", "study_b", "expected", "detail"])


def faulty_copy(
    cohort_dir: str | Path,
    out_dir: str | Path,
    per_kind: int = 1,
    kinds: Sequence[str] | None = None,
    rng: np.random.Generator | int | None = 0,
) -> tuple[Path, pd.DataFrame]:
    """A copy of an ingested cohort with faults planted, ingested again (for demos).

    Kinds are planted in :data:`ALL_FAULTS` order until the cohort runs out of studies, so
    a tiny cohort gets the first few kinds.

    Args:
        cohort_dir: a cohort folder holding ``manifest.csv`` (read only).
        out_dir: the faulty copy; its manifest is ``out_dir/manifest.csv``. Must be new or
            an earlier faulty copy (which is replaced); any other folder is refused.
        per_kind: faults of each kind.
        kinds: fault kinds (default all that fit).
        rng: randomness.

    Returns:
        ``(manifest path of the copy, truth table)``.
    """
    cohort_dir, out_dir = Path(cohort_dir), Path(out_dir)
    if out_dir.exists() and (out_dir / MARKER).exists():
        shutil.rmtree(out_dir)  # an earlier faulty copy made here: safe to replace
    man = read_manifest(cohort_dir / "manifest.csv")
    usable = int((man["status"] == "ok").sum()) if "status" in man else len(man)
    kinds = list(kinds or ALL_FAULTS)[: max(0, usable // max(1, per_kind))]
    truth = plant_faults_on_disk(cohort_dir, out_dir, cohort_dir / "manifest.csv", kinds, per_kind, rng)
    (out_dir / MARKER).write_text("A copy of a cohort with faults planted by scintilab.faults (a demo).\n")
    truth.to_csv(out_dir / "planted_faults.csv", index=False)
    ann = out_dir / "annotations"
    labels = out_dir / "labels.csv"
    ingest(
        out_dir / "dicom", labels if labels.exists() else None, ann if ann.exists() else None, out_dir / "manifest.csv"
    )
    return out_dir / "manifest.csv", truth


def score_detection(flags: pd.DataFrame, truth: pd.DataFrame, all_studies: Sequence[str]) -> tuple[pd.DataFrame, float]:
    """How many planted faults the audit found, per kind, and how many clean studies it flagged.

    A planted fault counts as found when a finding of its expected kind names the faulty
    study (and, for a copy, its original). Clean studies are those the truth table does
    not name.

    Args:
        flags: the audit's flags table.
        truth: the truth table from :func:`plant_faults` / :func:`plant_faults_on_disk`.
        all_studies: every study key in the audited cohort.

    Returns:
        ``(table, clean_rate)``: per fault kind ``planted, found, rate``; and the share of
        clean studies named in any finding.
    """
    f = flags.copy()
    f["study_b"] = f["study_b"].fillna("").astype(str)
    pairs = {(k, frozenset((a, b))) for k, a, b in zip(f["kind"], f["study_a"], f["study_b"]) if b}
    singles = {(k, a) for k, a, b in zip(f["kind"], f["study_a"], f["study_b"]) if not b}
    rows = []
    for kind, grp in truth.groupby("kind", sort=False):
        found = 0
        for _, t in grp.iterrows():
            b = str(t["study_b"] or "")
            found += int(
                (t["expected"], frozenset((t["study_a"], b))) in pairs
                if b
                else (t["expected"], t["study_a"]) in singles
            )
        rows.append(
            {
                "fault": kind,
                "expected finding": grp["expected"].iloc[0],
                "planted": len(grp),
                "found": found,
                "rate": found / len(grp),
            }
        )
    named = set(truth["study_a"]) | set(truth["study_b"]) - {""}
    clean = [k for k in all_studies if k not in named]
    flagged = (set(f["study_a"]) | set(f["study_b"])) - {""}
    rate = sum(k in flagged for k in clean) / max(1, len(clean))
    table = pd.DataFrame(rows, columns=["fault", "expected finding", "planted", "found", "rate"])
    return table, rate
