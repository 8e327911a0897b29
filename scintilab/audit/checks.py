"""The audit's checks: per-study faults judged against the cohort, and pair findings.

Cohort-relative on purpose: a "normal" study is what most of this cohort looks like
(its median row profile, its median front-minus-back contrast map, its robust count
range), so the checks work for any camera and matrix without thresholds tuned to one
site. The price: a fault shared by most of a cohort is invisible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import resize

from scintilab.audit.signature import StudyFeatures
from scintilab.dicomio import LOSSY_FLAG  # one wording, owned by the reader
from scintilab.orientation import TURNED_FLAG, parse_turned  # one wording, owned by orientation
from scintilab.study import Study

#: Noise ratio below which two images are one acquisition (two acquisitions give ~1).
DUP_NOISE_RATIO = 0.3
#: Coarse signature similarity a pair needs before it is compared in full.
CANDIDATE_SIM = 0.9


@dataclass
class Finding:
    """One row of the flags table."""

    kind: str
    study_a: str
    study_b: str
    score: float
    detail: str

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "study_a": self.study_a,
            "study_b": self.study_b,
            "score": round(float(self.score), 4),
            "detail": self.detail,
        }


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    d = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / d) if d > 0 else 0.0


def _robust_low(x: np.ndarray) -> tuple[float, float]:
    """Median and a sigma from the values below it only (the other tail holds outliers)."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(x))
    low = med - x[x <= med]
    return med, 1.4826 * float(np.median(low)) if low.size else 0.0


def _robust(x: np.ndarray) -> tuple[float, float]:
    """Median and MAD-based sigma (1.4826 MAD), ignoring NaN."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(x))
    return med, 1.4826 * float(np.median(np.abs(x - med)))


# --------------------------------------------------------------------------- one study


def _both(f: StudyFeatures) -> bool:
    return f.ant is not None and f.post is not None and f.ant.box is not None and f.post.box is not None


def _contrast_map(f: StudyFeatures) -> np.ndarray:
    """Front-minus-back contrast: log(ANT / flipped POST) on the fine body-box thumbnails.

    Attenuation makes structures near the front (sternum, bladder, face) brighter in ANT
    and those near the back (spine, kidneys, scapulae) brighter in POST; this map holds
    that pattern. Mild smoothing keeps Poisson noise from dominating.
    """
    a = ndi.gaussian_filter(f.ant.thumb_fine, 1.0)
    p = ndi.gaussian_filter(f.post.thumb_fine, 1.0)
    eps = 0.02 / a.size
    body = (a + p) > (0.2 / a.size)
    d = np.log((a + eps) / (p + eps))
    return np.where(body, d, 0.0).astype(np.float32)


def _asymmetry(t: np.ndarray) -> np.ndarray:
    """Left-right asymmetry of a thumbnail, smoothed: what mirroring turns upside down."""
    s = ndi.gaussian_filter(t, 1.0)
    return s - s[:, ::-1]


def study_checks(feats: list[StudyFeatures]) -> list[Finding]:
    """Per-study findings judged against the cohort.

    Args:
        feats: features of every study in the cohort.

    Returns:
        Findings of kinds ``empty_frame``, ``saturation``, ``counts_outlier``,
        ``spot_view``, ``partial_sweep``, ``head_down``, ``swapped_views``, ``mirrored_view``.
    """
    out: list[Finding] = []
    ok = [f for f in feats if f.error is None]
    if not ok:
        return out

    # Reference geometry: field of view and aspect of the usual whole-body matrix.
    aspect = np.array([f.shape[0] / max(1, f.shape[1]) for f in ok])
    fov = np.array([f.shape[0] * f.spacing[0] for f in ok])
    med_aspect, med_fov = float(np.median(aspect)), float(np.median(fov))

    # Counts per view, in log10, against the cohort's robust range.
    logc = np.array([np.log10(max(v.counts, 1.0)) for f in ok for v in f.views])
    med_c, sig_c = _robust(logc)
    q10, q90 = np.percentile(logc, [10, 90]) if logc.size else (med_c, med_c)
    # Low: a factor 2.5 below the lower of (10th percentile, half the median); high alike.
    # A tenth of the counts lands below it; the usual 1-4 M spread of a cohort does not.
    low_thr = min(q10, med_c - np.log10(2)) - np.log10(2.5)
    high_thr = max(q90, med_c + np.log10(2)) + np.log10(2.5)

    whole = [
        f
        for f in ok
        if f.shape[0] / max(1, f.shape[1]) > 0.6 * med_aspect and f.shape[0] * f.spacing[0] > 0.6 * med_fov
    ]
    lengths = np.array(
        [
            (f.views[0].box[1] - f.views[0].box[0]) * f.spacing[0]
            for f in whole
            if f.views and f.views[0].box is not None
        ]
    )
    med_len, sig_len = _robust(lengths) if lengths.size else (float("nan"), float("nan"))

    # Reference row profile (upright) and contrast map from the cohort's majority.
    profs = [v.row_profile for f in whole for v in f.views if v.box is not None]
    ref_prof = np.median(np.stack(profs), axis=0) if profs else None
    dmaps = [_contrast_map(f) for f in whole if _both(f)]
    ref_d = np.median(np.stack(dmaps), axis=0) if len(dmaps) >= 3 else None

    for f in ok:
        k = f.study_key
        # Empty frames: no uptake, or a thousandth of the cohort's usual counts.
        empty_views = [
            name
            for name, v in (("ANT", f.ant), ("POST", f.post))
            if v is not None and (v.box is None or v.counts < 10 ** (med_c - 3) or v.nonzero < 0.001 * np.prod(f.shape))
        ]
        for name in empty_views:
            v = f.ant if name == "ANT" else f.post
            out.append(
                Finding(
                    "empty_frame",
                    k,
                    "",
                    1.0,
                    f"{name} view is empty ({v.counts:.0f} counts, {v.nonzero} non-zero pixels)",
                )
            )
        live = [(n, v) for n, v in (("ANT", f.ant), ("POST", f.post)) if v is not None and n not in empty_views]

        for name, v in live:
            # Saturation: a plateau of pixels at the maximum (Poisson images have few).
            body_px = max(1, (v.box[1] - v.box[0] + 1) * (v.box[3] - v.box[2] + 1)) if v.box else 1
            if v.max > 0 and v.n_at_max >= max(8, 0.001 * body_px):
                out.append(
                    Finding(
                        "saturation",
                        k,
                        "",
                        min(1.0, v.n_at_max / (0.01 * body_px)),
                        f"{name}: {v.n_at_max} pixels clipped at the maximum value {v.max:.0f}",
                    )
                )
            lc = np.log10(max(v.counts, 1.0))
            if lc < low_thr or lc > high_thr:
                ratio = 10 ** (lc - med_c)
                words = "below" if lc < low_thr else "above"
                out.append(
                    Finding(
                        "counts_outlier",
                        k,
                        "",
                        float(abs(lc - med_c)),
                        f"{name}: {v.counts / 1e6:.3g} M counts, x{ratio:.2g} the cohort median "
                        f"({10**med_c / 1e6:.3g} M), {words} its usual range",
                    )
                )

        if not live:
            continue
        if f not in whole:
            out.append(
                Finding(
                    "spot_view",
                    k,
                    "",
                    float(1 - min(f.shape[0] * f.spacing[0] / med_fov, (f.shape[0] / f.shape[1]) / med_aspect)),
                    f"matrix {f.shape[0]}x{f.shape[1]} covers {f.shape[0] * f.spacing[0] / 10:.0f} cm; "
                    f"the cohort's whole-body views cover {med_fov / 10:.0f} cm",
                )
            )
            continue

        name, v = live[0]
        rows = f.shape[0]
        t, b = v.box[0], v.box[1]
        cut_reasons = []
        edge_px = max(1, rows // 200)
        if t <= edge_px and v.edge_uptake[0] > 0.25:
            cut_reasons.append("body cut off at the top edge")
        if b >= rows - 1 - edge_px and v.edge_uptake[1] > 0.25:
            cut_reasons.append("body cut off at the bottom edge")
        length = (b - t) * f.spacing[0]
        short = np.isfinite(med_len) and length < med_len - max(4 * sig_len, 0.15 * med_len)
        if short:
            cut_reasons.append(f"body {length / 10:.0f} cm long against the cohort's {med_len / 10:.0f} cm")
        if cut_reasons:
            score = float(max(0.0, 1 - length / med_len)) if np.isfinite(med_len) and med_len > 0 else 1.0
            out.append(
                Finding("partial_sweep", k, "", max(score, 0.5 if len(cut_reasons) else 0.0), "; ".join(cut_reasons))
            )
            continue  # orientation checks assume the whole body

        upside = False
        if ref_prof is not None:
            for nm, vv in live:
                c_up = _corr(vv.row_profile, ref_prof)
                c_dn = _corr(vv.row_profile, ref_prof[::-1])
                if c_dn > c_up + 0.2:
                    out.append(
                        Finding(
                            "head_down",
                            k,
                            "",
                            c_dn - c_up,
                            f"{nm}: uptake along the body matches the cohort upside down "
                            f"(r={c_dn:.2f} flipped vs {c_up:.2f} upright): head at the bottom",
                        )
                    )
                    upside = True
        if upside:
            continue  # the view checks below assume an upright body

        if _both(f) and len(live) == 2:
            if ref_d is not None:
                d = _contrast_map(f)
                c_ok = _corr(d, ref_d)
                c_sw = _corr(d, -ref_d[:, ::-1])
                if c_sw > c_ok + 0.3:
                    out.append(
                        Finding(
                            "swapped_views",
                            k,
                            "",
                            (c_sw - c_ok) / 2,
                            f"front/back contrast is reversed (r={c_ok:.2f} with the cohort's): "
                            "the view labelled ANT looks like a posterior view",
                        )
                    )
                    continue
            c_m = _corr(_asymmetry(f.ant.thumb_fine), _asymmetry(f.post.thumb_fine))
            if c_m < -0.3:
                out.append(
                    Finding(
                        "mirrored_view",
                        k,
                        "",
                        -c_m,
                        f"left-right features disagree between ANT and flipped POST (r={c_m:.2f}): "
                        "one view is stored mirrored",
                    )
                )
    return out


def turned_findings(manifest) -> list[Finding]:
    """Studies ingest found stored head down and turned head-up (the manifest's ``turned``
    and its flag): the audit's head-down finding, so both say the same of each study. The
    image check below then sees them upright; one it still finds upside down was turned
    wrongly (a feet-first header on a head-up image the model could not decide).

    Args:
        manifest: the ingest manifest.

    Returns:
        One ``head_down`` finding per turned study, naming the views and ingest's reason.
    """
    out: list[Finding] = []
    if manifest is None or "turned" not in getattr(manifest, "columns", ()):
        return out
    flags = manifest["flags"] if "flags" in manifest.columns else [""] * len(manifest)
    for key, turned, text in zip(manifest["study_key"], manifest["turned"], flags):
        turns = parse_turned(turned if isinstance(turned, str) else "")
        down = [v for v, k in turns.items() if k in (2, 3)]  # 270° = sideways, then head-up
        sideways = [v for v, k in turns.items() if k % 2]
        if not turns:
            continue
        why = [f.strip() for f in str(text or "").split(";") if TURNED_FLAG in f]
        words = []
        if sideways:
            words.append(f"{'+'.join(sideways)}: stored sideways")
        if down:
            words.append(f"{'+'.join(down)}: stored head-down")
        if down or sideways:
            out.append(
                Finding(
                    "head_down",
                    str(key),
                    "",
                    1.0,
                    "; ".join(words) + f"; ingest turned {'it' if len(turns) == 1 else 'them'} upright "
                    f"({turned})" + (f": {why[0].split(TURNED_FLAG + ': ', 1)[-1]}" if why else ""),
                )
            )
    return out


def lossy_findings(manifest) -> list[Finding]:
    """Studies ingest kept from a lossy copy (JPEG baseline, lossy JPEG 2000 / JPEG-LS, or
    LossyImageCompression (0028,2110) "01"): counts are not raw, so counts-based checks
    and quantification read them with care.

    Args:
        manifest: the ingest manifest (its ``flags`` column carries ingest's lossy flag).

    Returns:
        One ``lossy_compressed`` finding per such study.
    """
    out: list[Finding] = []
    if manifest is None or "flags" not in getattr(manifest, "columns", ()):
        return out
    for key, flags in zip(manifest["study_key"], manifest["flags"]):
        hits = [f.strip() for f in str(flags or "").split(";") if LOSSY_FLAG in f]
        if hits:
            out.append(Finding("lossy_compressed", str(key), "", 1.0, "; ".join(dict.fromkeys(hits))))
    return out


# --------------------------------------------------------------------------- pairs


def _common_scale(
    a: np.ndarray, sa: tuple[float, float], b: np.ndarray, sb: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Bring two views to the coarser of their pixel spacings (counts summed, not averaged)."""

    def down(img: np.ndarray, f_r: float, f_c: float) -> np.ndarray:
        ir, ic = int(round(f_r)), int(round(f_c))
        if abs(f_r - ir) < 0.02 and abs(f_c - ic) < 0.02 and ir >= 1 and ic >= 1:
            if ir == 1 and ic == 1:
                return img.astype(np.float64)
            r, c = img.shape[0] // ir * ir, img.shape[1] // ic * ic
            return img[:r, :c].astype(np.float64).reshape(r // ir, ir, c // ic, ic).sum(axis=(1, 3))
        shape = (max(1, int(round(img.shape[0] / f_r))), max(1, int(round(img.shape[1] / f_c))))
        return resize(img.astype(np.float64), shape, order=1, anti_aliasing=True, preserve_range=True) * f_r * f_c

    tr, tc = max(sa[0], sb[0]), max(sa[1], sb[1])
    return down(a, tr / sa[0], tc / sa[1]), down(b, tr / sb[0], tc / sb[1])


def _profile_shift(x: np.ndarray, y: np.ndarray) -> int:
    """Integer shift ``d`` that best maps profile ``y`` onto ``x`` (``x[i] ~ y[i - d]``)."""
    from scipy.signal import correlate

    x = np.sqrt(np.clip(x, 0, None))
    y = np.sqrt(np.clip(y, 0, None))
    c = correlate(x - x.mean(), y - y.mean(), mode="full", method="fft")
    return int(np.argmax(c)) - (len(y) - 1)


def _column_shift(a: np.ndarray, b: np.ndarray, dr: int) -> int:
    """Column shift of ``b`` onto ``a`` once rows are aligned by ``dr``.

    The column profile alone is too symmetric (a body is) and loses its edges when a copy
    is shifted or cropped; summing the row-by-row cross-correlations uses every row's
    structure (spine, ribs, limbs) instead.
    """
    oa, ob = _overlap(a, b, dr, 0) if a.shape[1] == b.shape[1] else _overlap_rows(a, b, dr)
    if oa.size == 0:
        return 0
    x = np.sqrt(np.clip(oa, 0, None))
    y = np.sqrt(np.clip(ob, 0, None))
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    n = x.shape[1] + y.shape[1]
    c = np.fft.irfft((np.fft.rfft(x, n, axis=1) * np.conj(np.fft.rfft(y, n, axis=1))).sum(axis=0), n)
    d = int(np.argmax(c))
    return d if d < x.shape[1] else d - n


def _overlap_rows(a: np.ndarray, b: np.ndarray, dr: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``a`` and ``b`` that meet when ``b`` moves by ``dr`` rows (all columns)."""
    r0, r1 = max(0, dr), min(a.shape[0], b.shape[0] + dr)
    if r1 <= r0:
        return a[:0], b[:0]
    return a[r0:r1], b[r0 - dr : r1 - dr]


def _overlap(a: np.ndarray, b: np.ndarray, dr: int, dc: int) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``a`` and ``b`` that meet when ``b`` is moved by (dr, dc)."""
    r0, r1 = max(0, dr), min(a.shape[0], b.shape[0] + dr)
    c0, c1 = max(0, dc), min(a.shape[1], b.shape[1] + dc)
    if r1 <= r0 or c1 <= c0:
        return a[:0, :0], b[:0, :0]
    return a[r0:r1, c0:c1], b[r0 - dr : r1 - dr, c0 - dc : c1 - dc]


def _noise_ratio(a: np.ndarray, b: np.ndarray) -> float:
    s = float(a.sum() / max(b.sum(), 1e-9))
    den = float((a + s * s * b).sum())
    return float(((a - s * b) ** 2).sum() / den) if den > 0 else float("inf")


def match_views(
    a: np.ndarray, sa: tuple[float, float], b: np.ndarray, sb: tuple[float, float]
) -> tuple[float, float, tuple[int, int]]:
    """Compare two views in full: align them, then measure what is left over.

    Counts are Poisson: two acquisitions of the same body differ pixel by pixel by about
    the counts themselves (variance = mean), while copies of one acquisition (shifted,
    cropped, re-exported, rescaled, requantised, lossy) differ only by rounding and
    compression error. So after alignment and a fitted scale ``s``, the noise ratio
    ``sum((a - s b)^2) / sum(a + s^2 b)`` is about 1 or more for two acquisitions and
    near 0 for two copies of one. Alignment comes from the row and column profiles
    (cheap 1-D correlations), refined by trying the neighbouring shifts.

    Returns:
        ``(noise_ratio, smooth_r, shift)``: the ratio, the correlation of the two images
        in 4x4-pixel blocks where they overlap, and the (row, col) shift of ``b``.
    """
    a, b = _common_scale(a, sa, b, sb)
    dr = _profile_shift(a.sum(axis=1), b.sum(axis=1))
    dc = _column_shift(a, b, dr)
    oa, ob = _overlap(a, b, dr, dc)
    best = (_noise_ratio(oa, ob) if oa.size >= 64 else float("inf"), dr, dc)
    # Profiles align copies exactly; only when they do not, try the neighbouring shifts,
    # judged on every 4th row (cheap), and recompute the winner in full.
    if best[0] > DUP_NOISE_RATIO:
        trial = []
        for ddr, ddc in ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)):
            oa, ob = _overlap(a, b, dr + ddr, dc + ddc)
            if oa.size >= 256:
                trial.append((_noise_ratio(oa[::4], ob[::4]), dr + ddr, dc + ddc))
        if trial:
            _, tr, tc = min(trial)
            oa, ob = _overlap(a, b, tr, tc)
            r = _noise_ratio(oa, ob)
            if r < best[0]:
                best = (r, tr, tc)
    ratio, dr, dc = best
    oa, ob = _overlap(a, b, dr, dc)
    if oa.size < 64:
        return float("inf"), 0.0, (dr, dc)
    r4, c4 = oa.shape[0] // 4 * 4, oa.shape[1] // 4 * 4
    ba = oa[:r4, :c4].reshape(r4 // 4, 4, c4 // 4, 4).sum(axis=(1, 3))
    bb = ob[:r4, :c4].reshape(r4 // 4, 4, c4 // 4, 4).sum(axis=(1, 3))
    return ratio, _corr(np.sqrt(ba), np.sqrt(bb)), (dr, dc)


def match_studies(a: Study, b: Study) -> tuple[float, float]:
    """Noise ratio (see :func:`match_views`) and smooth correlation over shared views.

    The noise ratio is the smaller of the views' (one clean view suffices to call two
    studies one acquisition, e.g. when the other view was re-exported differently).
    """
    res, smo = [], []
    for va, vb in ((a.anterior, b.anterior), (a.posterior, b.posterior)):
        if va is None or vb is None or va.max() == 0 or vb.max() == 0:
            continue
        r, s, _ = match_views(va, tuple(a.pixel_spacing), vb, tuple(b.pixel_spacing))
        res.append(r)
        smo.append(s)
    if not res:
        return float("inf"), 0.0
    return float(np.min(res)), float(np.mean(smo))
