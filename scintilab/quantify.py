"""Quantification of a cohort: hot spots, Bone Scan Index, follow-up, per-study reports.

``scintilab quantify MANIFEST --out DIR [--hotspot-model PATH] [--classifier RUN_DIR]``
(and :func:`quantify_cohort`) writes, keyed by the manifest's own study key:

* ``DIR/studies.csv``: ``study_key, patient_key, label, study_date, views, bsi,
  hotspots_total, hotspots_metastatic`` (``views`` ``ANT+POST``, or the one view a study holds), then ``bsi_<bone>``, ``hotspots_<bone>`` and ``metastatic_<bone>``
  per bone group, and ``p_<class>`` when a classifier run is given;
* ``DIR/hotspots.csv``: ``study_key, view, row, col, region, area_px, peak_counts,
  normalized_uptake, p_metastatic`` (+ ``id, mean_counts, ap_ratio, kind, metastatic``);
  ``row``/``col`` are pixels of the study's stored anterior image (posterior hot spots
  mapped into it); ``metastatic`` is 1 where ``p_metastatic`` reaches the operating
  threshold of the classifier that scored it;
* ``DIR/followup.csv``: ``patient_key, baseline_study_key, study_key, days, new_lesions,
  resolved_lesions, bsi_change, pcwg3`` (+ grown lesions, registration shift);
* ``DIR/reports/<study_key>.html``: one self-contained page per study;
* ``DIR/failed.csv``: studies that could not be quantified, with the reason.

The thresholds belong to the active hot-spot classifier, unless ``threshold`` overrides
both. A hot spot is *called* metastatic (hotspots.csv ``metastatic``, the metastatic
counts of studies.csv, the reports' marks) at its calling threshold; BSI involvement and
the new / resolved lesions behind PCWG3 use its endpoint cut. The default rules call at
``rules.metastatic_p`` and keep the endpoints at
``rules.endpoint_p`` (why: there); a learned model uses its one
threshold (:attr:`scintilab.hotspots.HotspotModel.threshold`) for both.

Studies are processed patient by patient (date order), so a follow-up is compared with
its baseline while both are in memory and the cohort never is. A study that fails is
named (by its pseudonymous key) with the reason, and the rest go on.

Nothing rendered carries patient identity: reports show pseudonymous keys, dates as days
since baseline, and no source paths.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab import quant_params as qp
from scintilab.anatomy import BONE_MASS_FRACTION, BONES
from scintilab.bsi import BSIResult, compute_bsi
from scintilab.errors import EXIT_FAILED, EXIT_USAGE, InputError, partial_exit
from scintilab.followup import Comparison, PatientFollowup, follow_patient
from scintilab.hotspots import Detection, HotspotModel, detect_hotspots
from scintilab.outputs import OutputFolder, write_csv, write_text
from scintilab.study import Study

#: Columns of hotspots.csv, in order.
HOTSPOT_COLUMNS: tuple[str, ...] = (
    "study_key",
    "view",
    "row",
    "col",
    "region",
    "area_px",
    "peak_counts",
    "normalized_uptake",
    "p_metastatic",
    "id",
    "mean_counts",
    "ap_ratio",
    "kind",
    "metastatic",
)
#: Columns of followup.csv, in order.
FOLLOWUP_COLUMNS: tuple[str, ...] = (
    "patient_key",
    "baseline_study_key",
    "study_key",
    "days",
    "new_lesions",
    "resolved_lesions",
    "bsi_change",
    "pcwg3",
    "grown_lesions",
    "new_vs_first_followup",
    "shift_rows",
    "shift_cols",
)


@dataclass
class StudyQuant:
    """Quantification of one study.

    Attributes:
        study: the study record (pixels included).
        detection: its hot spots.
        bsi: its Bone Scan Index.
        probabilities: class -> probability from a classifier run (None without one).
        gradcam: Grad-CAM heat map on the classifier's input (None without one).
        classifier_input: the image the classifier saw (for the Grad-CAM overlay).
    """

    study: Study
    detection: Detection
    bsi: BSIResult
    probabilities: dict[str, float] | None = None
    gradcam: np.ndarray | None = None
    classifier_input: np.ndarray | None = None

    def row(self) -> dict[str, Any]:
        """The study's row of ``studies.csv``."""
        st = self.study
        out: dict[str, Any] = {
            "study_key": st.study_key,
            "patient_key": st.patient_key,
            "label": st.label or "",
            "study_date": st.study_date.isoformat() if st.study_date else "",
            "views": "+".join(st.views),
        }
        out.update(self.bsi.row())
        for k, v in (self.probabilities or {}).items():
            out[f"p_{k}"] = round(float(v), 4)
        return out


@dataclass
class QuantifyResult:
    """What :func:`quantify_cohort` produced.

    Attributes:
        studies / hotspots / followup: the three tables.
        failed: (study_key, reason) of studies that could not be quantified.
        out_dir: where the tables and reports were written (None when not written).
        reports: the report pages written.
    """

    studies: pd.DataFrame
    hotspots: pd.DataFrame
    followup: pd.DataFrame
    failed: list[tuple[str, str]] = field(default_factory=list)
    out_dir: Path | None = None
    reports: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------------- classifier


class Classifier:
    """A trained run directory used to add class probabilities and Grad-CAM to reports.

    The study is prepared as the run's dataset prepared its images: the views fused by
    addition for ``D3``, else each view in anterior orientation (probabilities averaged);
    then :func:`scintilab.datasets.preprocess` to the run's input size.
    """

    def __init__(self, run_dir: str | Path) -> None:
        from scintilab.runs import load_run

        self.run = load_run(run_dir)
        self.model = self.run.load_model()
        self.classes = list(self.run.classes)
        self.image_size = tuple(self.run.config.image_size)
        self.fused = self.run.config.dataset == "D3"

    def inputs(self, study: Study) -> np.ndarray:
        """(N, rows, cols) model inputs of one study."""
        from scintilab.datasets import oriented_views, preprocess
        from scintilab.fusion import fuse_study

        if self.fused and study.anterior is not None and study.posterior is not None:
            imgs = [fuse_study(study, method="add").image]
        else:
            imgs = [img for _, img in oriented_views(study)]
        return np.stack([preprocess(i, self.image_size) for i in imgs])

    def __call__(self, study: Study) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
        """(class probabilities, Grad-CAM of the predicted class, the input image)."""
        from scintilab.explain import grad_cam

        x = self.inputs(study)
        proba = np.asarray(self.model.predict(x[..., None], verbose=0)).mean(axis=0)
        cam = grad_cam(self.model, x[:1], int(np.argmax(proba)))[0]
        return {c: float(p) for c, p in zip(self.classes, proba)}, cam, x[0]


# --------------------------------------------------------------------------------- per patient


def quantify_study(
    study: Study,
    *,
    model: HotspotModel | None = None,
    threshold: float | None = None,
    classifier: Classifier | None = None,
) -> StudyQuant:
    """Hot spots, BSI and (optionally) class probabilities of one study.

    Args:
        study: the study.
        model: a trained hot-spot model; None applies the default rules.
        threshold: one probability cut for calls, BSI and follow-up; None: the active
            classifier's own (the rules' calling and endpoint cuts, or the model's). A
            given value becomes the detection's, so follow-up and reports use it too.
        classifier: a training run for class probabilities and Grad-CAM.

    Raises:
        InputError: the study cannot be quantified (named by its pseudonymous key).
    """
    det = detect_hotspots(study, model=model)
    if threshold is not None:
        det.set_threshold(threshold)
    res = compute_bsi(det)
    sq = StudyQuant(study=study, detection=det, bsi=res)
    if classifier is not None:
        sq.probabilities, sq.gradcam, sq.classifier_input = classifier(study)
    return sq


def quantify_patient(
    studies: Sequence[Study],
    *,
    model: HotspotModel | None = None,
    threshold: float | None = None,
    classifier: Classifier | None = None,
) -> tuple[list[StudyQuant], PatientFollowup | None, list[tuple[str, str]]]:
    """Quantify one patient's studies and compare the later ones with the baseline.

    Args:
        studies: the patient's studies (any order; sorted by date here, undated last).
        model / threshold / classifier: see :func:`quantify_study`.

    Returns:
        (quantified studies in date order, follow-up or None for a single study,
        failures as (study_key, reason)).
    """
    order = sorted(studies, key=lambda s: (s.study_date is None, s.study_date or 0, s.study_key))
    done: list[StudyQuant] = []
    failed: list[tuple[str, str]] = []
    for st in order:
        try:
            done.append(quantify_study(st, model=model, threshold=threshold, classifier=classifier))
        except (InputError, ValueError) as err:
            failed.append((st.study_key, getattr(err, "problem", str(err))))
    fu = None
    if len(done) >= 2:
        fu = follow_patient([d.detection for d in done], [d.study.study_date for d in done], [d.bsi.bsi for d in done])
    return done, fu, failed


#: What ``scintilab quantify`` writes into its folder (and ``overwrite`` clears).
QUANTIFY_OUTPUTS = ("studies.csv", "hotspots.csv", "followup.csv", "failed.csv", qp.PARAMS_FILE, "reports", "dicom")


def _iter_patients(manifest: pd.DataFrame) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(manifest["patient_key"].astype(str)):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def quantify_cohort(
    manifest: str | Path | pd.DataFrame,
    out_dir: str | Path | None = None,
    *,
    hotspot_model: str | Path | HotspotModel | None = None,
    classifier: str | Path | Classifier | None = None,
    threshold: float | None = None,
    reports: bool = True,
    progress: bool = True,
    limit: int | None = None,
    hook: Callable[[list[StudyQuant], PatientFollowup | None], None] | None = None,
    dicom: bool = False,
    link_to_source: bool = False,
    overwrite: bool = False,
    params: qp.QuantParams | None = None,
) -> QuantifyResult:
    """Quantify every study of a manifest (see the module docstring).

    Args:
        manifest: manifest CSV (or its DataFrame) written by :func:`scintilab.ingest.ingest`.
        out_dir: folder for the tables and reports; None writes nothing.
        hotspot_model: a trained hot-spot model (JSON path or object); None = default rules.
        classifier: a training run directory (or :class:`Classifier`) for class
            probabilities and Grad-CAM on the reports.
        threshold: one probability cut for calls, BSI and follow-up; None (the
            default): the active classifier's own thresholds.
        reports: write one HTML report per study (needs ``out_dir``).
        progress: a progress bar over studies.
        limit: quantify only the first ``limit`` patients (a quick look).
        hook: called after each patient with its quantified studies and follow-up (used by
            the validation to compare with ground truth while the pixels are in memory).
        dicom: also write a DICOM SEG, SR and Encapsulated PDF per study under
            ``out_dir/dicom/`` (:mod:`scintilab.dicom_results`; needs ``out_dir``).
        link_to_source: the DICOM objects keep the source study's UIDs and patient module
            (default: de-identified, new UIDs).
        overwrite: ``out_dir`` may hold an earlier quantification: its tables, reports and
            DICOM objects are removed first (else it is refused), so no report of a study
            that is gone survives (:class:`scintilab.outputs.OutputFolder`).
        params: the quantification's parameters (:mod:`scintilab.quant_params`); None uses
            the active ones (the defaults unless :func:`scintilab.quant_params.using` set
            others). They are written to ``out_dir/quant_params.json``.

    Returns:
        A :class:`QuantifyResult`.

    Raises:
        InputError: ``out_dir`` is a file, unwritable, being written by another run, or
            holds an earlier run's outputs and ``overwrite`` is False.
    """
    from scintilab.ingest import load_cohort

    cohort = load_cohort(manifest)
    model = HotspotModel.load(hotspot_model) if isinstance(hotspot_model, (str, Path)) else hotspot_model
    clf = Classifier(classifier) if isinstance(classifier, (str, Path)) else classifier
    out = Path(out_dir) if out_dir is not None else None
    folder = (
        OutputFolder(
            out,
            "quantify",
            QUANTIFY_OUTPUTS,
            overwrite=overwrite,
            inputs={"manifest": manifest if isinstance(manifest, (str, Path)) else None},
        )
        if out is not None
        else contextlib.nullcontext()
    )
    with folder, qp.using(params) as used:
        if out is not None:
            (out / "reports").mkdir(parents=True, exist_ok=True)
            qp.write_params(used, out)
        groups = _iter_patients(cohort.manifest)
        if limit is not None:
            groups = groups[:limit]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=sum(len(g) for g in groups), desc="quantify", unit="study", file=sys.stderr)
        study_rows: list[dict[str, Any]] = []
        hot_rows: list[dict[str, Any]] = []
        fu_rows: list[dict[str, Any]] = []
        failed: list[tuple[str, str]] = []
        pages: list[Path] = []
        exporter = _DicomExporter(cohort, out / "dicom", model, link_to_source) if out is not None and dicom else None
        for idx in groups:
            studies: list[Study] = []
            for i in idx:
                key = str(cohort.manifest.iloc[i]["study_key"])
                try:
                    studies.append(cohort[i])
                except (InputError, ValueError, OSError) as err:
                    # the file's name, never its folder (folders of exports can carry names)
                    where = Path(err.path).name if isinstance(err, InputError) and err.path is not None else ""
                    what = getattr(err, "problem", None) or f"cannot read: {type(err).__name__}"
                    failed.append((key, f"{where}: {what}" if where else what))
                    if bar:
                        bar.update(1)
            done, fu, bad = quantify_patient(studies, model=model, threshold=threshold, classifier=clf)
            failed += bad
            for sq in done:
                study_rows.append(sq.row())
                hot_rows += sq.detection.table()
            if fu is not None:
                fu_rows += fu.rows
            if out is not None and reports:
                base = done[0] if done else None
                for sq in done:
                    comp = fu.comparisons.get(sq.study.study_key) if fu is not None else None
                    row = next((r for r in (fu.rows if fu else []) if r["study_key"] == sq.study.study_key), None)
                    try:
                        pages.append(
                            write_report(
                                sq,
                                out / "reports" / f"{sq.study.study_key}.html",
                                baseline=base if comp is not None else None,
                                comparison=comp,
                                followup_row=row,
                            )
                        )
                    except (ValueError, RuntimeError) as err:  # a figure that cannot be drawn
                        failed.append((sq.study.study_key, f"report not written: {err}"))
            if exporter is not None:
                failed += exporter(done, out / "reports" if reports else None)
            if hook is not None:
                hook(done, fu)
            if bar:
                bar.update(len(done) + len(bad))
            del done, studies
        if bar:
            bar.close()
        studies_df = pd.DataFrame(study_rows)
        hot_df = (
            pd.DataFrame(hot_rows, columns=list(HOTSPOT_COLUMNS))
            if hot_rows
            else pd.DataFrame(columns=list(HOTSPOT_COLUMNS))
        )
        if hot_rows:
            hot_df = pd.DataFrame(hot_rows)[list(HOTSPOT_COLUMNS)]
        fu_df = (
            pd.DataFrame(fu_rows, columns=list(FOLLOWUP_COLUMNS))
            if fu_rows
            else pd.DataFrame(columns=list(FOLLOWUP_COLUMNS))
        )
        if out is not None:
            write_csv(studies_df, out / "studies.csv")
            write_csv(hot_df, out / "hotspots.csv")
            write_csv(fu_df, out / "followup.csv")
            write_csv(pd.DataFrame(failed, columns=["study_key", "reason"]), out / "failed.csv")
        if exporter is not None:
            exporter.finish()
    return QuantifyResult(
        studies=studies_df, hotspots=hot_df, followup=fu_df, failed=failed, out_dir=out, reports=pages
    )


class _DicomExporter:
    """Per patient, the DICOM objects of :mod:`scintilab.dicom_results` (one UID map a run)."""

    def __init__(self, cohort: Any, out: Path, model: HotspotModel | None, link: bool) -> None:
        from scintilab.dicom_results import UidMap

        self.cohort, self.out, self.model = cohort, out, model
        self.uids = UidMap(link=link)
        self.rows = {str(k): i for i, k in enumerate(cohort.manifest["study_key"].astype(str))}
        self.exports: list[Any] = []

    def __call__(self, done: list[StudyQuant], reports_dir: Path | None) -> list[tuple[str, str]]:
        from scintilab.dicom_results import export_study

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
        from scintilab.dicom_results import write_index

        write_index(self.exports, self.out)


# --------------------------------------------------------------------------------- figures


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _crop_rows(det: Detection) -> tuple[int, int]:
    """Rows holding the body (whole-body matrices are mostly empty below the feet)."""
    body = np.zeros(det.shape, bool)
    for a in det.atlas.values():
        body |= a.body
    rows = np.flatnonzero(body.any(axis=1))
    if rows.size == 0:
        return 0, det.shape[0]
    pad = 10
    return max(int(rows[0]) - pad, 0), min(int(rows[-1]) + pad, det.shape[0])


def draw_views(
    det: Detection,
    *,
    ax: Any = None,
    hotspots: bool = True,
    regions: bool = False,
    highlight: Sequence[Any] = (),
    threshold: float | None = None,
    title_prefix: str = "",
    views: Sequence[str] | None = None,
) -> Any:
    """Both views side by side (posterior flipped into the anterior frame), hot spots marked.

    Hot spots are circles coloured by probability of metastasis (blue 0 ... red 1); the
    ones called metastatic (at ``threshold``, default the detection's own operating
    threshold) are drawn thicker; ``highlight`` (e.g. new lesions) get a yellow square.
    ``regions`` overlays the atlas bone groups.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    threshold = det.call_threshold(threshold)
    views = list(det.images) if views is None else [v for v in views if v in det.images]
    r0, r1 = _crop_rows(det)
    if ax is None:
        h = (r1 - r0) / max(det.shape[1], 1)
        fig, axes = plt.subplots(1, len(views), figsize=(2.6 * len(views) + 0.6, min(2.6 * h, 11)))
        axes = np.atleast_1d(axes)
    else:
        axes = np.atleast_1d(ax)
        fig = axes[0].figure
    cmap = matplotlib.colormaps["coolwarm"]
    hl = {id(x) for x in highlight}
    for a, v in zip(axes, views):
        img = det.images[v][r0:r1]
        vmax = float(np.percentile(img[img > 0], 99.5)) if (img > 0).any() else 1.0
        a.imshow(img, cmap="gray_r", vmin=0, vmax=vmax, interpolation="nearest")
        if regions:
            bmap = det.atlas[v].bone_map()[r0:r1]
            a.imshow(
                np.ma.masked_equal(bmap, 0),
                cmap=ListedColormap(plt.cm.tab20.colors[:17]),
                vmin=1,
                vmax=len(BONES),
                alpha=0.3,
                interpolation="nearest",
            )
        if hotspots:
            for hs in det.hotspots:
                rad = max(3.0, float(np.sqrt(hs.area_px / np.pi)) + 2)
                col = cmap(hs.p_metastatic)
                a.add_patch(
                    plt.Circle(
                        (hs.col, hs.row - r0),
                        rad,
                        fill=False,
                        color=col,
                        lw=1.6 if hs.p_metastatic >= threshold else 0.6,
                    )
                )
                if id(hs) in hl:
                    a.add_patch(
                        plt.Rectangle(
                            (hs.col - rad - 2, hs.row - r0 - rad - 2),
                            2 * rad + 4,
                            2 * rad + 4,
                            fill=False,
                            color="gold",
                            lw=1.8,
                        )
                    )
        a.set_title(f"{title_prefix}{'POST (flipped)' if v == 'POST' else v}", fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    return fig


def _table_html(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            if isinstance(v, float):
                v = f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
            cells.append(f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def report_html(
    sq: StudyQuant,
    *,
    baseline: StudyQuant | None = None,
    comparison: Comparison | None = None,
    followup_row: dict[str, Any] | None = None,
    threshold: float | None = None,
) -> str:
    """One study's report as a self-contained HTML page (pseudonymous ids only).

    Args:
        sq: the quantified study.
        baseline: the patient's baseline (for a follow-up study).
        comparison: the follow-up comparison with the baseline.
        followup_row: the study's row of ``followup.csv`` (days, counts, PCWG3).
        threshold: probability at which a hot spot is drawn as metastatic; None: the
            detection's own operating threshold (the one its counts and BSI used).
    """
    from scintilab.reports import html_page

    st = sq.study
    det = sq.detection
    threshold = det.call_threshold(threshold)
    parts = [
        f"<h1>Bone scan quantification: study {html.escape(st.study_key)}</h1>",
        f"<p class='muted'>patient {html.escape(st.patient_key)} &middot; label "
        f"{html.escape(st.label or 'unknown')} &middot; views {html.escape(', '.join(st.views))}</p>",
    ]
    if len(st.views) == 1:
        other = "POST" if st.views[0] == "ANT" else "ANT"
        parts.append(
            f"<p class='warn'><b>One view only</b> ({html.escape(st.views[0])}; {other} not recorded): "
            "hot spots and BSI come from this view alone; anterior/posterior ratios are unavailable (never taken as "
            "equal), so the benign rules that need them (contamination, face, anterior thigh) do not apply.</p>"
        )
    bsi = sq.bsi
    parts.append(
        f"<h2>Bone Scan Index</h2><p><b>BSI {bsi.bsi:.2f} %</b> of skeletal mass &middot; hot spots "
        f"{bsi.hotspots_total} &middot; called metastatic (p &ge; {bsi.call_threshold:.2f}) {bsi.hotspots_metastatic}"
        f"{'' if bsi.threshold == bsi.call_threshold else f' &middot; BSI and new lesions from p &ge; {bsi.threshold:.2f}'}"
        "</p>"
    )
    if sq.probabilities:
        probs = " &middot; ".join(f"{html.escape(k)} {v:.2f}" for k, v in sq.probabilities.items())
        parts.append(f"<h2>Classifier</h2><p>{probs}</p>")
    parts.append(
        "<h2>Views</h2><p class='muted'>circles: hot spots coloured by probability of "
        "metastasis (blue low, red high; thick = called metastatic)</p>"
    )
    parts.append(
        f"<img alt='views with hot spots' src='data:image/png;base64,{_png(draw_views(det, threshold=threshold))}'>"
    )
    if sq.gradcam is not None and sq.classifier_input is not None:
        import matplotlib.pyplot as plt

        from scintilab.explain import overlay

        fig, ax = plt.subplots(figsize=(2.4, 6))
        ax.imshow(overlay(sq.classifier_input, sq.gradcam))
        ax.set_axis_off()
        ax.set_title("Grad-CAM (predicted class)", fontsize=8)
        parts.append(f"<img alt='Grad-CAM' src='data:image/png;base64,{_png(fig)}'>")
    if comparison is not None and baseline is not None:
        days = followup_row.get("days") if followup_row else None
        parts.append("<h2>Follow-up</h2>")
        if followup_row:
            parts.append(
                f"<p>{'' if days is None else f'{days} days after baseline &middot; '}new lesions "
                f"<b>{followup_row['new_lesions']}</b> &middot; resolved {followup_row['resolved_lesions']} "
                f"&middot; grown {followup_row['grown_lesions']} &middot; BSI change "
                f"{followup_row['bsi_change']:+.2f} &middot; PCWG3 <b>{html.escape(str(followup_row['pcwg3']))}</b></p>"
                "<p class='muted'>boxes: new hot spots; boxes on one bone within "
                f"{qp.active().followup.same_lesion_mm:g} mm of each other count as one lesion</p>"
            )
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(5.6, 7))
        draw_one_view(baseline.detection, axes[0], "baseline", (), baseline.detection.threshold)
        draw_one_view(det, axes[1], "follow-up (new lesions boxed)", comparison.new, threshold)
        fig.tight_layout()
        parts.append(f"<img alt='baseline and follow-up' src='data:image/png;base64,{_png(fig)}'>")
    parts.append("<h2>Regions</h2>")
    rows = [r for r in bsi.table() if r["hotspots"] or r["bsi"] > 0] or bsi.table()
    parts.append(
        _table_html(rows, ["bone", "mass_share_pct", "involved_fraction", "bsi", "hotspots", "hotspots_metastatic"])
    )
    parts.append("<h2>Hot spots</h2>")
    parts.append(
        _table_html(
            [h.as_row() for h in det.hotspots[:60]],
            [
                "id",
                "view",
                "row",
                "col",
                "region",
                "area_px",
                "peak_counts",
                "normalized_uptake",
                "ap_ratio",
                "kind",
                "p_metastatic",
            ],
        )
    )
    if len(det.hotspots) > 60:
        parts.append(f"<p class='muted'>{len(det.hotspots) - 60} more in hotspots.csv</p>")
    parts.append(
        "<p class='muted'>Research software, not a medical device. Positions in pixels of the "
        "stored anterior image. Uptake normalised to the patient's own bone of the same group.</p>"
    )
    screen = "<div class='screen'>" + "\n".join(parts) + "</div>"
    return html_page(
        f"Quantification {st.study_key}",
        screen + _print_pages(sq, parts[:2], threshold),
        css="img{max-width:100%;margin:4px}" + _PRINT_CSS,
    )


#: Printed (PDF) layout: one A4 page per view, the screen layout hidden.
_PRINT_CSS = (
    "@media screen{.print{display:none}}@media print{@page{size:A4;margin:10mm}.screen{display:none}"
    "body{margin:0;font-size:9pt}.page{break-after:page;display:flex;gap:6mm;height:270mm;"
    "overflow:hidden}.page:last-child{break-after:auto}.page img{height:250mm;width:auto;max-width:80mm}"
    ".page table{font-size:7pt}.page td,.page th{padding:1px 4px}}"
)


def _print_pages(sq: StudyQuant, header: list[str], threshold: float) -> str:
    """One page per view for printing: the header, the view with its hot spots, the
    view's hot spots (the first 40; all are in hotspots.csv)."""
    det = sq.detection
    bsi = sq.bsi
    pages = []
    for v in det.images:
        hs = [h.as_row() for h in det.hotspots if v in h.view.split("+")]
        more = f"<p class='muted'>{len(hs) - 40} more in hotspots.csv</p>" if len(hs) > 40 else ""
        img = _png(draw_views(det, threshold=threshold, views=[v]))
        pages.append(
            f"<section class='page'><img alt='{v} view' src='data:image/png;base64,{img}'><div>{''.join(header)}"
            f"<p><b>BSI {bsi.bsi:.2f} %</b> &middot; hot spots {bsi.hotspots_total} &middot; called metastatic "
            f"{bsi.hotspots_metastatic}</p><h2>{v} view: hot spots</h2>"
            + _table_html(
                hs[:40], ["id", "view", "row", "col", "region", "area_px", "normalized_uptake", "p_metastatic"]
            )
            + more
            + "</div></section>"
        )
    return "<div class='print'>" + "".join(pages) + "</div>"


def draw_one_view(
    det: Detection, ax: Any, title: str, highlight: Sequence[Any], threshold: float | None = None
) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    threshold = det.call_threshold(threshold)
    v = "ANT" if "ANT" in det.images else "POST"
    r0, r1 = _crop_rows(det)
    img = det.images[v][r0:r1]
    vmax = float(np.percentile(img[img > 0], 99.5)) if (img > 0).any() else 1.0
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=vmax, interpolation="nearest")
    hl = {id(x) for x in highlight}
    for hs in det.hotspots:
        if hs.p_metastatic < threshold and id(hs) not in hl:
            continue
        rad = max(3.0, float(np.sqrt(hs.area_px / np.pi)) + 2)
        ax.add_patch(
            plt.Circle(
                (hs.col, hs.row - r0), rad, fill=False, color=matplotlib.colormaps["coolwarm"](hs.p_metastatic), lw=1.2
            )
        )
        if id(hs) in hl:
            ax.add_patch(
                plt.Rectangle(
                    (hs.col - rad - 2, hs.row - r0 - rad - 2), 2 * rad + 4, 2 * rad + 4, fill=False, color="gold", lw=2
                )
            )
    ax.set_title(f"{title} ({v})", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def write_report(sq: StudyQuant, path: str | Path, **kw: Any) -> Path:
    """Write :func:`report_html` to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, report_html(sq, **kw))


# --------------------------------------------------------------------------------- summaries


def params_table(params: qp.QuantParams | None = None) -> pd.DataFrame:
    """The parameters in use with their defaults and provenance: ``name, value, default, source,
    fitted_on, what`` (None: the active ones)."""
    params = qp.active() if params is None else params
    flat = {f"{g}.{n}": v for g, values in params.to_dict().items() for n, v in values.items()}
    rows = [
        {"name": r["name"], "value": flat[r["name"]], **{k: v for k, v in r.items() if k != "name"}}
        for r in qp.provenance()
    ]
    return pd.DataFrame(rows, columns=["name", "value", "default", "source", "fitted_on", "what"])


def bsi_by_class(studies: pd.DataFrame) -> pd.DataFrame:
    """BSI summary (count, median, quartiles, max) per label."""
    if studies.empty:
        return pd.DataFrame()
    g = studies.groupby("label")["bsi"]
    return pd.DataFrame(
        {"n": g.size(), "median": g.median(), "q1": g.quantile(0.25), "q3": g.quantile(0.75), "max": g.max()}
    ).round(3)


def hotspots_by_region(hotspots: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """Hot-spot counts per region: all and called metastatic.

    Args:
        hotspots: a ``hotspots.csv`` table.
        threshold: probability at which a hot spot counts; None: the table's
            ``metastatic`` column (the call at each classifier's own operating threshold).

    Raises:
        ValueError: no ``threshold`` and no ``metastatic`` column.
    """
    if hotspots.empty:
        return pd.DataFrame(columns=["all", "metastatic"])
    if threshold is None and "metastatic" not in hotspots.columns:
        raise ValueError("hotspots table has no 'metastatic' column: give a threshold")
    called = (hotspots["p_metastatic"] >= threshold) if threshold is not None else hotspots["metastatic"].astype(bool)
    g = called.groupby(hotspots["region"])
    out = pd.DataFrame({"all": g.size(), "metastatic": g.sum().astype(int)})
    return out.sort_values("all", ascending=False)


def mass_shares() -> pd.DataFrame:
    """The skeletal-mass share of each bone group (percent), as used for BSI."""
    return pd.DataFrame({"bone": list(BONES), "share_pct": [round(100 * BONE_MASS_FRACTION[b], 2) for b in BONES]})


# --------------------------------------------------------------------------------- CLI


def train_from_manifest(
    manifest: str | Path, out_path: str | Path, *, limit: int | None = None, progress: bool = True
) -> HotspotModel:
    """Train a :class:`HotspotModel` from a manifest's LabelMe lesion annotations and save it.

    Each detected hot spot overlapping an annotated ``lesion`` shape is a positive; every
    other hot spot a negative (benign findings, normal bright anatomy). The operating
    threshold is chosen on this manifest only, out of fold by patient
    (:func:`scintilab.hotspots.train_hotspot_model`), and folded into the model so that
    p >= 0.5 applies it.
    """
    from scintilab.hotspots import annotation_labels, train_hotspot_model
    from scintilab.ingest import load_cohort

    cohort = load_cohort(manifest)
    n = len(cohort) if limit is None else min(limit, len(cohort))
    dets, labs = [], []
    it = range(n)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="hotspot model", unit="study", file=sys.stderr)
    for i in it:
        try:
            st = cohort[i]
            det = detect_hotspots(st)
        except (InputError, ValueError):
            continue
        labs.append(annotation_labels(det, st))
        det.images, det.smoothed = {}, {}  # keep the hot spots, drop the pixels
        dets.append(det)
    model = train_hotspot_model(dets, labs)
    model.save(out_path)
    return model


def cli_main(argv: list[str]) -> int:
    """``scintilab quantify MANIFEST --out DIR [--hotspot-model PATH] [--classifier RUN_DIR]``."""
    parser = argparse.ArgumentParser(
        prog="scintilab quantify",
        description="Hot spots, Bone Scan Index and follow-up (PCWG3) per study, with one HTML report per "
        "study. Writes studies.csv, hotspots.csv, followup.csv, failed.csv and reports/.",
    )
    parser.add_argument("manifest", type=Path, help="manifest CSV written by 'scintilab ingest', or a cohort folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--hotspot-model",
        type=Path,
        default=None,
        help="trained hot-spot classifier (JSON); default: the documented rules",
    )
    parser.add_argument(
        "--classifier",
        type=Path,
        default=None,
        help="training run directory: adds class probabilities and Grad-CAM to the reports",
    )
    parser.add_argument(
        "--train-hotspot-model",
        type=Path,
        default=None,
        metavar="OUT_JSON",
        help="first train a hot-spot classifier on this manifest's LabelMe lesions, save it here and use it",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="one probability cut for metastatic calls, BSI and follow-up (default: the "
        f"active classifier's own: the default rules call at {qp.active().rules.metastatic_p} and "
        f"take BSI / new lesions from {qp.active().rules.endpoint_p}; a learned model uses the cut "
        "it chose on its training cohort)",
    )
    parser.add_argument("--no-reports", action="store_true", help="tables only")
    parser.add_argument(
        "--dicom",
        action="store_true",
        help="also write per study a DICOM SEG, a TID 1500 SR and the report as Encapsulated PDF "
        "under OUT/dicom/<study_key>/ (de-identified: new UIDs, pseudonymous patient)",
    )
    parser.add_argument(
        "--link-to-source",
        action="store_true",
        help="with --dicom: keep the source study's UIDs and patient module (to send the objects "
        "back into the PACS the study came from)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N patients")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--params-preset",
        default="default",
        choices=sorted(qp.QUANT_PRESETS),
        help="named quantification parameters (default: default); written to OUT/quant_params.json",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="GROUP.NAME=VALUE",
        help="set one parameter, e.g. --set rules.facial_min_ap=1.8 (repeatable; 'scintilab quantify "
        "--list-params' names them)",
    )
    parser.add_argument("--list-params", action="store_true", help="list the parameters, their values and sources")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier quantification in --out (its tables, reports/ and dicom/)",
    )
    if argv and "--list-params" in argv:  # needs neither a manifest nor --out
        print(params_table().to_string(index=False))
        return 0
    args = parser.parse_args(argv)
    try:
        from scintilab.ingest import resolve_manifest

        params = qp.params_from_preset(args.params_preset, args.set)
        args.manifest = resolve_manifest(args.manifest, progress=not args.quiet)
        model: Any = args.hotspot_model
        if args.train_hotspot_model is not None:
            model = train_from_manifest(args.manifest, args.train_hotspot_model, progress=not args.quiet)
            i = model.info
            print(
                f"hot-spot model trained on {i['hotspots']} hot spots ({i['positives']} annotated lesions, "
                f"{i.get('scans', '?')} scans); operating threshold {i.get('raw_threshold', 0.5):.2f} chosen "
                f"out of fold ({i.get('cv_fp_per_scan')} FP/scan) -> {args.train_hotspot_model}"
            )
        res = quantify_cohort(
            args.manifest,
            args.out,
            hotspot_model=model,
            classifier=args.classifier,
            threshold=args.threshold,
            reports=not args.no_reports,
            progress=not args.quiet,
            limit=args.limit,
            dicom=args.dicom,
            link_to_source=args.link_to_source,
            overwrite=args.overwrite,
            params=params,
        )
    except (InputError, ValueError) as err:
        print(f"scintilab quantify: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"quantified {len(res.studies)} studies, {len(res.hotspots)} hot spots, "
        f"{len(res.followup)} follow-up comparisons -> {res.out_dir}"
    )
    if len(res.studies):
        print(f"BSI median {res.studies['bsi'].median():.2f} % (max {res.studies['bsi'].max():.2f} %)")
    for key, reason in res.failed:
        print(f"  failed: {key}: {reason}", file=sys.stderr)
    if res.failed and not len(res.studies):
        print(f"scintilab quantify: every study failed: see {res.out_dir / 'failed.csv'}", file=sys.stderr)
        return EXIT_FAILED
    return partial_exit("quantify", len(res.failed), "studies failed", res.out_dir / "failed.csv")


__all__ = [
    "Classifier",
    "QuantifyResult",
    "StudyQuant",
    "bsi_by_class",
    "params_table",
    "cli_main",
    "draw_views",
    "hotspots_by_region",
    "mass_shares",
    "quantify_cohort",
    "quantify_patient",
    "quantify_study",
    "report_html",
    "train_from_manifest",
    "write_report",
]


def bsi_over_time(studies: pd.DataFrame) -> pd.DataFrame:
    """Per patient, days since the first study and BSI, in date order (no calendar dates)."""
    if studies.empty:
        return pd.DataFrame(columns=["patient_key", "study_key", "days", "bsi", "label"])
    df = studies[["patient_key", "study_key", "study_date", "bsi", "label"]].copy()
    df["date"] = pd.to_datetime(df["study_date"], errors="coerce")
    df["days"] = (df["date"] - df.groupby("patient_key")["date"].transform("min")).dt.days
    return df.sort_values(["patient_key", "days"])[["patient_key", "study_key", "days", "bsi", "label"]]


def plot_bsi_by_class(studies: pd.DataFrame) -> Any:
    """Box and points of BSI per label (matplotlib Figure)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5, 3.2))
    if not studies.empty:
        order = [c for c in ("NoMet", "ADMet", "nADMet") if c in set(studies["label"])] or None
        sns.boxplot(data=studies, x="label", y="bsi", order=order, ax=ax, color="0.85", fliersize=0)
        sns.stripplot(data=studies, x="label", y="bsi", order=order, ax=ax, size=3, color="C3")
    ax.set_ylabel("BSI (% of skeletal mass)")
    ax.set_title("Bone Scan Index per class", fontsize=9)
    fig.tight_layout()
    return fig


def plot_froc(froc: pd.DataFrame, max_fp: float = 1.0) -> Any:
    """FROC curve: sensitivity against false-positive hot spots per scan."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(froc["fp_per_scan"], froc["sensitivity_bright"], "o-", ms=2, label="lesions >= 2x bone")
    ax.plot(froc["fp_per_scan"], froc["sensitivity_all"], "s-", ms=2, alpha=0.6, label="all lesions")
    ax.axvline(max_fp, color="0.5", ls=":")
    ax.axhline(0.9, color="0.5", ls=":")
    ax.set_xlabel("false-positive hot spots per scan")
    ax.set_ylabel("lesion sensitivity")
    ax.set_xlim(0, max(3.0, max_fp * 1.5))
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("FROC against the generator's lesions", fontsize=9)
    fig.tight_layout()
    return fig


def plot_bland_altman(pairs: pd.DataFrame) -> Any:
    """Measured vs true BSI, and the Bland-Altman plot of their difference."""
    import matplotlib.pyplot as plt

    from scintilab.bsi import bland_altman

    fig, ax = plt.subplots(1, 2, figsize=(8, 3.2))
    if len(pairs) >= 3:
        ba = bland_altman(pairs["bsi"], pairs["true_bsi"])
        ax[0].scatter(pairs["true_bsi"], pairs["bsi"], s=8)
        top = float(max(pairs["true_bsi"].max(), pairs["bsi"].max()))
        ax[0].plot([0, top], [0, top], color="0.5", ls=":")
        ax[0].set_xlabel("true BSI (%)")
        ax[0].set_ylabel("measured BSI (%)")
        ax[0].set_title(f"r = {ba['pearson_r']:.3f}", fontsize=9)
        mean = (pairs["bsi"] + pairs["true_bsi"]) / 2
        ax[1].scatter(mean, pairs["bsi"] - pairs["true_bsi"], s=8)
        for y, ls in ((ba["bias"], "-"), (ba["loa_low"], "--"), (ba["loa_high"], "--")):
            ax[1].axhline(y, color="C3", ls=ls, lw=0.8)
        ax[1].set_xlabel("mean of measured and true BSI (%)")
        ax[1].set_ylabel("measured - true")
        ax[1].set_title(f"bias {ba['bias']:+.2f}, limits {ba['loa_low']:+.2f} .. {ba['loa_high']:+.2f}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_bsi_over_time(studies: pd.DataFrame) -> Any:
    """BSI per patient over days since the first study (one line per patient)."""
    import matplotlib.pyplot as plt

    df = bsi_over_time(studies)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    colours = {"NoMet": "C0", "ADMet": "C3", "nADMet": "C1"}
    for _, g in df.groupby("patient_key"):
        if len(g) > 1:
            ax.plot(g["days"], g["bsi"], "o-", ms=3, lw=0.8, color=colours.get(str(g["label"].iloc[0]), "0.4"))
    ax.set_xlabel("days since the first study")
    ax.set_ylabel("BSI (%)")
    ax.set_title("BSI over time per patient (blue NoMet, red ADMet, orange nADMet)", fontsize=8)
    fig.tight_layout()
    return fig
