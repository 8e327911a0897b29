"""The cohort audit: one table of everything wrong with a cohort, and leak-proof groups.

``audit(manifest)`` reads every study once, reduces it to features
(:mod:`scintilab.audit.signature`), runs the per-study checks and the duplicate search
(:mod:`scintilab.audit.checks`), merges ingest's own findings, drops what a reviewer
dismissed (:mod:`scintilab.audit.review`), and with a split names every duplicate or
same-patient pair across it (:mod:`scintilab.audit.leaks`). The result is an
:class:`~scintilab.audit.result.AuditResult`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from scintilab.audit import checks as C
from scintilab.audit.kinds import FLAG_COLUMNS, KIND_ORDER
from scintilab.audit.leaks import check_split
from scintilab.audit.result import AuditResult
from scintilab.audit.review import dismissed_ids, pair_id, read_review
from scintilab.audit.signature import StudyFeatures, nearest_neighbours, shape_vector, signature_vector, study_features
from scintilab.errors import InputError
from scintilab.ingest import (
    load_cohort,  # ingest's: a cohort folder without a manifest is ingested
    resolve_manifest,
)
from scintilab.manifest import read_manifest
from scintilab.outputs import OutputFolder, write_csv
from scintilab.pseudonym import pseudonymize
from scintilab.study import Study

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ loading the cohort


class _Cache:
    """A small LRU of studies, so verifying candidate pairs re-reads few files."""

    def __init__(self, cohort: Sequence[Study], size: int = 64) -> None:
        self.cohort = cohort
        self.size = size
        self.items: OrderedDict[int, Study] = OrderedDict()

    def __getitem__(self, i: int) -> Study:
        if i in self.items:
            self.items.move_to_end(i)
            return self.items[i]
        s = self.cohort[i]
        self.items[i] = s
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return s


def _manifest_from_studies(studies: Sequence[Study]) -> pd.DataFrame:
    rows = []
    for s in studies:
        hw = s.shape_hw if s.views else (0, 0)
        rows.append(
            {
                "study_key": s.study_key,
                "patient_key": s.patient_key,
                "study_date": "" if s.study_date is None else str(s.study_date),
                "label": s.label or "",
                "views": "+".join(s.views),
                "rows": hw[0],
                "cols": hw[1],
                "spacing_row": s.pixel_spacing[0],
                "spacing_col": s.pixel_spacing[1],
                "counts_ant": float(s.anterior.sum()) if s.anterior is not None else np.nan,
                "counts_post": float(s.posterior.sum()) if s.posterior is not None else np.nan,
                "manufacturer": s.meta.get("manufacturer", ""),
                "model": s.meta.get("model", ""),
                "status": "ok",
                "flags": "; ".join(s.flags),
            }
        )
    return pd.DataFrame(rows)


def _resolve(manifest: Any) -> tuple[pd.DataFrame | None, Sequence[Study], Path | None]:
    """Manifest table, a lazy study sequence, and the manifest's folder."""
    if isinstance(manifest, AuditResult):
        manifest = manifest.manifest
    if isinstance(getattr(manifest, "manifest", None), pd.DataFrame) and isinstance(manifest, Sequence):
        return manifest.manifest.reset_index(drop=True), manifest, None  # a manifest.Cohort
    if isinstance(manifest, Sequence) and not isinstance(manifest, (str, bytes)):
        if len(manifest) == 0 or isinstance(manifest[0], Study):
            return None, manifest, None  # studies in memory: the manifest is built while reading
    if isinstance(manifest, pd.DataFrame):
        # ingest's in-memory manifest names its folder (attrs["root"]): skipped.csv is there
        root = manifest.attrs.get("root") or None
        return manifest.reset_index(drop=True), load_cohort(manifest, with_shapes=False), (Path(root) if root else None)
    path = resolve_manifest(manifest)
    try:
        df = read_manifest(path)
    except InputError:
        raise
    except Exception as exc:  # pandas raises several kinds for a broken CSV
        raise InputError(path, f"cannot read the manifest as CSV ({exc.__class__.__name__})") from exc
    return df, load_cohort(df, with_shapes=False, root=path.parent), path.parent


def _clean_reason(reason: str) -> str:
    """Drop a leading file path from a reason (``"<path>: problem"``): paths are never shown."""
    reason = str(reason)
    if ": " in reason and ("/" in reason.split(": ", 1)[0] or "\\" in reason.split(": ", 1)[0]):
        return reason.split(": ", 1)[1]
    return reason


def ingest_findings(
    manifest: pd.DataFrame,
    folder: Path | None = None,
    skipped: Iterable[tuple[str, str]] | None = None,
    manifest_path: Path | None = None,
) -> list[C.Finding]:
    """Ingest's own findings as audit rows: non-ok rows, manifest flags, skipped files.

    Skipped files come from ``skipped`` or a ``skipped.csv`` (columns ``path, reason``)
    beside the manifest; they have no study key, so they are named by a pseudonymous file
    key ``F-...`` (the path itself is never shown). ``skipped.csv`` is read only when the
    ingest record beside ``manifest_path`` ties it to that manifest
    (:func:`scintilab.outputs.side_file_belongs`); a list left by another ingest is named
    as such and not used.
    """
    out: list[C.Finding] = []
    for _, row in manifest.iterrows():
        key = str(row.get("study_key", ""))
        status = str(row.get("status", "ok") or "ok")
        flags = row.get("flags", "")
        flags = "" if not isinstance(flags, str) else flags
        if status != "ok":
            out.append(C.Finding("ingest_flag", key, "", 1.0, f"status {status}" + (f": {flags}" if flags else "")))
            continue
        for fl in [x.strip() for x in flags.split(";") if x.strip()]:
            out.append(C.Finding("ingest_flag", key, "", 0.5, fl))
    rows = list(skipped or [])
    if not rows and folder is not None:
        for name in ("skipped.csv", "ingest_skipped.csv"):
            p = folder / name
            if p.is_file() and manifest_path is not None and name == "skipped.csv":
                from scintilab.outputs import side_file_belongs

                belongs = side_file_belongs(manifest_path, p)
                if not belongs:
                    why = (
                        "was written by another ingest, not with this manifest"
                        if belongs is False
                        else "is not tied to this manifest (no ingest record beside it)"
                    )
                    out.append(
                        C.Finding(
                            "ingest_skipped",
                            pseudonymize(name, "F"),
                            "",
                            0.5,
                            f"{name} beside the manifest {why}: not read (re-ingest to list skipped files)",
                        )
                    )
                    break
            if p.is_file():
                try:
                    sk = pd.read_csv(p, keep_default_na=False, dtype=str)
                except (OSError, ValueError) as exc:  # a broken side file must not stop the audit
                    out.append(
                        C.Finding(
                            "ingest_skipped",
                            pseudonymize(name, "F"),
                            "",
                            0.5,
                            f"{name} beside the manifest unreadable ({exc.__class__.__name__})",
                        )
                    )
                    break
                if {"path", "reason"} <= set(sk.columns):
                    rows = list(zip(sk["path"], sk["reason"]))
                elif sk.shape[1] >= 2:
                    rows = list(zip(sk.iloc[:, 0], sk.iloc[:, 1]))
                break
    for path, reason in rows:
        out.append(C.Finding("ingest_skipped", pseudonymize(str(path), "F"), "", 1.0, _clean_reason(reason)))
    return out


# --------------------------------------------------------------------------- the audit


def _pair_findings(
    feats: list[StudyFeatures], idx_of: list[int], cache: _Cache, k: int, known_same: set[tuple[str, str]]
) -> list[C.Finding]:
    """Exact duplicates by hash; near duplicates and same-patient suspects by signature."""
    out: list[C.Finding] = []
    ok = [f for f in feats if f.error is None and f.views]
    by_hash: dict[str, list[StudyFeatures]] = {}
    for f in ok:
        by_hash.setdefault(f.pixel_hash, []).append(f)
    exact: set[frozenset[str]] = set()
    for group in by_hash.values():
        for j in range(1, len(group)):
            a, b = group[0], group[j]
            exact.add(frozenset((a.study_key, b.study_key)))
            out.append(
                C.Finding(
                    "exact_duplicate",
                    a.study_key,
                    b.study_key,
                    1.0,
                    "identical pixels in both views under another study id",
                )
            )
    if len(ok) < 2:
        return out
    x = np.stack([signature_vector(f) for f in ok])
    nn, sim = nearest_neighbours(x, k=k)
    shp = np.stack([shape_vector(f) for f in ok])
    # Chance level for outlines: each body's nearest other outline, in mm RMS.
    rs = np.arange(len(ok)) if len(ok) <= 4096 else np.random.default_rng(0).choice(len(ok), 2048, replace=False)
    dd = np.sqrt(
        np.maximum(0.0, (shp[rs] ** 2).sum(1)[:, None] + (shp**2).sum(1)[None] - 2 * shp[rs] @ shp.T) / shp.shape[1]
    )
    dd[np.arange(len(rs)), rs] = np.inf
    med_shape = float(np.median(dd.min(axis=1)))

    # Pass 1: compare candidate pairs in full; copies of one acquisition are duplicates.
    seen: set[frozenset[str]] = set()
    tested: list[tuple[int, int, float, float, float]] = []
    dups: set[frozenset[str]] = set(exact)
    for i in range(len(ok)):
        for j, s in zip(nn[i], sim[i]):
            a, b = ok[i], ok[int(j)]
            pair = frozenset((a.study_key, b.study_key))
            if s < C.CANDIDATE_SIM or pair in seen or pair in exact:
                continue
            seen.add(pair)
            resid, smooth = C.match_studies(cache[idx_of[i]], cache[idx_of[int(j)]])
            if resid <= C.DUP_NOISE_RATIO:
                dups.add(pair)
                out.append(
                    C.Finding(
                        "near_duplicate",
                        a.study_key,
                        b.study_key,
                        float(1 - resid),
                        f"same acquisition: pixel differences {resid:.2f} of Poisson noise after "
                        f"alignment (two acquisitions give about 1; signature r={s:.3f}); {_how(a, b)}",
                    )
                )
            else:
                tested.append((i, int(j), float(s), resid, smooth))

    # Pass 2, "beyond chance": each study's best match that is neither a copy nor a known
    # visit of its patient sets the chance level. Dissimilarity spreads multiplicatively,
    # so the level lives in log10(1 - r).
    best = np.full(len(ok), np.nan)
    for i in range(len(ok)):
        for j, s in zip(nn[i], sim[i]):
            pair = frozenset((ok[i].study_key, ok[int(j)].study_key))
            if pair not in dups and tuple(sorted(pair)) not in known_same:
                best[i] = np.log10(max(1.0 - float(s), 1e-6))
                break
    med1, sig1 = C._robust(best)
    sig1 = max(sig1 if np.isfinite(sig1) else 0.0, 0.05)
    for i, j, s, resid, smooth in tested:
        a, b = ok[i], ok[j]
        if tuple(sorted((a.study_key, b.study_key))) in known_same:
            continue  # one patient key already: a second visit, not a suspect
        z = (med1 - np.log10(max(1.0 - s, 1e-6))) / sig1
        d_shape = float(np.sqrt(np.mean((shp[i] - shp[j]) ** 2)))
        if z >= 3.0 and smooth > 0.95 and d_shape <= 1.5 * med_shape:
            out.append(
                C.Finding(
                    "same_patient",
                    a.study_key,
                    b.study_key,
                    float(min(1.0, z / 10)),
                    f"different acquisitions (pixel differences {resid:.1f} x Poisson noise) "
                    f"of bodies alike beyond chance: signature r={s:.4f}, {z:.1f} sigma closer than "
                    f"the cohort's best matches; outlines differ {d_shape:.0f} mm RMS "
                    f"(nearest other body typically {med_shape:.0f} mm): review, never merged silently",
                )
            )
    return out


def _how(a: StudyFeatures, b: StudyFeatures) -> str:
    if a.shape != b.shape:
        return f"matrix {a.shape[0]}x{a.shape[1]} vs {b.shape[0]}x{b.shape[1]}"
    ca = sum(v.counts for v in a.views)
    cb = sum(v.counts for v in b.views)
    if cb > 0 and abs(ca / cb - 1) > 0.05:
        return f"intensity scaled x{ca / cb:.2f}"
    return "same matrix, other id"


def audit(
    manifest: Any,
    *,
    split: Any = None,
    out: str | Path | None = None,
    review: Any = None,
    skipped: Iterable[tuple[str, str]] | None = None,
    neighbours: int = 5,
    progress: bool = False,
) -> AuditResult:
    """Audit a cohort: duplicates, same-patient suspects, mislabelled views, unusable scans.

    Args:
        manifest: ingest's manifest (CSV path or DataFrame), or a list of :class:`Study`.
        split: optional split (CSV path or DataFrame ``study_key, split``): pairs across it
            are reported as ``split_leak``.
        out: folder for ``flags.csv``, ``datacard.md`` and ``datacard.html``.
        review: review CSV (``kind, study_a, study_b, decision, note``): dismissed
            findings leave the table (kept in :attr:`AuditResult.dismissed`).
        skipped: ingest's skipped files ``(path, reason)`` (else ``skipped.csv`` beside
            the manifest is read when present).
        neighbours: nearest neighbours per study compared in full.
        progress: show a progress bar.

    Returns:
        The :class:`AuditResult`.
    """
    man, cohort, folder = _resolve(manifest)
    findings: list[C.Finding] = []
    feats: list[StudyFeatures] = []
    idx_of: list[int] = []
    it: Iterable[int] = range(len(cohort))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="audit", unit="study")
    # Small matrix products (thumbnails) run faster on one BLAS thread than on many.
    limiter = threadpool_limits(1, "blas")
    built: list[dict] = []
    for i in it:
        try:
            s = cohort[i]
            if man is None:
                built.append(_manifest_from_studies([s]).iloc[0].to_dict())
            if not s.views:
                raise InputError(None, "no view could be read")
            f = study_features(s)
        except (InputError, OSError, ValueError) as exc:
            key = str(man.iloc[i]["study_key"]) if man is not None and i < len(man) else f"#{i}"
            findings.append(C.Finding("unreadable", key, "", 1.0, _clean_reason(str(exc))))
            continue
        feats.append(f)
        idx_of.append(i)
    if man is None:
        man = pd.DataFrame(built)
    known_same: set[tuple[str, str]] = set()
    by_pat: dict[str, list[str]] = {}
    for f in feats:
        by_pat.setdefault(f.patient_key, []).append(f.study_key)
    for ks in by_pat.values():
        known_same |= {tuple(sorted((a, b))) for a in ks for b in ks if a != b}

    # Pair search on whole-body studies only: an empty or spot frame has no signature.
    per_study = C.study_checks(feats)
    unusable = {x.study_a for x in per_study if x.kind in ("empty_frame", "spot_view")}
    cache = _Cache(cohort)
    usable = [(f, i) for f, i in zip(feats, idx_of) if f.study_key not in unusable]
    findings += _pair_findings([f for f, _ in usable], [i for _, i in usable], cache, neighbours, known_same)
    limiter.restore_original_limits()
    findings += per_study
    findings += C.lossy_findings(man)
    findings += C.turned_findings(man)
    manifest_path = (
        Path(manifest)
        if isinstance(manifest, (str, Path))
        else Path(manifest.attrs["path"])
        if isinstance(manifest, pd.DataFrame) and manifest.attrs.get("path")
        else None
    )
    findings += ingest_findings(man, folder, skipped, manifest_path)

    flags = pd.DataFrame([x.as_dict() for x in findings], columns=FLAG_COLUMNS)
    flags["study_b"] = flags["study_b"].fillna("").astype(str)
    flags = flags.drop_duplicates(subset=["kind", "study_a", "study_b", "detail"])
    rv = read_review(review)
    gone = dismissed_ids(rv)
    is_gone = (
        flags.apply(lambda r: pair_id(r["kind"], r["study_a"], r["study_b"]) in gone, axis=1)
        if len(flags)
        else pd.Series([], dtype=bool)
    )
    dismissed = flags[is_gone.astype(bool)].copy()
    flags = flags[~is_gone.astype(bool)].copy()
    if split is not None:
        leaks = check_split(split, flags)
        flags = pd.concat(
            [
                flags,
                pd.DataFrame(
                    [
                        {
                            "kind": "split_leak",
                            "study_a": p.study_a,
                            "study_b": p.study_b,
                            "score": p.score,
                            "detail": f"{p.kind.replace('_', ' ')} pair across the split: {p.side_a} and {p.side_b}",
                        }
                        for p in leaks
                    ],
                    columns=FLAG_COLUMNS,
                ),
            ],
            ignore_index=True,
        )
    order = {k: n for n, k in enumerate(KIND_ORDER)}
    flags = flags.assign(_o=flags["kind"].map(order).fillna(len(order)))
    flags = flags.sort_values(["_o", "score"], ascending=[True, False]).drop(columns="_o").reset_index(drop=True)
    result = AuditResult(flags, dismissed.reset_index(drop=True), man, feats)
    if out is not None:
        write_outputs(result, out)
    return result


#: What ``scintilab audit`` writes into its folder (and ``--overwrite`` clears).
AUDIT_OUTPUTS = ("flags.csv", "datacard.md", "datacard.html")


def write_outputs(result: AuditResult, out: str | Path) -> Path:
    """Write ``flags.csv``, ``datacard.md`` and ``datacard.html`` into ``out``."""
    from scintilab.audit.datacard import write_datacard

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(result.flags, out / "flags.csv")
    write_datacard(result, out)
    result.out = out
    return out


def cli_main(argv: list[str]) -> int:
    """``scintilab audit MANIFEST [--split SPLIT_CSV] [--review REVIEW_CSV] --out DIR``."""
    ap = argparse.ArgumentParser(
        prog="scintilab audit",
        description=(
            "Find duplicates, same-patient suspects, mislabelled views and unusable scans; "
            "write DIR/flags.csv and a data card DIR/datacard.html (.md)."
        ),
    )
    ap.add_argument("manifest", help="manifest CSV written by 'scintilab ingest', or a cohort folder")
    ap.add_argument("--split", help="split CSV (study_key, split): report pairs across it")
    ap.add_argument("--review", help="review CSV of accepted/dismissed flags")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--neighbours", type=int, default=5, help="nearest neighbours compared in full per study")
    ap.add_argument("--fail-on-leak", action="store_true", help="exit 1 when a pair straddles the split")
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier audit in --out (flags.csv, datacard.*; a review.csv there stays)",
    )
    args = ap.parse_args(argv)
    try:
        from scintilab.ingest import resolve_manifest

        args.manifest = resolve_manifest(args.manifest)  # a bad input is named before --out is made
        # refused before the studies are read: a folder holding another audit, a file, no write access
        with OutputFolder(
            args.out,
            "audit",
            AUDIT_OUTPUTS,
            overwrite=args.overwrite,
            inputs={"manifest": args.manifest, "split": args.split, "review": args.review},
        ):
            res = audit(
                args.manifest,
                split=args.split,
                out=args.out,
                review=args.review,
                neighbours=args.neighbours,
                progress=True,
            )
    except InputError as exc:
        print(f"scintilab audit: {exc}", file=sys.stderr)
        return 2
    counts = res.kinds()
    print(
        f"{len(res.manifest)} studies audited; {len(res.flags)} findings"
        + ("" if counts.empty else ": " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    )
    print(f"wrote {res.out / 'flags.csv'} and {res.out / 'datacard.html'}")
    if args.fail_on_leak and (res.flags["kind"] == "split_leak").any():
        return 1
    return 0
