"""Results back where clinicians look: a DICOM SEG, a TID 1500 SR and an Encapsulated PDF per study.

``scintilab quantify MANIFEST --out DIR --dicom [--link-to-source]`` (and
:func:`scintilab.quantify.quantify_cohort` with ``dicom=True``) calls :func:`export_study`
for every quantified study, which writes under ``DIR/dicom/<study_key>/``:

* ``seg.dcm``: a Segmentation (BINARY) referencing the source anterior and posterior
  images. Segment 1 holds every hot spot called metastatic (SCT 14799000 "Neoplasm,
  metastatic"), segment 2 every other hot spot (SCT 52988006 "Lesion" with the modifier
  SCT 30807003 "Benign": benign disease and physiological uptake alike), then one segment
  per hot spot (``hot spot N``), typed as its class and carrying its bone (SCT bone
  structures, :data:`BONE_CODES`) as anatomic region. Masks lie on the stored views: the
  analysis frame's posterior is flipped and aligned, so posterior masks are carried back
  with the detection's :class:`~scintilab.view_frame.ViewFrame` (the alignment the analysis used, inverted).
* ``sr.dcm``: a Comprehensive 3D SR, TID 1500 measurement report: one group for the whole
  body and one per bone group (BSI, hot spots, hot spots called metastatic), one group per
  hot spot (area in mm^2, normalised uptake, probability of metastasis, peak counts, the
  call, its bone as finding site) referencing its segment of the SEG and the source image;
  every measurement names the algorithm and its parameters.
* ``report.dcm``: the per-study HTML report printed to PDF with headless Chromium (the PDF
  is also written beside the HTML, ``reports/<study_key>.pdf``), as Encapsulated PDF.

``DIR/dicom/export.csv`` lists, per study and object, what was written and why something
was not (no Chromium, a source that is not DICOM, a view missing from the export).

De-identified by default: patient name and id are the study's pseudonymous patient key,
birth date, sex, accession number, study id and referring physician are empty or
pseudonymous, and every UID (study, series, the source images the objects reference) is
replaced by a new one, the same new UID for the same source UID throughout one run
(:class:`UidMap`), so SEG, SR and PDF of a run reference each other but not the source.
``link_to_source`` keeps the source study's Study Instance UID, the source images' UIDs and
its patient module, for sending the objects back into the PACS the study came from.

Source headers are read from the manifest's source paths with pydicom, read only, without
pixels.

This module writes a study's objects and the index; the parts live in
:mod:`scintilab.dicom_refs` (codes, UIDs, source headers), :mod:`scintilab.dicom_seg`,
:mod:`scintilab.dicom_sr` and :mod:`scintilab.dicom_pdf`, and are named here too.
"""

from __future__ import annotations

import csv
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.sr.codedict import codes

from scintilab.dicom_pdf import (
    build_pdf_dataset,
    print_pdf,
)
from scintilab.dicom_refs import (
    BONE_CODES,
    SourceView,
    UidMap,
    reference_header,
    scintilab_version,
    source_views,
)
from scintilab.dicom_seg import (
    build_seg,
    draw_seg_overlay,
    plan_segments,
    read_seg_masks,
    stored_mask,
)
from scintilab.dicom_sr import (
    build_sr,
    frame_of,
)


@dataclass
class StudyExport:
    """What :func:`export_study` wrote for one study.

    Attributes:
        study_key: the study's pseudonymous key.
        folder: ``DIR/dicom/<study_key>``.
        files: object (``SEG``, ``SR``, ``PDF``) -> file written.
        notes: (object, sentence) of what was not written or not referenced, and why.
        pdf: the report printed to PDF beside the HTML (None when not printed).
    """

    study_key: str
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[tuple[str, str]] = field(default_factory=list)
    pdf: Path | None = None


# --------------------------------------------------------------------------------- per study


def algorithm_info(detection: Any, model: Any = None) -> dict[str, Any]:
    """Name and parameters of the classifier behind a study's calls (for the SEG and SR)."""
    params = [
        f"calling threshold p >= {detection.threshold:.4g}",
        f"BSI and new-lesion threshold p >= {detection.endpoint_threshold:.4g}",
        f"pixel spacing {detection.spacing[0]:.4g} x {detection.spacing[1]:.4g} mm",
    ]
    if model is None:
        return {"name": "scintilab hot-spot rules", "parameters": params}
    info = getattr(model, "info", {}) or {}
    params.append("features " + ",".join(getattr(model, "features", [])))
    if info.get("scans") is not None:
        params.append(f"trained on {info.get('scans')} scans")
    return {"name": "scintilab hot-spot model (logistic)", "parameters": params}


def export_study(
    sq: Any,
    row: Any,
    root: Path | None,
    out_dir: str | Path,
    uids: UidMap,
    *,
    report_html: Path | None = None,
    model: Any = None,
) -> StudyExport:
    """Write the SEG, SR and Encapsulated PDF of one quantified study.

    Args:
        sq: the :class:`scintilab.quantify.StudyQuant`.
        row: its manifest row (source paths and frames).
        root: folder the manifest's relative paths start from.
        out_dir: ``DIR/dicom``; the study's objects go to ``out_dir/<study_key>/``.
        uids: the run's :class:`UidMap` (also says whether to link to the source).
        report_html: the study's HTML report, printed to PDF (None: no PDF).
        model: the hot-spot model used (None: the default rules), named in SEG and SR.

    Returns:
        A :class:`StudyExport`.
    """
    import highdicom as hd

    st, det = sq.study, sq.detection
    folder = Path(out_dir) / st.study_key
    folder.mkdir(parents=True, exist_ok=True)
    res = StudyExport(study_key=st.study_key, folder=folder)
    sources, notes = source_views(row, root)
    sources = {v: s for v, s in sources.items() if v in det.images}
    for n in notes:
        res.notes.append(("SEG", n))
    refs = {v: (reference_header(s, st, uids), s.frame) for v, s in sources.items()}
    header = next(iter(refs.values()))[0] if refs else reference_header(None, st, uids)
    algorithm = algorithm_info(det, model)
    plans = plan_segments(det)
    seg = None
    if refs:
        algo_seg = hd.AlgorithmIdentificationSequence(
            name=algorithm["name"],
            version=scintilab_version(),
            family=codes.DCM.ArtificialIntelligence,
            parameters={f"p{i}": p for i, p in enumerate(algorithm["parameters"], start=1)},
        )
        seg = build_seg(
            det,
            refs,
            plans,
            algo_seg,
            series_uid=uids.for_key(f"{st.study_key}/seg-series"),
            sop_uid=uids.for_key(f"{st.study_key}/seg"),
            turns=dict(st.meta.get("quarter_turns") or {}),
        )
        res.files["SEG"] = folder / "seg.dcm"
        seg.save_as(res.files["SEG"], enforce_file_format=True)
    else:
        res.notes.append(("SEG", "not written: no view has a DICOM source image for the SEG to reference"))
    sr = build_sr(
        sq,
        refs,
        header,
        seg,
        plans,
        algorithm,
        series_uid=uids.for_key(f"{st.study_key}/sr-series"),
        sop_uid=uids.for_key(f"{st.study_key}/sr"),
    )
    res.files["SR"] = folder / "sr.dcm"
    sr.save_as(res.files["SR"], enforce_file_format=True)
    if report_html is not None:
        try:
            res.pdf = print_pdf(report_html, Path(report_html).with_suffix(".pdf"))
            pdf_ds = build_pdf_dataset(
                res.pdf.read_bytes(),
                header,
                title=f"Bone scan quantification {st.study_key}",
                series_uid=uids.for_key(f"{st.study_key}/pdf-series"),
                sop_uid=uids.for_key(f"{st.study_key}/pdf"),
                sources=[r for r, _ in refs.values()],
            )
            res.files["PDF"] = folder / "report.dcm"
            pydicom.dcmwrite(res.files["PDF"], pdf_ds, enforce_file_format=True)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
            res.notes.append(("PDF", f"not written: {err}"))
    else:
        res.notes.append(("PDF", "not written: no HTML report (reports were turned off)"))
    return res


def write_index(exports: list[StudyExport], out_dir: str | Path) -> Path:
    """``DIR/dicom/export.csv``: study_key, object, file (relative), note."""
    path = Path(out_dir) / "export.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["study_key", "object", "file", "note"])
        for e in exports:
            for obj, f in e.files.items():
                w.writerow([e.study_key, obj, f.relative_to(Path(out_dir)).as_posix(), ""])
            for obj, note in e.notes:
                w.writerow([e.study_key, obj, "", note])
    return path


class CohortExporter:
    """A quantified cohort's DICOM objects, written patient by patient with one UID map a run.

    Called with each patient's quantified studies (and the folder of their HTML reports, for
    the PDF); :meth:`finish` writes the index. A study whose objects cannot be written is
    returned as ``(study_key, reason)`` and the others go on.
    """

    def __init__(self, cohort: Any, out: Path, model: Any, link: bool) -> None:
        self.cohort, self.out, self.model = cohort, out, model
        self.uids = UidMap(link=link)
        self.rows = {str(k): i for i, k in enumerate(cohort.manifest["study_key"].astype(str))}
        self.exports: list[Any] = []

    def __call__(self, done: list[Any], reports_dir: Path | None) -> list[tuple[str, str]]:
        failed = []
        for sq in done:
            key = sq.study.study_key
            page = reports_dir / f"{key}.html" if reports_dir is not None else None
            try:
                self.exports.append(
                    export_study(
                        sq,
                        self.cohort.manifest.iloc[self.rows[key]],
                        self.cohort.root,
                        self.out,
                        self.uids,
                        model=self.model,
                        report_html=page if page is not None and page.exists() else None,
                    )
                )
            except (ValueError, KeyError, OSError, AttributeError) as err:
                failed.append((key, f"DICOM objects not written: {type(err).__name__}: {err}"))
        return failed

    def finish(self) -> None:
        write_index(self.exports, self.out)


__all__ = [
    "CohortExporter",
    "BONE_CODES",
    "SourceView",
    "StudyExport",
    "UidMap",
    "algorithm_info",
    "build_pdf_dataset",
    "build_seg",
    "build_sr",
    "draw_seg_overlay",
    "export_study",
    "frame_of",
    "plan_segments",
    "print_pdf",
    "read_seg_masks",
    "reference_header",
    "source_views",
    "stored_mask",
    "write_index",
]
