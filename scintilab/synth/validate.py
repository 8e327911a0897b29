"""Quantification validated against the synthetic generator's truth.

:func:`validate_against_truth` writes (or reuses) a synthetic cohort, quantifies it with
:func:`scintilab.quantify.quantify_cohort` and compares hot spots, BSI, repeatability and
follow-up with the truth the generator recorded. It lives beside the generator because it
re-renders studies with the generator's own random streams; the analysis never imports
``synth``. The figures themselves (and the bars, the verdict and the summary over cohorts)
are computed in :mod:`scintilab.synth.validation_figures`; they are imported here too, so
``from scintilab.synth.validate import validation_verdict`` goes on working.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab import quant_params as qp
from scintilab.bsi import repeatability
from scintilab.followup import PatientFollowup, pcwg3_statuses
from scintilab.hotspots import METASTATIC_P, HotspotModel
from scintilab.ingest import ingest
from scintilab.lesion_agreement import truth_files
from scintilab.quantify import StudyQuant, quantify_cohort, quantify_study
from scintilab.study import Study
from scintilab.synth.cohort import write_cohort
from scintilab.synth.phantom import BONE_IDS
from scintilab.synth.scan import generate_patient, render_study
from scintilab.synth.superscan import DIFFUSE_ID
from scintilab.synth.validation_figures import (
    ALL,
    BRIGHT_CONTRAST,
    BRIGHT_DEFINITION,
    METASTATIC_DEFINITION,
    MIN_N,
    VALIDATION_BARS,
    bar_met,
    bar_value,
    family_text,
    figures_lines,
    summarise_validations,
    validation_figures,
    validation_summary_text,
    validation_verdict,
)

# The tables handed to validation_figures, named so that an empty cohort still has columns.
_LESION_TABLE_COLUMNS = (
    "study_key",
    "id",
    "bone",
    "shape",
    "uptake",
    "lytic_rim",
    "contrast",
    "max_p",
    "called",
    "visible",
)
_HOT_TABLE_COLUMNS = ("study_key", "p", "called", "lesion", "truth_benign", "rule", "region", "normalized_uptake")
_PAIR_TABLE_COLUMNS = (
    "patient_key",
    "baseline_study_key",
    "study_key",
    "new",
    "true_new",
    "pcwg3",
    "true_pcwg3",
    "label",
)


def _lesion_contrast(
    gm: np.ndarray, bone_map: np.ndarray, occupied: np.ndarray, lesion: dict[str, Any], bone_id: int
) -> float:
    """(bone + lesion uptake) / bone, the bone level taken around the lesion on its own bone.

    ``gm`` is the conjugate-view (geometric) mean, the image in which the generator states
    a lesion's ``uptake``; the bone level is the median of its bone's pixels within ~4 cm,
    away from every finding.
    """
    r, c = (int(round(v)) for v in lesion["center_rc"])
    rad = int(max(17, 2 * lesion.get("radius_px", 5)))
    sl = (slice(max(r - rad, 0), r + rad + 1), slice(max(c - rad, 0), c + rad + 1))
    sel = (bone_map[sl] == bone_id) & ~occupied[sl]
    vals = gm[sl][sel]
    if vals.size < 5:
        return float("nan")
    bone = max(float(np.median(vals)), 1e-3)
    return (bone + float(lesion["uptake"])) / bone


def validate_against_truth(
    cohort_dir: str | Path,
    *,
    n_patients: int = 40,
    visits: int = 3,
    seed: int = 1,
    matrix: tuple[int, int] | None = (1024, 256),
    repeats: int = 6,
    progress: bool = True,
    limit: int | None = None,
    hotspot_model: str | Path | HotspotModel | None = None,
    threshold: float | None = None,
    params: qp.QuantParams | None = None,
    variety: str = "narrow",
    skeleton_model: Any = None,
) -> dict[str, Any]:
    """Quantify a synthetic cohort and compare everything with the generator's truth.

    ``params`` (:mod:`scintilab.quant_params`; None: the active ones) are used for every
    quantification here, the repeatability re-simulations included, and recorded in the
    figures (``params_changed``).

    Writes the cohort (``n_patients`` x ``visits``, of ``variety``; ``matrix`` None lets the
    clinic variety draw it per patient) into ``cohort_dir`` when it holds none,
    ingests it, runs :func:`quantify_cohort` (no reports), and measures: lesion-level
    sensitivity over every visible lesion and over the bright ones, false positives per
    scan (and the FROC), BSI agreement on metastatic studies (Pearson r, Spearman rho,
    Bland-Altman) with NoMet studies apart, BSI repeatability under fresh Poisson noise,
    new-lesion counts and PCWG3 status per follow-up pair beside the trivial answers
    ("always 0 new", "always no progression"); see
    :func:`scintilab.synth.validation_figures.family_figures` for each key. Where the truth
    names ``families`` per study, the same figures per family are under ``families``.

    ``hotspot_model`` (a :class:`HotspotModel` or its JSON) replaces the default rules, as
    in :func:`quantify_cohort`; it is used for the repeatability re-simulations too.
    ``skeleton_model`` (a learned skeleton or its folder) replaces the atlas template as
    the source of bone groups, in the same way.

    The operating point is the one the product uses: each detection's own calling
    threshold (the rules' ``rules.metastatic_p`` or the model's)
    for sensitivity and false positives (``operating_threshold``), its endpoint cut for
    BSI and follow-up (``endpoint_threshold``), or ``threshold`` for both when given.
    The FROC sweeps every cut.

    Returns:
        A dict: the figures of family ``"all"`` at the top level
        (:func:`~scintilab.synth.validation_figures.family_figures`; None where fewer than
        ``min_n`` cases are behind a figure), ``families`` (family -> the same figures;
        ``"all"`` only when the truth names none), ``bright_definition``,
        ``metastatic_definition``, ``min_n``, the operating point, the FROC table
        (``froc``) and its best point at <= 1 FP/scan, the per-study BSI pairs
        (``bsi_pairs``, with ``metastatic``), the follow-up pairs (``followup_table``),
        missed bright lesions and false positives, the lesion table, and ``text``: a
        printable summary.
    """
    with qp.using(params) as used:
        figures = _validate_against_truth(
            cohort_dir,
            n_patients=n_patients,
            visits=visits,
            seed=seed,
            matrix=matrix,
            repeats=repeats,
            progress=progress,
            limit=limit,
            hotspot_model=hotspot_model,
            threshold=threshold,
            variety=variety,
            skeleton_model=skeleton_model,
        )
        figures["params_changed"] = used.changed()
    return figures


def _validate_against_truth(
    cohort_dir: str | Path,
    *,
    n_patients: int = 40,
    visits: int = 3,
    seed: int = 1,
    matrix: tuple[int, int] | None = (1024, 256),
    repeats: int = 6,
    progress: bool = True,
    limit: int | None = None,
    hotspot_model: str | Path | HotspotModel | None = None,
    threshold: float | None = None,
    variety: str = "narrow",
    skeleton_model: Any = None,
) -> dict[str, Any]:
    """The work of :func:`validate_against_truth`, under the parameters it set."""
    from scipy import ndimage as ndi

    root = Path(cohort_dir)
    if not (root / "cohort.json").exists():
        write_cohort(
            root, n_patients=n_patients, seed=seed, visits=visits, matrix=matrix, progress=progress, variety=variety
        )
    manifest = root / "manifest.csv"
    if not manifest.exists():
        ingest(root / "dicom", root / "labels.csv", root / "annotations", manifest, progress=progress)
    truth = truth_files(root / "truth")

    lesion_rows: list[dict[str, Any]] = []
    hot_rows: list[dict[str, Any]] = []
    bsi_pairs: list[dict[str, Any]] = []
    op_thresholds: set[float] = set()
    end_thresholds: set[float] = set()
    n_scans = 0

    def hook(done: list[StudyQuant], fu: PatientFollowup | None) -> None:
        nonlocal n_scans
        for sq in done:
            if sq.study.study_key not in truth:
                continue
            d, maps_path = truth[sq.study.study_key]
            maps = np.load(maps_path)
            lmap, bmap_t, benign = maps["lesion"], maps["bone"], maps["benign"]
            det = sq.detection
            op_thresholds.add(float(det.threshold))
            end_thresholds.add(float(det.endpoint_threshold))
            n_scans += 1
            bsi_pairs.append(
                {
                    "study_key": sq.study.study_key,
                    "label": d["label"],
                    "visit": d["visit"],
                    "bsi": sq.bsi.bsi,
                    "true_bsi": float(d["true_bsi"]),
                }
            )
            if "ANT" in det.images and "POST" in det.images:
                gm = np.sqrt(
                    np.clip(ndi.gaussian_filter(det.images["ANT"], 1.0), 0, None)
                    * np.clip(ndi.gaussian_filter(det.images["POST"], 1.0), 0, None)
                )
            else:
                gm = ndi.gaussian_filter(next(iter(det.images.values())), 1.0)
            occupied = ndi.binary_dilation((lmap > 0) | (benign > 0), iterations=2)
            masks = [h.full_mask(det.shape) for h in det.hotspots]
            hit_by: dict[int, list[int]] = {}
            for les in d["lesions"]:
                k = int(les["id"][1:])
                own = lmap == k
                zone = ndi.binary_dilation(own, iterations=2)
                hits = [j for j, m in enumerate(masks) if (m & zone).any()]
                hit_by[k] = hits
                lesion_rows.append(
                    {
                        "study_key": sq.study.study_key,
                        "id": les["id"],
                        "bone": les["bone"],
                        "shape": les["shape"],
                        "uptake": les["uptake"],
                        "lytic_rim": les["lytic_rim"],
                        "contrast": _lesion_contrast(gm, bmap_t, occupied, les, BONE_IDS[les["bone"]]),
                        "max_p": max((det.hotspots[j].p_metastatic for j in hits), default=0.0),
                        "called": any(det.hotspots[j].metastatic for j in hits),
                        # a lesion with no pixel in the picture (e.g. outside a cut field of
                        # view) cannot be found: it is left out of every sensitivity
                        "visible": bool(own.any()),
                    }
                )
            on_lesion = {j for hits in hit_by.values() for j in hits}
            diffuse = lmap == DIFFUSE_ID
            if diffuse.any():  # a hot spot on a superscan's involved marrow is on tumour, not a false positive
                on_lesion |= {j for j, m in enumerate(masks) if (m & diffuse).any()}
            for j, h in enumerate(det.hotspots):
                benign_here = (
                    int(np.bincount(benign[masks[j]], minlength=2)[1:].argmax() + 1)
                    if (benign[masks[j]] > 0).any()
                    else 0
                )
                kind_truth = ""
                if benign_here:
                    kind_truth = next((b["shape"] for b in d["benign"] if int(b["id"][1:]) == benign_here), "benign")
                hot_rows.append(
                    {
                        "study_key": sq.study.study_key,
                        "p": h.p_metastatic,
                        "called": h.metastatic,
                        "lesion": j in on_lesion,
                        "truth_benign": kind_truth,
                        "rule": h.kind,
                        "region": h.bone or "soft_tissue",
                        "normalized_uptake": h.normalized_uptake,
                    }
                )

    t0 = __import__("time").perf_counter()
    model = HotspotModel.load(hotspot_model) if isinstance(hotspot_model, (str, Path)) else hotspot_model
    skeleton = skeleton_model
    if isinstance(skeleton_model, (str, Path)):
        from scintilab.skeleton_model import load_skeleton_model  # Keras: only when asked for

        skeleton = load_skeleton_model(skeleton_model)
    res = quantify_cohort(
        manifest,
        None,
        hotspot_model=model,
        threshold=threshold,
        skeleton_model=skeleton,
        reports=False,
        progress=progress,
        hook=hook,
        limit=limit,
    )
    seconds = __import__("time").perf_counter() - t0
    les = pd.DataFrame(lesion_rows, columns=_LESION_TABLE_COLUMNS)
    hot = pd.DataFrame(hot_rows, columns=_HOT_TABLE_COLUMNS)
    visible = les[les["visible"].astype(bool)]
    bright = visible[visible["contrast"].astype(float) >= BRIGHT_CONTRAST]
    thresholds = np.r_[np.linspace(0.02, 0.98, 49)]
    froc = []
    for t in thresholds:
        fp = int(((hot["p"] >= t) & ~hot["lesion"].astype(bool)).sum())
        froc.append(
            {
                "threshold": round(float(t), 3),
                "fp_per_scan": fp / max(n_scans, 1),
                "sensitivity_bright": float((bright["max_p"] >= t).mean()) if len(bright) else float("nan"),
                "sensitivity_all": float((visible["max_p"] >= t).mean()) if len(visible) else float("nan"),
            }
        )
    froc_df = pd.DataFrame(froc)
    ok = froc_df[froc_df["fp_per_scan"] <= 1.0]
    best = ok.sort_values(["sensitivity_bright", "threshold"], ascending=[False, True]).iloc[0] if len(ok) else None
    # The operating point: what the product called (each hot spot at its classifier's
    # own threshold), not the nearest FROC grid point.
    op_t = max(op_thresholds) if op_thresholds else (METASTATIC_P if threshold is None else threshold)
    end_t = max(end_thresholds) if end_thresholds else op_t
    bp = pd.DataFrame(bsi_pairs, columns=["study_key", "label", "visit", "bsi", "true_bsi"])
    bp["metastatic"] = bp["label"] != "NoMet"

    # follow-up against truth
    fu_pairs = []
    truth_by_key = {k: v[0] for k, v in truth.items()}
    if len(res.followup):
        for pk, g in res.followup.groupby("patient_key"):
            g = g.sort_values("days")
            tl = [truth_by_key[k] for k in g["study_key"]]
            t_new = [sum(1 for x in t["lesions"] if x["first_visit"] > 0) for t in tl]
            t_first = [None] + [sum(1 for x in t["lesions"] if x["first_visit"] >= 2) for t in tl[1:]]
            t_status = pcwg3_statuses(list(g["days"].astype(float)), t_new, t_first)
            for (_, r), tn, ts in zip(g.iterrows(), t_new, t_status):
                fu_pairs.append(
                    {
                        "patient_key": pk,
                        "baseline_study_key": r["baseline_study_key"],
                        "study_key": r["study_key"],
                        "new": int(r["new_lesions"]),
                        "true_new": tn,
                        "pcwg3": r["pcwg3"],
                        "true_pcwg3": ts,
                        "label": truth_by_key[r["study_key"]]["label"],
                    }
                )
    fp_df = pd.DataFrame(fu_pairs, columns=_PAIR_TABLE_COLUMNS)

    # repeatability: one metastatic study re-rendered with fresh Poisson noise only
    rep = _repeatability(root, truth_by_key, repeats, model, threshold, skeleton) if repeats >= 2 else {}
    rep_stats = repeatability(rep.get("values", [])) if rep else {}

    # Families (the generator's --variety clinic names them per study); a truth without
    # them puts its study in "all" only.
    families = {k: [str(f) for f in v.get("families") or []] for k, v in truth_by_key.items()}
    by_family = validation_figures(les, hot, bp, fp_df, families)
    figures: dict[str, Any] = {
        **by_family[ALL],
        "patients": int(res.studies["patient_key"].nunique()) if len(res.studies) else 0,
        "seconds": round(seconds, 1),
        "seconds_per_study": round(seconds / max(n_scans, 1), 2),
        "operating_threshold": op_t,
        "endpoint_threshold": end_t,
        "operating_classifier": "default rules" if model is None else "learned hot-spot model",
        "bright_definition": BRIGHT_DEFINITION,
        "metastatic_definition": METASTATIC_DEFINITION,
        "min_n": MIN_N,
        "best_sensitivity_bright_at_1fp": None if best is None else float(best["sensitivity_bright"]),
        "sensitivity_all_at_1fp_threshold": None if best is None else float(best["sensitivity_all"]),
        "threshold_at_1fp": None if best is None else float(best["threshold"]),
        "fp_per_scan_at_that_threshold": None if best is None else float(best["fp_per_scan"]),
        "repeatability": {**rep_stats, "study": rep.get("study")},
        "families": by_family,
    }
    missed = bright[~bright["called"].astype(bool)]
    fps = hot[hot["called"].astype(bool) & ~hot["lesion"].astype(bool)]
    fp_kind = fps.assign(what=np.where(fps["truth_benign"] != "", fps["truth_benign"], "normal anatomy"))
    lines = [
        f"scans {figures['scans']} ({figures['patients']} patients), visible lesions {figures['lesions']} "
        f"({figures['lesions_bright']} bright, {figures['lesions_not_visible']} not visible); "
        f"{figures['seconds_per_study']} s per study",
        f"bright lesions: {BRIGHT_DEFINITION}",
        f"metastatic studies (BSI agreement): {METASTATIC_DEFINITION}",
        f"operating point p >= {op_t:.2f} ("
        f"{'given threshold' if threshold is not None else 'calling threshold of the ' + figures['operating_classifier']}"
        f"; BSI and follow-up from p >= {end_t:.2f}):",
        *(f"  {ln}" for ln in figures_lines(figures)),
    ]
    if best is not None:
        lines.append(
            f"FROC: at <= 1.0 FP/scan (p >= {best['threshold']:.2f}; {best['fp_per_scan']:.2f} FP/scan) "
            f"sensitivity (bright lesions) {best['sensitivity_bright']:.3f}, every visible lesion "
            f"{best['sensitivity_all']:.3f}"
        )
    if rep_stats:
        lines.append(
            f"repeatability (fresh Poisson noise, n={rep_stats['n']}): BSI {rep_stats['mean']:.3f} "
            f"+- SD {rep_stats['sd']:.3f} points (CV {rep_stats['cv']:.2f})"
        )
    if len(by_family) > 1:
        lines.append(f"by family (a study counts in each it lists; n/a: fewer than {MIN_N} behind the figure):")
        lines.append(family_text(by_family))
    if len(missed):
        lines.append(
            "missed bright lesions by bone: " + ", ".join(f"{k} {v}" for k, v in missed["bone"].value_counts().items())
        )
        lines.append(
            "missed bright lesions by shape: "
            + ", ".join(f"{k} {v}" for k, v in missed["shape"].value_counts().items())
        )
    if len(fp_kind):
        lines.append(
            "false positives by truth: " + ", ".join(f"{k} {v}" for k, v in fp_kind["what"].value_counts().items())
        )
        lines.append(
            "false positives by region: "
            + ", ".join(f"{k} {v}" for k, v in fp_kind["region"].value_counts().head(8).items())
        )
    return {
        **figures,
        "froc": froc_df,
        "bsi_pairs": bp,
        "followup_table": fp_df,
        "missed": missed,
        "false_positives": fp_kind,
        "lesion_table": les,
        "text": "\n".join(lines),
    }


def _repeatability(
    root: Path,
    truth: dict[str, dict[str, Any]],
    repeats: int,
    model: HotspotModel | None = None,
    threshold: float | None = None,
    skeleton: Any = None,
) -> dict[str, Any]:
    """BSI of one metastatic baseline study re-rendered ``repeats`` times, only the Poisson
    noise changed (the generator's other draws replayed from the same seed)."""
    meta = json.loads((root / "cohort.json").read_text(encoding="utf-8"))
    seed, visits = int(meta["seed"]), int(meta["visits"])
    variety = meta.get("variety", "narrow")
    cands = sorted(
        (t for t in truth.values() if t["label"] != "NoMet" and t["visit"] == 0 and not t["missing_view"]),
        key=lambda t: t["case"],
    )
    if not cands:
        return {}
    t = cands[0]
    index = int(t["case"].split("_")[1])
    pat = generate_patient(
        np.random.default_rng([seed, index]),
        t["label"],
        index=index,
        matrix=tuple(meta["matrix"] or t["matrix"]),
        visits=visits,
        seed=seed,
        missing_view=None,
        variety=variety,
        draw_matrix=meta["matrix"] is None,
    )

    class _FreshNoise(np.random.Generator):
        """Replays the visit's random draws but samples Poisson noise afresh."""

        def __init__(self, base_seed: list[int], noise_seed: int) -> None:
            super().__init__(np.random.PCG64(base_seed))
            self._noise = np.random.default_rng(noise_seed)

        def poisson(self, lam: Any = 1.0, size: Any = None) -> Any:  # type: ignore[override]
            return self._noise.poisson(lam, size)

    values = []
    for k in range(repeats):
        st = render_study(pat, _FreshNoise([seed, index, 0, 3], 1000 + k), visit=0)
        study = Study(
            study_key=f"S-repeat{k}",
            patient_key="P-repeat",
            anterior=st.anterior,
            posterior=st.posterior,
            pixel_spacing=pat.phantom.spacing,
        )
        values.append(quantify_study(study, model=model, threshold=threshold, skeleton=skeleton).bsi.bsi)
    return {"values": values, "study": f"{t['label']} baseline (true BSI {t['true_bsi']:.3f})"}


__all__ = [
    "VALIDATION_BARS",
    "bar_met",
    "bar_value",
    "summarise_validations",
    "validate_against_truth",
    "validation_summary_text",
    "validation_verdict",
]
