"""The validation figures, computed from tables of truth beside quantification, per family.

:func:`scintilab.synth.validate.validate_against_truth` builds four tables from a cohort
and its truth and hands them here; so does a test with hand-made tables. Every figure
that the benchmarks, the summary over cohorts and notebook 09 print comes from
:func:`validation_figures`, so each says the same thing wherever it is read:

* sensitivity over every visible metastasis (a truth lesion with at least one pixel in its
  label map) and over the bright ones (:data:`BRIGHT_DEFINITION`), with the false-positive
  hot spots per scan beside both;
* BSI agreement (Pearson r, Spearman rho, Bland-Altman) on the studies of metastatic
  patients only (:data:`METASTATIC_DEFINITION`): the NoMet studies, all at true BSI 0,
  would otherwise stretch the range and lift r for free. NoMet studies are reported apart
  (mean and max measured BSI, share measured at 0);
* new-lesion counts on every follow-up pair and on the pairs whose truth changed (true
  new-lesion count > 0), each beside the trivial answer "always 0 new"; PCWG3 status beside
  "always no progression".

A study may name families in its truth (``"families": ["obese", "cut_fov", ...]``); the
figures are given for each family (a study counts in every family it lists) and for
``"all"``. A figure over fewer than :data:`MIN_N` lesions, scans, studies or pairs is None
(its n is given beside it): on a handful of cases a share or a correlation says nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from scintilab.bsi import bland_altman
from scintilab.hotspots import METASTATIC_P

#: Fewest lesions / scans / studies / pairs behind a figure; fewer and the figure is None.
MIN_N = 5
#: A lesion is bright at this contrast or more (see :data:`BRIGHT_DEFINITION`).
BRIGHT_CONTRAST = 2.0
#: What "bright" means, as printed beside the figures.
BRIGHT_DEFINITION = (
    "contrast >= 2.0: (bone + lesion uptake) / bone in the conjugate-view mean, the bone level the median "
    "of the lesion's own bone within ~4 cm, away from every finding"
)
#: Which studies the BSI agreement is measured on, as printed beside the figures.
METASTATIC_DEFINITION = (
    "label != 'NoMet': every study of a patient with bone metastases (ADMet, nADMet), true BSI 0 or not"
)
#: The family every study is in.
ALL = "all"

#: The columns each input table of :func:`validation_figures` needs.
LESION_COLUMNS = ("study_key", "contrast", "called", "visible")
#: False positives per scan at which each family's FROC is read, so that classifiers with
#: different operating points are compared at the same false-positive rate.
FROC_FP_LEVELS: tuple[float, ...] = (0.5, 1.0, 2.0)
#: Thresholds the FROC is swept over (as for the whole cohort's curve).
FROC_THRESHOLDS = np.linspace(0.02, 0.98, 49)
HOTSPOT_COLUMNS = ("study_key", "called", "lesion")
STUDY_COLUMNS = ("study_key", "label", "bsi", "true_bsi")
PAIR_COLUMNS = ("study_key", "baseline_study_key", "new", "true_new", "pcwg3", "true_pcwg3")


def share(hits: Iterable[bool]) -> float | None:
    """The share of True, or None over fewer than :data:`MIN_N` items."""
    arr = np.asarray(list(hits), bool)
    return float(arr.mean()) if arr.size >= MIN_N else None


def _rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho: Pearson r of the average ranks (ties share a rank); NaN when one side is constant."""
    ra = pd.Series(a).rank().to_numpy()
    rb = pd.Series(b).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1]) if ra.std() > 0 and rb.std() > 0 else float("nan")


def bsi_agreement(measured: Iterable[float], truth: Iterable[float]) -> dict[str, Any]:
    """Agreement of measured and true BSI: Pearson r, Spearman rho and Bland-Altman.

    Args:
        measured: measured BSI per study (percent).
        truth: true BSI of the same studies.

    Returns:
        {"n", "pearson_r", "spearman_rho", "bias", "sd", "loa_low", "loa_high"} (BSI points);
        every figure but n is None over fewer than :data:`MIN_N` studies.
    """
    m = np.asarray(list(measured), float)
    t = np.asarray(list(truth), float)
    out: dict[str, Any] = {"n": int(m.size)}
    keys = ("pearson_r", "spearman_rho", "bias", "sd", "loa_low", "loa_high")
    if m.size < MIN_N:
        return {**out, **dict.fromkeys(keys)}
    ba = bland_altman(m, t)
    return {**out, **{k: ba[k] for k in keys if k in ba}, "spearman_rho": _rank_corr(m, t)}


def nomet_bsi(measured: Iterable[float]) -> dict[str, Any]:
    """What the BSI reads on studies without metastases (their true BSI is 0).

    Args:
        measured: measured BSI of each NoMet study.

    Returns:
        {"n", "mean", "max", "share_zero"} (share measured at exactly 0); every figure but
        n is None over fewer than :data:`MIN_N` studies.
    """
    m = np.asarray(list(measured), float)
    if m.size < MIN_N:
        return {"n": int(m.size), "mean": None, "max": None, "share_zero": None}
    return {"n": int(m.size), "mean": float(m.mean()), "max": float(m.max()), "share_zero": float((m == 0).mean())}


def froc_points(lesions: pd.DataFrame, hotspots: pd.DataFrame, n_scans: int) -> dict[str, float | None]:
    """Sensitivity over every visible lesion at each of :data:`FROC_FP_LEVELS` false positives
    per scan: the best over the threshold sweep whose false positives stay at or below it.

    Read off the curve, not chosen on it: every classifier is read at the same levels.
    Empty when the tables carry no scores (``max_p``, ``p``) or fewer than :data:`MIN_N`
    scans or lesions stand behind it; None at a level no threshold gets down to.
    """
    if "max_p" not in lesions.columns or "p" not in hotspots.columns or n_scans < MIN_N:
        return {}
    vis = lesions[lesions["visible"].astype(bool)]
    if len(vis) < MIN_N:
        return {}
    p_les = vis["max_p"].to_numpy(float)
    p_hot = hotspots["p"].to_numpy(float)
    off = ~hotspots["lesion"].to_numpy(bool)
    fp = np.array([((p_hot >= t) & off).sum() / n_scans for t in FROC_THRESHOLDS])
    sens = np.array([(p_les >= t).mean() for t in FROC_THRESHOLDS])
    out: dict[str, float | None] = {}
    for level in FROC_FP_LEVELS:
        ok = fp <= level
        out[f"{level:g}"] = float(sens[ok].max()) if ok.any() else None
    return out


def family_figures(
    lesions: pd.DataFrame, hotspots: pd.DataFrame, studies: pd.DataFrame, pairs: pd.DataFrame
) -> dict[str, Any]:
    """The figures of one family, from its part of the four tables.

    Args:
        lesions: one row per truth lesion of these studies (:data:`LESION_COLUMNS`):
            ``contrast`` as :data:`BRIGHT_DEFINITION` says (NaN where its bone could not
            be measured: then not bright), ``called`` (a hot spot called metastatic
            overlaps it), ``visible`` (it has pixels in the label map).
        hotspots: one row per hot spot found (:data:`HOTSPOT_COLUMNS`): ``called`` at the
            operating point, ``lesion`` (it overlaps a truth lesion).
        studies: one row per scan (:data:`STUDY_COLUMNS`): measured and true BSI.
        pairs: one row per follow-up study against its baseline (:data:`PAIR_COLUMNS`).

    Returns:
        A dict; each share is None over fewer than :data:`MIN_N` items (n beside it):

        * ``scans``; ``lesions`` (visible), ``lesions_bright``, ``lesions_not_visible``;
        * ``sensitivity_all_at_op`` (share of visible lesions called),
          ``sensitivity_bright_at_op`` (share of the bright ones), ``fp_per_scan_at_op``
          (called hot spots on no lesion, per scan);
        * ``bsi``: :func:`bsi_agreement` on the studies of :data:`METASTATIC_DEFINITION`;
          ``bsi_nomet``: :func:`nomet_bsi`; ``bsi_all_studies``: :func:`bsi_agreement` on
          every study (what ``bsi`` was before; NoMet studies lift r);
        * ``followup_pairs``, ``new_count_exact`` (share with the measured new-lesion count
          equal to the true one) and ``new_count_exact_always_0`` (the same for the answer
          "0 new", i.e. the share of pairs with none); ``followup_pairs_changed`` (true new
          count > 0), ``new_count_exact_changed`` and ``new_count_exact_changed_always_0``
          (0.0 whenever measured: "0 new" is never right there);
        * ``pcwg3_right`` (share with the true PCWG3 status) and ``pcwg3_right_always_none``
          (share whose true status is "none");
        * ``sensitivity_all_at_fp``: :func:`froc_points` (false positives per scan ->
          sensitivity over every visible lesion), when the tables carry the scores.
    """
    vis = lesions[lesions["visible"].astype(bool)] if len(lesions) else lesions
    bright = vis[vis["contrast"].astype(float) >= BRIGHT_CONTRAST] if len(vis) else vis
    n_scans = int(len(studies))
    fp = int((hotspots["called"].astype(bool) & ~hotspots["lesion"].astype(bool)).sum()) if len(hotspots) else 0
    metastatic = studies["label"] != "NoMet" if len(studies) else pd.Series([], dtype=bool)
    met, nomet = (studies[metastatic], studies[~metastatic]) if len(studies) else (studies, studies)
    changed = pairs[pairs["true_new"] > 0] if len(pairs) else pairs

    def exact(p: pd.DataFrame, always_0: bool = False) -> float | None:
        if not len(p):
            return None
        guess = np.zeros(len(p), int) if always_0 else p["new"].to_numpy(int)
        return share(guess == p["true_new"].to_numpy(int))

    return {
        "scans": n_scans,
        "lesions": int(len(vis)),
        "lesions_bright": int(len(bright)),
        "lesions_not_visible": int(len(lesions) - len(vis)),
        "sensitivity_all_at_op": share(vis["called"].astype(bool)) if len(vis) else None,
        "sensitivity_bright_at_op": share(bright["called"].astype(bool)) if len(bright) else None,
        "fp_per_scan_at_op": fp / n_scans if n_scans >= MIN_N else None,
        "bsi": bsi_agreement(met["bsi"], met["true_bsi"]) if len(met) else bsi_agreement([], []),
        "bsi_nomet": nomet_bsi(nomet["bsi"]) if len(nomet) else nomet_bsi([]),
        "bsi_all_studies": bsi_agreement(studies["bsi"], studies["true_bsi"]) if n_scans else bsi_agreement([], []),
        "followup_pairs": int(len(pairs)),
        "new_count_exact": exact(pairs),
        "new_count_exact_always_0": exact(pairs, always_0=True),
        "followup_pairs_changed": int(len(changed)),
        "new_count_exact_changed": exact(changed),
        "new_count_exact_changed_always_0": exact(changed, always_0=True),
        "pcwg3_right": share(pairs["pcwg3"] == pairs["true_pcwg3"]) if len(pairs) else None,
        "pcwg3_right_always_none": share(pairs["true_pcwg3"] == "none") if len(pairs) else None,
        "sensitivity_all_at_fp": froc_points(lesions, hotspots, n_scans),
    }


def validation_figures(
    lesions: pd.DataFrame,
    hotspots: pd.DataFrame,
    studies: pd.DataFrame,
    pairs: pd.DataFrame,
    families: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """:func:`family_figures` for ``"all"`` and for each family a study lists.

    Args:
        lesions, hotspots, studies, pairs: the tables :func:`family_figures` takes, for the
            whole cohort.
        families: study_key -> the families its truth lists (``"families"``); None, or a
            study left out, puts it in ``"all"`` only. A follow-up pair is in every family
            its follow-up or its baseline study lists.

    Returns:
        family -> its figures, ``"all"`` first, the others in alphabetical order.
    """
    fam = {str(k): set(v) - {ALL} for k, v in (families or {}).items()}
    names = sorted(set().union(*fam.values())) if fam else []
    out = {ALL: family_figures(lesions, hotspots, studies, pairs)}
    for name in names:
        keys = {k for k, v in fam.items() if name in v}

        def sel(df: pd.DataFrame, *cols: str, keys: set[str] = keys) -> pd.DataFrame:
            if not len(df):
                return df
            mask = np.zeros(len(df), bool)
            for c in cols:
                mask |= df[c].isin(keys).to_numpy()
            return df[mask]

        out[name] = family_figures(
            sel(lesions, "study_key"),
            sel(hotspots, "study_key"),
            sel(studies, "study_key"),
            sel(pairs, "study_key", "baseline_study_key"),
        )
    return out


def fmt(value: Any, spec: str = ".3f") -> str:
    """A figure for printing: ``n/a`` for None or NaN."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return format(value, spec)


def family_table(by_family: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """:func:`validation_figures` as one row per family (None: fewer than :data:`MIN_N` behind it).

    Args:
        by_family: family -> :func:`family_figures` (``figures["families"]`` of a validation).

    Returns:
        Columns: family, scans, lesions, sens_all, lesions_bright, sens_bright, fp_per_scan,
        met_studies, bsi_r, bsi_rho, bsi_loa (low..high), nomet_studies, nomet_mean,
        nomet_max, nomet_share_0, pairs, new_exact, new_exact_always_0, pairs_changed,
        new_exact_changed, new_exact_changed_always_0, pcwg3_right, pcwg3_always_none.
    """
    rows = []
    for name, f in by_family.items():
        ba, nm = f["bsi"], f["bsi_nomet"]
        rows.append(
            {
                "family": name,
                "scans": f["scans"],
                "lesions": f["lesions"],
                "sens_all": f["sensitivity_all_at_op"],
                "lesions_bright": f["lesions_bright"],
                "sens_bright": f["sensitivity_bright_at_op"],
                "fp_per_scan": f["fp_per_scan_at_op"],
                "met_studies": ba["n"],
                "bsi_r": ba["pearson_r"],
                "bsi_rho": ba["spearman_rho"],
                "bsi_loa": None if ba["loa_low"] is None else f"{ba['loa_low']:+.2f}..{ba['loa_high']:+.2f}",
                "nomet_studies": nm["n"],
                "nomet_mean": nm["mean"],
                "nomet_max": nm["max"],
                "nomet_share_0": nm["share_zero"],
                "pairs": f["followup_pairs"],
                "new_exact": f["new_count_exact"],
                "new_exact_always_0": f["new_count_exact_always_0"],
                "pairs_changed": f["followup_pairs_changed"],
                "new_exact_changed": f["new_count_exact_changed"],
                "new_exact_changed_always_0": f["new_count_exact_changed_always_0"],
                "pcwg3_right": f["pcwg3_right"],
                "pcwg3_always_none": f["pcwg3_right_always_none"],
            }
        )
    return pd.DataFrame(rows)


def _cell(value: Any) -> str:
    """A table cell: figures to three decimals, n/a for None or NaN, the rest as they are."""
    return fmt(value) if value is None or isinstance(value, float) else str(value)


def family_text(by_family: Mapping[str, Mapping[str, Any]]) -> str:
    """:func:`family_table` as plain text, n/a where fewer than :data:`MIN_N` cases are behind a figure."""
    return family_table(by_family).astype(object).map(_cell).to_string(index=False)


def figures_lines(f: Mapping[str, Any]) -> list[str]:
    """One family's figures as printable lines (the detection, BSI and follow-up figures,
    each beside its n and, for follow-up, beside the trivial answer).

    Args:
        f: :func:`family_figures` of one family (or a whole validation's figures).

    Returns:
        Lines without trailing newlines; a figure over fewer than :data:`MIN_N` prints n/a.
    """
    ba, nm = f["bsi"], f["bsi_nomet"]
    lines = [
        f"sensitivity, every visible lesion {fmt(f['sensitivity_all_at_op'])} (n={f['lesions']}); bright lesions "
        f"{fmt(f['sensitivity_bright_at_op'])} (n={f['lesions_bright']}); false positives per scan "
        f"{fmt(f['fp_per_scan_at_op'], '.2f')} (n={f['scans']} scans)",
        f"BSI vs true BSI, metastatic studies (n={ba['n']}): Pearson r {fmt(ba['pearson_r'])}, Spearman rho "
        f"{fmt(ba['spearman_rho'])}; Bland-Altman bias {fmt(ba['bias'], '+.3f')}, 95% limits "
        f"{fmt(ba['loa_low'], '+.3f')} .. {fmt(ba['loa_high'], '+.3f')} BSI points",
        f"BSI on NoMet studies (n={nm['n']}, true BSI 0): mean {fmt(nm['mean'])}, max {fmt(nm['max'])}, "
        f"measured 0 on {fmt(nm['share_zero'])}",
    ]
    if f["followup_pairs"]:
        lines += [
            f"new-lesion count exact: all pairs {fmt(f['new_count_exact'])} (always 0: "
            f"{fmt(f['new_count_exact_always_0'])}; n={f['followup_pairs']}); pairs with true new lesions "
            f"{fmt(f['new_count_exact_changed'])} (always 0: {fmt(f['new_count_exact_changed_always_0'])}; "
            f"n={f['followup_pairs_changed']})",
            f"PCWG3 status right {fmt(f['pcwg3_right'])} (always no progression: "
            f"{fmt(f['pcwg3_right_always_none'])}; n={f['followup_pairs']})",
        ]
    return lines


#: The acceptance bars of issue 13: figure -> (lowest acceptable value, what it is).
VALIDATION_BARS: dict[str, tuple[float, str]] = {
    "sensitivity_bright_at_op": (0.90, "lesion-level sensitivity (lesions >= 2x their bone) at the operating point"),
    "best_sensitivity_bright_at_1fp": (0.90, "best sensitivity at <= 1.0 false-positive hot spot per scan (FROC)"),
    "bsi_pearson_r": (0.95, "BSI against the true BSI on metastatic studies, Pearson r"),
    "new_count_exact": (0.85, "new-lesion count exact, share of follow-up pairs"),
    "pcwg3_right": (0.95, "PCWG3 status right, share of follow-up pairs"),
}

#: Figures the summary over cohorts gives beside the bars (no bar of their own): key -> short name.
CONTEXT_FIGURES: dict[str, str] = {
    "fp_per_scan_at_op": "FP/scan",
    "sensitivity_all_at_op": "sens all",
    "bsi_spearman_rho": "BSI rho",
    "bsi_nomet_mean": "NoMet BSI",
    "new_count_exact_always_0": "new 0-guess",
    "new_count_exact_changed": "new chg",
    "pcwg3_right_always_none": "PCWG3 none",
    "sensitivity_all_at_1fp": "sens@1FP",
}


def _of_family(figures: Mapping[str, Any], family: str) -> Mapping[str, Any]:
    """One family's figures out of a validation (the top level is family "all")."""
    return figures if family == ALL else (figures.get("families") or {}).get(family) or {}


def bar_value(figures: Mapping[str, Any], key: str, family: str = ALL) -> float:
    """One figure (a key of :data:`VALIDATION_BARS` or :data:`CONTEXT_FIGURES`) from a
    :func:`~scintilab.synth.validate.validate_against_truth` result; NaN when it was not
    measured (None: too few behind it; absent: an older result or another family)."""
    f = _of_family(figures, family)
    nested = {"bsi_pearson_r": ("bsi", "pearson_r"), "bsi_spearman_rho": ("bsi", "spearman_rho")}
    nested["bsi_nomet_mean"] = ("bsi_nomet", "mean")
    nested["sensitivity_all_at_1fp"] = ("sensitivity_all_at_fp", "1")
    if key in nested:
        outer, inner = nested[key]
        v = (f.get(outer) or {}).get(inner)
    else:
        v = f.get(key)
    return float("nan") if v is None else float(v)


def bar_met(figures: Mapping[str, Any], key: str, family: str = ALL) -> bool | None:
    """Whether a validation result meets one bar of :data:`VALIDATION_BARS`: the operating
    point's sensitivity also needs at most 1.0 false positive per scan. None when the
    figure was not measured (e.g. follow-up figures on a cohort of single visits, or too
    few cases, :data:`MIN_N`)."""
    v = bar_value(figures, key, family)
    if not np.isfinite(v):
        return None
    ok = v >= VALIDATION_BARS[key][0]
    if key == "sensitivity_bright_at_op":
        fp = bar_value(figures, "fp_per_scan_at_op", family)
        if not np.isfinite(fp):
            return None  # a sensitivity without its false-positive rate meets nothing
        ok = ok and bool(fp <= 1.0)
    return bool(ok)


def validation_verdict(figures: Mapping[str, Any]) -> str:
    """The validation figures against the issue's bars, as Markdown (for notebook 09).

    Every number is read from ``figures`` (what
    :func:`~scintilab.synth.validate.validate_against_truth` measured on this run), nothing
    is written in by hand. Beside each bar: the false-positive rate at the operating point
    and the sensitivity over every visible lesion; the Spearman rho, the Bland-Altman
    limits and the NoMet studies' BSI; the trivial answers "always 0 new" and "always no
    progression"; the new-lesion count on the pairs whose truth changed; the repeatability SD.

    Args:
        figures: the dict returned by :func:`~scintilab.synth.validate.validate_against_truth`.

    Returns:
        A Markdown bullet list, one line per bar, each saying "meets", "misses", or "not
        measured on this cohort" (no follow-up pairs in a cohort of single visits, or fewer
        than :data:`MIN_N` cases behind it), then the per-family table when the truth names
        families.
    """
    op = figures.get("operating_threshold", METASTATIC_P)
    lines = [
        f"Measured on this run: {figures.get('scans', 0)} scans of {figures.get('patients', 0)} patients, "
        f"{figures.get('followup_pairs', 0)} follow-up pairs, operating point p >= {op:.2f} (BSI and "
        f"follow-up from p >= {figures.get('endpoint_threshold', op):.2f}). Bright lesions: "
        f"{figures.get('bright_definition', BRIGHT_DEFINITION)}. A figure over fewer than {MIN_N} cases is n/a.",
        "",
    ]
    ba = figures.get("bsi") or {}
    nm = figures.get("bsi_nomet") or {}
    for key, (bar, what) in VALIDATION_BARS.items():
        v = bar_value(figures, key)
        met = bar_met(figures, key)
        extra = ""
        if key == "sensitivity_bright_at_op":
            extra = (
                f" (n={figures.get('lesions_bright', 'n/a')}) at {fmt(figures.get('fp_per_scan_at_op'), '.2f')} "
                f"false positives per scan; every visible lesion {fmt(figures.get('sensitivity_all_at_op'))} "
                f"(n={figures.get('lesions', 'n/a')})"
            )
        elif key == "best_sensitivity_bright_at_1fp" and figures.get("threshold_at_1fp") is not None:
            extra = f" (p >= {figures['threshold_at_1fp']:.2f}, {figures['fp_per_scan_at_that_threshold']:.2f} FP/scan)"
        elif key == "bsi_pearson_r" and ba:
            extra = (
                f" ({ba.get('n', 0)} metastatic studies); Spearman rho {fmt(ba.get('spearman_rho'))}; "
                f"Bland-Altman bias {fmt(ba.get('bias'), '+.3f')}, 95 % limits {fmt(ba.get('loa_low'), '+.3f')} .. "
                f"{fmt(ba.get('loa_high'), '+.3f')} BSI points"
            )
        elif key == "new_count_exact" and figures.get("followup_pairs"):
            extra = (
                f" (always 0 new: {fmt(figures.get('new_count_exact_always_0'))}); on the "
                f"{figures.get('followup_pairs_changed', 'n/a')} pairs with true new lesions "
                f"{fmt(figures.get('new_count_exact_changed'))} (always 0 new: "
                f"{fmt(figures.get('new_count_exact_changed_always_0'))})"
            )
        elif key == "pcwg3_right" and figures.get("followup_pairs"):
            extra = f" (always no progression: {fmt(figures.get('pcwg3_right_always_none'))})"
        shown = f"{v:.3f}" if met is not None else "n/a"
        # A cohort of single visits has no follow-up pairs: nothing to hold against the bar.
        verdict = "not measured on this cohort" if met is None else ("meets" if met else "misses")
        lines.append(f"- {what}: **{shown}**{extra} (bar >= {bar:.2f}: {verdict})")
    if nm:
        lines.append(
            f"- BSI on the {nm.get('n', 0)} NoMet studies (true BSI 0): mean **{fmt(nm.get('mean'))}**, max "
            f"{fmt(nm.get('max'))}, measured 0 on {fmt(nm.get('share_zero'))} of them"
        )
    rep = figures.get("repeatability") or {}
    if rep.get("n"):
        lines.append(
            f"- repeatability, {rep['n']} re-simulations with fresh Poisson noise: SD "
            f"**{rep['sd']:.3f}** BSI points at a mean BSI of {rep['mean']:.3f}"
        )
    fams = figures.get("families") or {}
    if len(fams) > 1:
        # The verdict's table keeps the figures above; family_table has every column.
        table = family_table(fams)[list(_VERDICT_COLUMNS)]
        lines += ["", "By family (a study counts in every family it lists; n/a: too few cases):", "", _markdown(table)]
    return "\n".join(lines)


_VERDICT_COLUMNS = (
    "family",
    "scans",
    "lesions",
    "sens_all",
    "sens_bright",
    "fp_per_scan",
    "met_studies",
    "bsi_r",
    "bsi_rho",
    "nomet_mean",
    "pairs",
    "new_exact",
    "new_exact_always_0",
    "pairs_changed",
    "new_exact_changed",
    "pcwg3_right",
    "pcwg3_always_none",
)


def _markdown(table: pd.DataFrame) -> str:
    """A small table as Markdown (pandas' to_markdown needs tabulate, not a dependency here)."""
    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def summarise_validations(runs: Mapping[str, Mapping[str, Any]], family: str = ALL) -> dict[str, dict[str, Any]]:
    """Several cohorts' validation figures against the issue's bars: mean, range, which miss.

    The README's figures come from cohorts of several seeds; one cohort's verdict says
    little (the spread between seeds is wide), so they are summarised the same way every
    time. A bar is met as :func:`bar_met` says, as in :func:`validation_verdict`.

    Args:
        runs: cohort name -> the dict
            :func:`~scintilab.synth.validate.validate_against_truth` returned for it.
        family: summarise this family's figures (default ``"all"``, the whole cohorts); the
            bright lesions' FROC bar is measured on whole cohorts only, every lesion's
            sensitivity at 1 false positive per scan (``sensitivity_all_at_1fp``) per family too.

    Returns:
        bar key -> {"bar", "values" (name -> figure), "mean", "min", "max" (over the cohorts
        that measured it), "meets" (count), "misses" (names), "not_measured" (names)};
        also each key of :data:`CONTEXT_FIGURES` with the same statistics and no bar (NaN).
    """
    out: dict[str, dict[str, Any]] = {}
    for key in [*VALIDATION_BARS, *CONTEXT_FIGURES]:
        bar = VALIDATION_BARS[key][0] if key in VALIDATION_BARS else float("nan")
        values = {name: bar_value(fig, key, family) for name, fig in runs.items()}
        measured = {n: v for n, v in values.items() if np.isfinite(v)}
        arr = np.array(list(measured.values()), float)
        met = {n: bar_met(runs[n], key, family) for n in measured} if key in VALIDATION_BARS else {}
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


#: Short names of the bars in :func:`validation_summary_text`.
SHORT_NAMES: dict[str, str] = {
    "sensitivity_bright_at_op": "sens@op",
    "best_sensitivity_bright_at_1fp": "FROC<=1FP",
    "bsi_pearson_r": "BSI r",
    "new_count_exact": "new exact",
    "pcwg3_right": "PCWG3",
    **CONTEXT_FIGURES,
}


def validation_summary_text(runs: Mapping[str, Mapping[str, Any]], family: str = ALL) -> str:
    """:func:`summarise_validations` as a plain-text table: one row per cohort, then mean
    (range) and how many cohorts meet each bar; the figures without a bar
    (:data:`CONTEXT_FIGURES`: the trivial answers, NoMet BSI, ...) follow the bars.

    Args:
        runs: cohort name -> its validation figures.
        family: the family to summarise (default ``"all"``).

    Returns:
        The table; n/a where a cohort did not measure a figure.
    """
    summary = summarise_validations(runs, family)
    keys = [*VALIDATION_BARS, *CONTEXT_FIGURES]
    lines = [f"family: {family}"] if family != ALL else []
    lines.append(f"{'cohort':<14}" + "".join(f"{SHORT_NAMES[k]:>12}" for k in keys))
    for name in runs:
        lines.append(f"{name:<14}" + "".join(f"{fmt(summary[k]['values'][name]):>12}" for k in keys))
    lines.append(f"{'mean':<14}" + "".join(f"{fmt(summary[k]['mean']):>12}" for k in keys))
    lines.append(
        f"{'range':<14}"
        + "".join(
            f"{summary[k]['min']:>6.3f}-{summary[k]['max']:<5.3f}" if np.isfinite(summary[k]["min"]) else f"{'n/a':>12}"
            for k in keys
        )
    )
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
                f"{SHORT_NAMES[k]} misses: "
                + ", ".join(f"{n} ({summary[k]['values'][n]:.4f})" for n in summary[k]["misses"])
            )
    return "\n".join(lines)


__all__ = [
    "ALL",
    "CONTEXT_FIGURES",
    "SHORT_NAMES",
    "VALIDATION_BARS",
    "bar_met",
    "bar_value",
    "summarise_validations",
    "validation_summary_text",
    "validation_verdict",
    "BRIGHT_CONTRAST",
    "BRIGHT_DEFINITION",
    "HOTSPOT_COLUMNS",
    "LESION_COLUMNS",
    "METASTATIC_DEFINITION",
    "MIN_N",
    "PAIR_COLUMNS",
    "STUDY_COLUMNS",
    "bsi_agreement",
    "family_figures",
    "family_table",
    "family_text",
    "figures_lines",
    "fmt",
    "nomet_bsi",
    "share",
    "validation_figures",
]
