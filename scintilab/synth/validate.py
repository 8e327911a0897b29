"""Quantification validated against the synthetic generator's truth.

:func:`validate_against_truth` writes (or reuses) a synthetic cohort, quantifies it with
:func:`scintilab.quantify.quantify_cohort` and compares hot spots, BSI, repeatability and
follow-up with the truth the generator recorded. It lives beside the generator because it
re-renders studies with the generator's own random streams; the analysis never imports
``synth``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab import quant_params as qp
from scintilab.bsi import bland_altman, repeatability
from scintilab.followup import PatientFollowup, pcwg3_statuses
from scintilab.hotspots import METASTATIC_P, HotspotModel
from scintilab.ingest import ingest
from scintilab.lesion_agreement import truth_files
from scintilab.quantify import StudyQuant, quantify_cohort, quantify_study
from scintilab.study import Study
from scintilab.synth.cohort import write_cohort
from scintilab.synth.phantom import BONE_IDS
from scintilab.synth.scan import generate_patient, render_study


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
) -> dict[str, Any]:
    """Quantify a synthetic cohort and compare everything with the generator's truth.

    ``params`` (:mod:`scintilab.quant_params`; None: the active ones) are used for every
    quantification here, the repeatability re-simulations included, and recorded in the
    figures (``params_changed``).

    Writes the cohort (``n_patients`` x ``visits``, of ``variety``; ``matrix`` None lets the
    clinic variety draw it per patient) into ``cohort_dir`` when it holds none,
    ingests it, runs :func:`quantify_cohort` (no reports), and measures: lesion-level
    sensitivity and false positives per scan (FROC), BSI agreement (Pearson r,
    Bland-Altman), BSI repeatability under fresh Poisson noise, new-lesion counts and
    PCWG3 status per follow-up pair.

    ``hotspot_model`` (a :class:`HotspotModel` or its JSON) replaces the default rules, as
    in :func:`quantify_cohort`; it is used for the repeatability re-simulations too.

    The operating point is the one the product uses: each detection's own calling
    threshold (the rules' ``rules.metastatic_p`` or the model's)
    for sensitivity and false positives (``operating_threshold``), its endpoint cut for
    BSI and follow-up (``endpoint_threshold``), or ``threshold`` for both when given.
    The FROC sweeps every cut.

    Returns:
        A dict of figures, the FROC table (``froc``), the per-study BSI pairs (``bsi_pairs``),
        the follow-up pairs (``followup_pairs``), missed lesions and false positives, and
        ``text``: a printable summary.
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
                zone = ndi.binary_dilation(lmap == k, iterations=2)
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
                    }
                )
            on_lesion = {j for hits in hit_by.values() for j in hits}
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
    res = quantify_cohort(
        manifest,
        None,
        hotspot_model=model,
        threshold=threshold,
        reports=False,
        progress=progress,
        hook=hook,
        limit=limit,
    )
    seconds = __import__("time").perf_counter() - t0
    les = pd.DataFrame(lesion_rows)
    hot = pd.DataFrame(hot_rows)
    bright = les[les["contrast"] >= 2.0] if len(les) else les
    thresholds = np.r_[np.linspace(0.02, 0.98, 49)]
    froc = []
    for t in thresholds:
        fp = int(((hot["p"] >= t) & ~hot["lesion"]).sum()) if len(hot) else 0
        froc.append(
            {
                "threshold": round(float(t), 3),
                "fp_per_scan": fp / max(n_scans, 1),
                "sensitivity_bright": float((bright["max_p"] >= t).mean()) if len(bright) else float("nan"),
                "sensitivity_all": float((les["max_p"] >= t).mean()) if len(les) else float("nan"),
            }
        )
    froc_df = pd.DataFrame(froc)
    ok = froc_df[froc_df["fp_per_scan"] <= 1.0]
    best = ok.sort_values(["sensitivity_bright", "threshold"], ascending=[False, True]).iloc[0] if len(ok) else None
    # The operating point: what the product called (each hot spot at its classifier's
    # own threshold), not the nearest FROC grid point.
    op_t = max(op_thresholds) if op_thresholds else (METASTATIC_P if threshold is None else threshold)
    end_t = max(end_thresholds) if end_thresholds else op_t
    op = {
        "sensitivity_bright": float(bright["called"].mean()) if len(bright) else float("nan"),
        "sensitivity_all": float(les["called"].mean()) if len(les) else float("nan"),
        "fp_per_scan": (int((hot["called"] & ~hot["lesion"]).sum()) if len(hot) else 0) / max(n_scans, 1),
    }
    bp = pd.DataFrame(bsi_pairs)
    ba = bland_altman(bp["bsi"], bp["true_bsi"]) if len(bp) >= 3 else {}

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
                        "study_key": r["study_key"],
                        "new": int(r["new_lesions"]),
                        "true_new": tn,
                        "pcwg3": r["pcwg3"],
                        "true_pcwg3": ts,
                        "label": truth_by_key[r["study_key"]]["label"],
                    }
                )
    fp_df = pd.DataFrame(fu_pairs)

    # repeatability: one metastatic study re-rendered with fresh Poisson noise only
    rep = _repeatability(root, truth_by_key, repeats, model, threshold) if repeats >= 2 else {}
    rep_stats = repeatability(rep.get("values", [])) if rep else {}

    figures: dict[str, Any] = {
        "scans": n_scans,
        "patients": int(res.studies["patient_key"].nunique()) if len(res.studies) else 0,
        "lesions": int(len(les)),
        "lesions_bright": int(len(bright)),
        "seconds": round(seconds, 1),
        "seconds_per_study": round(seconds / max(n_scans, 1), 2),
        "operating_threshold": op_t,
        "endpoint_threshold": end_t,
        "operating_classifier": "default rules" if model is None else "learned hot-spot model",
        "sensitivity_bright_at_op": float(op["sensitivity_bright"]),
        "fp_per_scan_at_op": float(op["fp_per_scan"]),
        "sensitivity_all_at_op": float(op["sensitivity_all"]),
        "best_sensitivity_bright_at_1fp": None if best is None else float(best["sensitivity_bright"]),
        "threshold_at_1fp": None if best is None else float(best["threshold"]),
        "fp_per_scan_at_that_threshold": None if best is None else float(best["fp_per_scan"]),
        "bsi": ba,
        "repeatability": {**rep_stats, "study": rep.get("study")},
        "followup_pairs": int(len(fp_df)),
        "new_count_exact": float((fp_df["new"] == fp_df["true_new"]).mean()) if len(fp_df) else float("nan"),
        "pcwg3_right": float((fp_df["pcwg3"] == fp_df["true_pcwg3"]).mean()) if len(fp_df) else float("nan"),
    }
    missed = bright[~bright["called"].astype(bool)] if len(bright) else bright
    fps = hot[hot["called"].astype(bool) & ~hot["lesion"]] if len(hot) else hot
    fp_kind = fps.assign(what=np.where(fps["truth_benign"] != "", fps["truth_benign"], "normal anatomy"))
    lines = [
        f"scans {figures['scans']} ({figures['patients']} patients), lesions {figures['lesions']} "
        f"({figures['lesions_bright']} at least twice as bright as the bone under them); "
        f"{figures['seconds_per_study']} s per study",
        f"operating point p >= {op_t:.2f} ("
        f"{'given threshold' if threshold is not None else 'calling threshold of the ' + figures['operating_classifier']}"
        f"; BSI and follow-up from p >= {end_t:.2f}): sensitivity (bright lesions) {figures['sensitivity_bright_at_op']:.3f}, "
        f"all lesions {figures['sensitivity_all_at_op']:.3f}, false positives per scan {figures['fp_per_scan_at_op']:.2f}",
    ]
    if best is not None:
        lines.append(
            f"FROC: at <= 1.0 FP/scan (p >= {best['threshold']:.2f}; {best['fp_per_scan']:.2f} FP/scan) "
            f"sensitivity (bright lesions) {best['sensitivity_bright']:.3f}"
        )
    if ba:
        lines.append(
            f"BSI vs true BSI: Pearson r {ba['pearson_r']:.3f}; Bland-Altman bias {ba['bias']:+.3f}, "
            f"95% limits {ba['loa_low']:+.3f} .. {ba['loa_high']:+.3f} BSI points (n={ba['n']})"
        )
    if rep_stats:
        lines.append(
            f"repeatability (fresh Poisson noise, n={rep_stats['n']}): BSI {rep_stats['mean']:.3f} "
            f"+- SD {rep_stats['sd']:.3f} points (CV {rep_stats['cv']:.2f})"
        )
    if len(fp_df):
        lines.append(
            f"follow-up pairs {len(fp_df)}: new-lesion count exact {figures['new_count_exact']:.3f}; "
            f"PCWG3 status right {figures['pcwg3_right']:.3f}"
        )
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


#: The acceptance bars of issue 13: figure -> (lowest acceptable value, what it is).
VALIDATION_BARS: dict[str, tuple[float, str]] = {
    "sensitivity_bright_at_op": (0.90, "lesion-level sensitivity (lesions >= 2x their bone) at the operating point"),
    "best_sensitivity_bright_at_1fp": (0.90, "best sensitivity at <= 1.0 false-positive hot spot per scan (FROC)"),
    "bsi_pearson_r": (0.95, "BSI against the true BSI, Pearson r"),
    "new_count_exact": (0.85, "new-lesion count exact, share of follow-up pairs"),
    "pcwg3_right": (0.95, "PCWG3 status right, share of follow-up pairs"),
}


def bar_value(figures: dict[str, Any], key: str) -> float:
    """One bar's figure (a key of :data:`VALIDATION_BARS`) from a
    :func:`validate_against_truth` result; NaN when it was not measured."""
    v = (figures.get("bsi") or {}).get("pearson_r") if key == "bsi_pearson_r" else figures.get(key)
    return float("nan") if v is None else float(v)


def bar_met(figures: dict[str, Any], key: str) -> bool | None:
    """Whether a :func:`validate_against_truth` result meets one bar of
    :data:`VALIDATION_BARS`: the operating point's sensitivity also needs at most 1.0
    false positive per scan. None when the figure was not measured (e.g. follow-up figures
    on a cohort of single visits)."""
    v = bar_value(figures, key)
    if not np.isfinite(v):
        return None
    ok = v >= VALIDATION_BARS[key][0]
    if key == "sensitivity_bright_at_op":
        ok = ok and figures.get("fp_per_scan_at_op", float("nan")) <= 1.0
    return bool(ok)


def validation_verdict(figures: dict[str, Any]) -> str:
    """The validation figures against the issue's bars, as Markdown (for notebook 09).

    Every number is read from ``figures`` (what :func:`validate_against_truth` measured on
    this run), nothing is written in by hand; the false-positive rate at the operating
    point, the Bland-Altman limits and the repeatability SD are stated alongside.

    Args:
        figures: the dict returned by :func:`validate_against_truth`.

    Returns:
        A Markdown bullet list, one line per bar, each saying "meets", "misses", or "not
        measured on this cohort" (e.g. no follow-up pairs in a cohort of single visits).
    """
    lines = [
        f"Measured on this run: {figures.get('scans', 0)} scans of {figures.get('patients', 0)} patients, "
        f"{figures.get('followup_pairs', 0)} follow-up pairs, operating point p >= "
        f"{figures.get('operating_threshold', METASTATIC_P):.2f} (BSI and follow-up from p >= "
        f"{figures.get('endpoint_threshold', figures.get('operating_threshold', METASTATIC_P)):.2f}).",
        "",
    ]
    for key, (bar, what) in VALIDATION_BARS.items():
        v = bar_value(figures, key)
        met = bar_met(figures, key)
        extra = ""
        if key == "sensitivity_bright_at_op":
            extra = f" at {figures.get('fp_per_scan_at_op', float('nan')):.2f} false positives per scan"
        elif key == "best_sensitivity_bright_at_1fp" and figures.get("threshold_at_1fp") is not None:
            extra = f" (p >= {figures['threshold_at_1fp']:.2f}, {figures['fp_per_scan_at_that_threshold']:.2f} FP/scan)"
        elif key == "bsi_pearson_r" and figures.get("bsi"):
            ba = figures["bsi"]
            extra = (
                f"; Bland-Altman bias {ba['bias']:+.3f}, 95 % limits {ba['loa_low']:+.3f} .. "
                f"{ba['loa_high']:+.3f} BSI points"
            )
        shown = f"{v:.3f}" if met is not None else "n/a"
        # A cohort of single visits has no follow-up pairs: nothing to hold against the bar.
        verdict = "not measured on this cohort" if met is None else ("meets" if met else "misses")
        lines.append(f"- {what}: **{shown}**{extra} (bar >= {bar:.2f}: {verdict})")
    rep = figures.get("repeatability") or {}
    if rep.get("n"):
        lines.append(
            f"- repeatability, {rep['n']} re-simulations with fresh Poisson noise: SD "
            f"**{rep['sd']:.3f}** BSI points at a mean BSI of {rep['mean']:.3f}"
        )
    return "\n".join(lines)


def summarise_validations(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Several cohorts' validation figures against the issue's bars: mean, range, which miss.

    The README's figures come from cohorts of several seeds; one cohort's verdict says
    little (the spread between seeds is wide), so they are summarised the same way every
    time. A bar is met as :func:`bar_met` says, as in :func:`validation_verdict`.

    Args:
        runs: cohort name -> the dict :func:`validate_against_truth` returned for it.

    Returns:
        bar key -> {"bar", "values" (name -> figure), "mean", "min", "max" (over the cohorts
        that measured it), "meets" (count), "misses" (names), "not_measured" (names)};
        also "fp_per_scan_at_op" with the same statistics and no bar.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, (bar, _what) in [*VALIDATION_BARS.items(), ("fp_per_scan_at_op", (float("nan"), ""))]:
        values = {name: bar_value(fig, key) for name, fig in runs.items()}
        measured = {n: v for n, v in values.items() if np.isfinite(v)}
        arr = np.array(list(measured.values()), float)
        met = {n: bar_met(runs[n], key) for n in measured} if key in VALIDATION_BARS else {}
        meets = [n for n, ok in met.items() if ok]
        misses = [n for n, ok in met.items() if not ok]
        out[key] = {
            "bar": bar,
            "values": values,
            "mean": float(arr.mean()) if arr.size else float("nan"),
            "min": float(arr.min()) if arr.size else float("nan"),
            "max": float(arr.max()) if arr.size else float("nan"),
            "meets": len(meets),
            "misses": misses,
            "not_measured": [n for n in values if n not in measured],
        }
    return out


def validation_summary_text(runs: dict[str, dict[str, Any]]) -> str:
    """:func:`summarise_validations` as a plain-text table: one row per cohort, then mean
    (range) and how many cohorts meet each bar."""
    summary = summarise_validations(runs)
    keys = [*VALIDATION_BARS, "fp_per_scan_at_op"]
    short = {
        "sensitivity_bright_at_op": "sens@op",
        "best_sensitivity_bright_at_1fp": "FROC<=1FP",
        "bsi_pearson_r": "BSI r",
        "new_count_exact": "new exact",
        "pcwg3_right": "PCWG3",
        "fp_per_scan_at_op": "FP/scan",
    }
    lines = [f"{'cohort':<14}" + "".join(f"{short[k]:>12}" for k in keys)]
    for name in runs:
        lines.append(f"{name:<14}" + "".join(f"{summary[k]['values'][name]:>12.3f}" for k in keys))
    lines.append(f"{'mean':<14}" + "".join(f"{summary[k]['mean']:>12.3f}" for k in keys))
    lines.append(f"{'range':<14}" + "".join(f"{summary[k]['min']:>6.3f}-{summary[k]['max']:<5.3f}" for k in keys))
    lines.append(
        f"{'bar':<14}"
        + "".join(f"{summary[k]['bar']:>12.2f}" if np.isfinite(summary[k]["bar"]) else f"{'':>12}" for k in keys)
    )
    lines.append(
        f"{'cohorts meet':<14}"
        + "".join(
            f"{summary[k]['meets']:>9}/{len(runs) - len(summary[k]['not_measured']):<2}"
            if np.isfinite(summary[k]["bar"])
            else f"{'':>12}"
            for k in keys
        )
    )
    for k in VALIDATION_BARS:
        if summary[k]["misses"]:
            lines.append(
                f"{short[k]} misses: " + ", ".join(f"{n} ({summary[k]['values'][n]:.4f})" for n in summary[k]["misses"])
            )
    return "\n".join(lines)


def _repeatability(
    root: Path,
    truth: dict[str, dict[str, Any]],
    repeats: int,
    model: HotspotModel | None = None,
    threshold: float | None = None,
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
        values.append(quantify_study(study, model=model, threshold=threshold).bsi.bsi)
    return {"values": values, "study": f"{t['label']} baseline (true BSI {t['true_bsi']:.3f})"}


# --------------------------------------------------------------------------------- notebook figures


__all__ = [
    "VALIDATION_BARS",
    "bar_met",
    "bar_value",
    "summarise_validations",
    "validate_against_truth",
    "validation_summary_text",
    "validation_verdict",
]
