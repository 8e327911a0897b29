"""The paper's datasets D1, D2, D3: selection, augmentation copies, a memmap cache, Table 2.

Guo et al. 2022 (Table 2) build three datasets from 1011 single-view images of 506 patients:

* **D1**: balanced originals: all ADMet (237) and nADMet (160) images plus 226 of the 614
  NoMet images, sampled at random;
* **D2**: D1 expanded by rotation/translation to ADMet 624, nADMet 640, NoMet 614;
* **D3**: D2 fused pairwise (anterior + flipped posterior) to 318 / 320 / 307.

Choices made here (documented because the paper is silent):

* **Sampling unit.** NoMet is sampled down by *study* (both views together) so that every
  study kept in D1 can still be fused in D3; ``nomet_keep`` counts images, as the paper does.
* **Orientation.** Posterior views in D1/D2 are flipped left-right into anterior orientation,
  so that every single-view image shows the patient's right on the image left.
* **Augmented pairs.** Copy *j* of a study carries one parameter set, used for its anterior
  view, its flipped posterior view (D2) and its fused image (D3). The paper fuses
  augmented pairs; we align the *original* pair by its critical points, fuse it, and then
  apply the copy's rotation/translation. For addition and the mean this is the same as
  fusing the identically augmented pair (both operations are linear) and it avoids finding
  critical points on rotated images. Copy 0 is the original.
* **Counts for smaller cohorts.** The paper's per-class multipliers (D2 / D1: 624/237,
  640/160, 614/226) and NoMet fraction (226/614) are applied to any cohort, so a smaller
  cohort gets proportionally scaled counts; :func:`dataset_table` prints them in the
  layout of Table 2.
* **Preprocessing** (in this order): augmentation on the stored matrix, fusion, resampling
  to ``image_size`` (bilinear, anti-aliased when shrinking), then
  :func:`~scintilab.preprocessing.normalize`.

This module builds the sets (cached on disk by :mod:`scintilab.dataset_cache`) and their
tables, and holds the ``scintilab datasets`` command. The other parts of the classifier's input live beside it and are named here too, so
``from scintilab.datasets import ...`` keeps working for them: the image preparation shared
with scoring (:mod:`scintilab.preprocessing`), the :class:`~scintilab.image_set.ImageSet`
record (:mod:`scintilab.image_set`), patient-level splits (:mod:`scintilab.splits`) and the
Keras input pipeline (:mod:`scintilab.keras_input`; ``ScanSequence`` is still built on first
use, so importing this module imports no Keras).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab.augment import DEFAULT_R_T, DEFAULT_T_T, apply_params, draw_params, params_str
from scintilab.dataset_cache import load_cache, study_identity, truncate_npy, write_cache_meta
from scintilab.errors import InputError, partial_exit
from scintilab.fusion import flip_posterior, fuse

# image_set, keras_input, preprocessing and splits were split out of this module; their public
# names are named here too (__all__) for the tests and notebooks that import them from
# scintilab.datasets, while the package's own modules import them from where they live
from scintilab.image_set import KINDS, ImageSet
from scintilab.ingest import load_cohort  # lazy: written by the ingest module
from scintilab.keras_input import as_tf_dataset, scan_sequence_class
from scintilab.outputs import OutputFolder, write_csv
from scintilab.preprocessing import (
    NORM_CLIP,
    NORM_PERCENTILE,
    NORMALIZATION,
    normalize,
    oriented_views,
    preprocess,
    resample,
)
from scintilab.splits import kfold_splits, patient_split
from scintilab.study import CLASSES, Study
from scintilab.utils import as_rng

#: The paper's Table 2 (per class and total).
PAPER_TABLE2: dict[str, dict[str, int]] = {
    "D1": {"ADMet": 237, "nADMet": 160, "NoMet": 226},
    "D2": {"ADMet": 624, "nADMet": 640, "NoMet": 614},
    "D3": {"ADMet": 318, "nADMet": 320, "NoMet": 307},
}
#: Original single-view images per class in the paper's cohort.
PAPER_ORIGINALS: dict[str, int] = {"NoMet": 614, "ADMet": 237, "nADMet": 160}
#: Fraction of NoMet images the paper kept for D1 (226 of 614).
PAPER_NOMET_FRACTION = 226 / 614
#: D2 / D1 per class: how many images (original + augmented) each D1 image becomes.
PAPER_MULTIPLIERS: dict[str, float] = {c: PAPER_TABLE2["D2"][c] / PAPER_TABLE2["D1"][c] for c in CLASSES}
#: Column order of Table 2.
TABLE_COLUMNS: tuple[str, ...] = ("ADMet", "nADMet", "NoMet")


# --------------------------------------------------------------------------- building


def _copies_per_study(n_units: int, multiplier: float, gen: np.random.Generator) -> np.ndarray:
    """Spread round(n_units * multiplier) copies over n_units studies (each >= 1, even spread)."""
    if n_units == 0:
        return np.zeros(0, dtype=np.int64)
    total = max(n_units, int(round(n_units * multiplier)))
    base = total // n_units
    copies = np.full(n_units, base, dtype=np.int64)
    extra = total - base * n_units
    if extra:
        copies[gen.choice(n_units, size=extra, replace=False)] += 1
    return copies


def _n_views(study: Study) -> int:
    """Views a study holds, from its metadata when possible (no pixel read for lazy studies)."""
    meta = study.meta or {}
    if "n_views" in meta:
        return int(meta["n_views"])
    views = meta.get("views")
    if isinstance(views, str) and views:
        return len([v for v in views.replace("+", ",").replace(";", ",").replace(" ", ",").split(",") if v])
    if isinstance(views, (list, tuple)):
        return len(views)
    return len(study.views)  # in-memory study: looking at its arrays costs nothing


@dataclass
class _Record:
    """What selection needs of a study, without its pixels."""

    index: int
    study_key: str
    patient_key: str
    label: str | None
    n_views: int
    ident: list[Any]
    study: Study | None = None  # held for in-memory sequences only


def _records(studies: Sequence[Study], skipped: list[tuple[str, str]]) -> list[_Record]:
    """Keys, labels and view counts of every study.

    A lazy :class:`scintilab.manifest.Cohort` (anything with a ``manifest`` DataFrame) is read
    from its manifest, so pixels are loaded once, in the build loop, one study at a time;
    other sequences are iterated (a study that fails to load is skipped and reported).
    """
    manifest = getattr(studies, "manifest", None)
    out: list[_Record] = []
    if isinstance(manifest, pd.DataFrame) and len(manifest) == len(studies):
        for i, (_, row) in enumerate(manifest.iterrows()):
            label = row.get("label")
            label = None if label is None or (isinstance(label, float) and math.isnan(label)) else str(label)
            views = str(row.get("views") or "")
            n_views = len([v for v in views.replace("+", ",").split(",") if v.strip()]) or 2
            ident = [
                str(row.get(k))
                for k in (
                    "study_key",
                    "patient_key",
                    "label",
                    "views",
                    "rows",
                    "cols",
                    "counts_ant",
                    "counts_post",
                    "ant_path",
                    "post_path",
                )
            ]
            root = getattr(studies, "root", None)
            for k in ("ant_path", "post_path"):
                v = row.get(k)
                if isinstance(v, str) and v:
                    p = Path(v) if Path(v).is_absolute() or root is None else Path(root) / v
                    try:
                        st = os.stat(p)
                        ident.append((st.st_size, st.st_mtime_ns))
                    except OSError:
                        ident.append(None)
            out.append(_Record(i, str(row["study_key"]), str(row["patient_key"]), label, n_views, ident))
        return out
    for i in range(len(studies)):
        try:
            s = studies[i]
        except InputError as err:
            skipped.append((f"study #{i}", err.problem))
            continue
        out.append(_Record(i, s.study_key, s.patient_key, s.label, _n_views(s), study_identity(s), study=s))
    return out


def _resolve_keep(nomet_keep: int | float | None, n_nomet_images: int) -> int:
    if nomet_keep is None:
        return int(round(n_nomet_images * PAPER_NOMET_FRACTION))
    if isinstance(nomet_keep, float) and nomet_keep <= 1.0:
        return int(round(n_nomet_images * nomet_keep))
    return min(int(nomet_keep), n_nomet_images)


def build_dataset(
    studies: Sequence[Study],
    name: str = "D3",
    *,
    image_size: tuple[int, int] = (1024, 256),
    r_t: float = DEFAULT_R_T,
    t_t: int = DEFAULT_T_T,
    method: str = "add",
    rng: np.random.Generator | int | None = None,
    nomet_keep: int | float | None = None,
    multipliers: Mapping[str, float] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    aug_mode: str = "both",
) -> ImageSet:
    """Build D1, D2 or D3 from any cohort.

    The same ``rng`` seed gives D1, D2 and D3 that share the NoMet subset and the
    augmentation parameters of every copy (D3 copy *j* is the fusion of D2's copy-*j* views).

    Args:
        studies: labelled studies (unlabelled ones are skipped and reported).
        name: ``D1`` (balanced originals), ``D2`` (D1 augmented) or ``D3`` (D2 fused).
        image_size: (rows, cols) of the output images; e.g. (512, 128) for CPU runs.
        r_t: maximum rotation in degrees for D2/D3.
        t_t: maximum translation in pixels (stored matrix) for D2/D3.
        method: fusion aggregation for D3 (see :data:`scintilab.fusion.METHODS`).
        rng: seed or Generator; int seeds make the result (and the cache key) reproducible.
        nomet_keep: NoMet images kept in D1/D2/D3: an int count, a fraction (float <= 1),
            or None for the paper's fraction 226/614.
        multipliers: D2/D1 per class; None = the paper's (:data:`PAPER_MULTIPLIERS`).
        cache_dir: folder for a float32 memmap cache keyed by a fingerprint of the studies
            and all parameters; None keeps everything in memory. Needs an int (or None
            meaning 0) seed to be reusable.
        progress: show a progress bar and print Table 2 counts.
        aug_mode: ``both`` or ``either`` (see :func:`scintilab.augment.draw_params`).

    Returns:
        The :class:`ImageSet`.

    Raises:
        ValueError: unknown name, or no usable study.
    """
    name = name.upper()
    if name not in ("D1", "D2", "D3"):
        raise ValueError(f"dataset name must be D1, D2 or D3, got {name!r}")
    mult = dict(PAPER_MULTIPLIERS if multipliers is None else multipliers)
    seed_for_key: Any = rng if isinstance(rng, (int, np.integer)) or rng is None else "generator"
    base = as_rng(0 if rng is None else rng)
    sel_seed, aug_seed, dist_seed = (int(x) for x in base.integers(0, 2**31 - 1, size=3))

    skipped: list[tuple[str, str]] = []
    records = _records(studies, skipped)
    usable = [r for r in records if r.label in CLASSES]
    for r in records:
        if r.label not in CLASSES:
            skipped.append((r.study_key, f"no usable label ({r.label!r})"))

    # D1 selection: NoMet sampled down by study; the count is in images (views), as the paper.
    nomet = [r for r in usable if r.label == "NoMet"]
    n_nomet_images = sum(r.n_views for r in nomet)
    keep_images = _resolve_keep(nomet_keep, n_nomet_images)
    order = as_rng(sel_seed).permutation(len(nomet))
    kept_nomet: set[str] = set()
    acc = 0
    for i in order:
        if acc >= keep_images:
            break
        kept_nomet.add(nomet[i].study_key)
        acc += nomet[i].n_views
    selected = [r for r in usable if r.label != "NoMet" or r.study_key in kept_nomet]
    if not selected:
        raise ValueError("no labelled study to build a dataset from")

    # copies per study (copy 0 = original); D1 has one copy of everything
    copies = np.ones(len(selected), dtype=np.int64)
    if name in ("D2", "D3"):
        dist = as_rng(dist_seed)
        for c in CLASSES:
            idx = [i for i, r in enumerate(selected) if r.label == c]
            copies[idx] = _copies_per_study(len(idx), float(mult.get(c, 1.0)), dist)

    params = {
        "name": name,
        "image_size": list(image_size),
        "r_t": float(r_t),
        "t_t": int(t_t),
        "method": method,
        "seed": seed_for_key,
        "nomet_keep": nomet_keep,
        "multipliers": mult,
        "aug_mode": aug_mode,
        "normalization": NORMALIZATION,
        "version": 1,
    }
    fingerprint = None
    cache_base = None
    if cache_dir is not None and seed_for_key != "generator":
        h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
        for r in records:
            h.update(json.dumps(r.ident, default=str).encode())
        fingerprint = h.hexdigest()[:16]
        cache_base = Path(cache_dir) / f"{name}-{fingerprint}"
        cached = load_cache(cache_base)
        if cached is not None:
            if progress:
                print(f"{name}: {len(cached)} images from cache {cache_base.name}")
            return cached

    per_view = 1 if name == "D3" else 2
    n_max = int(copies.sum()) * per_view
    h_out, w_out = int(image_size[0]), int(image_size[1])
    if cache_base is not None:
        cache_base.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_base.with_suffix(".f32.partial")
        images: np.ndarray = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(max(n_max, 1), h_out, w_out)
        )
    else:
        images = np.empty((max(n_max, 1), h_out, w_out), dtype=np.float32)
    labels: list[int] = []
    pkeys: list[str] = []
    skeys: list[str] = []
    kinds: list[str] = []
    augs: list[str] = []

    iterator: Any = range(len(selected))
    if progress:
        from tqdm import tqdm  # lazy: progress is optional

        iterator = tqdm(iterator, desc=f"building {name}", unit="study", file=sys.stdout, leave=False)
    n = 0
    for i in iterator:
        rec = selected[i]
        try:
            s = rec.study if rec.study is not None else studies[rec.index]  # lazy cohorts read pixels here, once
            ant, post = s.anterior, s.posterior
            if ant is None and post is None:
                raise InputError(rec.study_key, "holds no view")
            sources: list[tuple[str, np.ndarray]] = []
            if name == "D3":
                if ant is None or post is None:
                    raise InputError(rec.study_key, "D3 needs both views; only one present")
                sources.append(("fused", fuse(ant, post, method=method).image))
            else:
                if ant is not None:
                    sources.append(("ANT", np.asarray(ant, dtype=np.float32)))
                if post is not None:
                    sources.append(("POST", flip_posterior(post)))
        except (InputError, ValueError) as err:
            # a bad file is reported by its study key only (paths may carry identity)
            skipped.append((rec.study_key, str(err.problem if isinstance(err, InputError) else err)))
            continue
        # one Generator per study, from the dataset seed and the study's position: D2 and
        # D3 built with the same seed draw the same parameters for the same copy
        gen = np.random.default_rng([aug_seed, i])
        plist: list[dict | None] = [None] + [draw_params(r_t, t_t, gen, aug_mode) for _ in range(int(copies[i]) - 1)]
        for p in plist:
            for kind, img in sources:
                out = img if p is None else apply_params(img, p)
                images[n] = preprocess(out, (h_out, w_out))
                labels.append(CLASSES.index(rec.label))
                pkeys.append(rec.patient_key)
                skeys.append(rec.study_key)
                kinds.append(kind)
                augs.append(params_str(p))
                n += 1

    meta = {**params, "fingerprint": fingerprint, "n_studies": len(selected)}
    if cache_base is not None:
        assert isinstance(images, np.memmap)
        images.flush()
        del images
        final = cache_base.with_suffix(".npy")
        truncate_npy(tmp, n, (h_out, w_out), final)
        ds = ImageSet(
            images=np.empty((0, h_out, w_out), np.float32),
            labels=np.asarray(labels, dtype=np.int64),
            patient_keys=np.asarray(pkeys, dtype=object),
            study_keys=np.asarray(skeys, dtype=object),
            kinds=np.asarray(kinds, dtype=object),
            aug=np.asarray(augs, dtype=object),
            name=name,
            skipped=skipped,
            meta=meta,
        )
        write_cache_meta(cache_base, ds)
        ds.images = np.load(final, mmap_mode="r")
    else:
        ds = ImageSet(
            images=images[:n].copy() if n < len(images) else images,
            labels=np.asarray(labels, dtype=np.int64),
            patient_keys=np.asarray(pkeys, dtype=object),
            study_keys=np.asarray(skeys, dtype=object),
            kinds=np.asarray(kinds, dtype=object),
            aug=np.asarray(augs, dtype=object),
            name=name,
            skipped=skipped,
            meta=meta,
        )
    if progress:
        counts = ds.class_counts()
        print(
            f"{name}: "
            + ", ".join(f"{c} {counts[c]}" for c in TABLE_COLUMNS)
            + f", total {len(ds)}"
            + (f"; skipped {len(skipped)} studies" if skipped else "")
        )
    return ds


def build_datasets(
    studies: Sequence[Study], names: Sequence[str] = ("D1", "D2", "D3"), **kw: Any
) -> dict[str, ImageSet]:
    """Build several datasets with the same parameters (and so the same subsets/copies).

    Args:
        studies: the cohort; a lazy sequence is read once per dataset.
        names: which of D1, D2, D3.
        **kw: passed to :func:`build_dataset` (pass an int ``rng`` for shared subsets).

    Returns:
        ``{name: ImageSet}``.
    """
    return {n: build_dataset(studies, n, **kw) for n in names}


# --------------------------------------------------------------------------- tables


def dataset_table(*sets: ImageSet, paper: bool = False) -> pd.DataFrame:
    """Counts per class in the layout of the paper's Table 2 (ADMet, nADMet, NoMet, Total).

    Args:
        *sets: datasets (rows, named by :attr:`ImageSet.name`).
        paper: add the paper's rows (``paper D1``...) for comparison.

    Returns:
        A DataFrame indexed by dataset name.
    """
    rows: dict[str, dict[str, int]] = {}
    for ds in sets:
        counts = ds.class_counts()
        rows[ds.name] = {c: counts[c] for c in TABLE_COLUMNS}
    if paper:
        for k, v in PAPER_TABLE2.items():
            rows[f"paper {k}"] = dict(v)
    df = pd.DataFrame.from_dict(rows, orient="index", columns=list(TABLE_COLUMNS)).fillna(0).astype(int)
    df["Total"] = df.sum(axis=1)
    df.index.name = "Dataset"
    return df


def expected_table(
    originals: Mapping[str, int], nomet_keep: int | float | None = None, multipliers: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Table 2 predicted for a cohort with the given single-view images per class.

    Args:
        originals: images per class in the cohort (e.g. :data:`PAPER_ORIGINALS`).
        nomet_keep: as for :func:`build_dataset`.
        multipliers: as for :func:`build_dataset`.

    Returns:
        Rows D1, D2, D3 (D3 ~ D2 / 2: one fused image per pair of views).
    """
    mult = dict(PAPER_MULTIPLIERS if multipliers is None else multipliers)
    d1 = {c: int(originals.get(c, 0)) for c in TABLE_COLUMNS}
    d1["NoMet"] = _resolve_keep(nomet_keep, int(originals.get("NoMet", 0)))
    d2 = {c: int(round(d1[c] * mult.get(c, 1.0))) for c in TABLE_COLUMNS}
    d3 = {c: int(round(d2[c] / 2)) for c in TABLE_COLUMNS}
    df = pd.DataFrame.from_dict({"D1": d1, "D2": d2, "D3": d3}, orient="index", columns=list(TABLE_COLUMNS))
    df["Total"] = df.sum(axis=1)
    df.index.name = "Dataset"
    return df


def split_table(ds: ImageSet, train: np.ndarray, test: np.ndarray) -> pd.DataFrame:
    """Images and patients per class on each side of a split."""
    rows = {}
    for side, idx in (("train", train), ("test", test)):
        sub = ds.labels[idx]
        rows[side] = {c: int((sub == CLASSES.index(c)).sum()) for c in TABLE_COLUMNS}
        rows[side]["Total"] = int(len(idx))
        rows[side]["patients"] = int(len(np.unique(ds.patient_keys[idx])))
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------- Keras input


def __getattr__(name: str) -> Any:
    # ScanSequence lives in scintilab.keras_input and is built on first use (it subclasses
    # keras.utils.PyDataset), so "import scintilab.datasets" stays free of the multi-second Keras
    # import; served here too for the tests and notebooks that import it from datasets
    if name == "ScanSequence":
        return scan_sequence_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- CLI


def cli_main(argv: list[str]) -> int:
    """``scintilab datasets MANIFEST --out DIR``: build D1/D2/D3, print Table 2, write splits.

    Writes ``DIR/<name>-<fingerprint>.npy`` (+ ``.json``) caches and ``DIR/splits_<name>.csv``
    (one row per image: index, keys, label, kind, aug, split).
    """
    ap = argparse.ArgumentParser(prog="scintilab datasets", description=cli_main.__doc__.splitlines()[0])
    ap.add_argument("manifest", help="manifest CSV written by 'scintilab ingest', or a cohort folder")
    ap.add_argument("--out", required=True, help="output folder (cache and split files)")
    ap.add_argument("--names", nargs="+", default=["D1", "D2", "D3"], choices=["D1", "D2", "D3"])
    ap.add_argument("--image-size", nargs=2, type=int, default=[1024, 256], metavar=("ROWS", "COLS"))
    ap.add_argument("--r-t", type=float, default=DEFAULT_R_T, help="maximum rotation, degrees")
    ap.add_argument("--t-t", type=int, default=DEFAULT_T_T, help="maximum translation, pixels")
    ap.add_argument("--augmentation", help="augmentation.json (overrides --r-t/--t-t)")
    ap.add_argument("--method", default="add", choices=["add", "mean", "max", "geometric"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-size", type=float, default=0.3)
    ap.add_argument("--nomet-keep", type=float, default=None, help="NoMet images kept: count (>1) or fraction")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the split files of an earlier run in --out (the image cache is reused either way)",
    )
    args = ap.parse_args(argv)

    r_t, t_t = args.r_t, args.t_t
    if args.augmentation:
        from scintilab.augment import load_augmentation_config

        cfg = load_augmentation_config(args.augmentation)
        r_t, t_t = cfg["r_t"], cfg["t_t"]
    keep: int | float | None = args.nomet_keep
    if keep is not None and keep > 1:
        keep = int(keep)
    try:
        studies = load_cohort(args.manifest)
    except InputError as err:
        print(f"scintilab datasets: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    sets = []
    skipped: dict[str, str] = {}
    # the split files are this command's outputs; the cache files are named by content and reused
    with OutputFolder(out, "datasets", ["splits_*.csv"], overwrite=args.overwrite, inputs={"manifest": args.manifest}):
        for name in args.names:
            ds = build_dataset(
                studies,
                name,
                image_size=tuple(args.image_size),
                r_t=r_t,
                t_t=t_t,
                method=args.method,
                rng=args.seed,
                nomet_keep=keep,
                cache_dir=out,
                progress=not args.quiet,
            )
            train, test = patient_split(ds, args.test_size, rng=args.seed)
            frame = ds.frame()
            frame["split"] = "train"
            frame.loc[test, "split"] = "test"
            write_csv(frame, out / f"splits_{name}.csv")
            sets.append(ds)
            skipped.update((str(k), str(r)) for k, r in ds.skipped)
    for key, reason in skipped.items():
        print(f"skipped {key}: {reason}", file=sys.stderr)
    print(dataset_table(*sets).to_string())
    return partial_exit("datasets", len(skipped), "studies skipped (listed above)", None)


# ScanSequence is left out: a star import would then import Keras (module __getattr__ serves it)
__all__ = [
    "ImageSet",
    "KINDS",
    "NORMALIZATION",
    "NORM_CLIP",
    "NORM_PERCENTILE",
    "PAPER_MULTIPLIERS",
    "PAPER_NOMET_FRACTION",
    "PAPER_ORIGINALS",
    "PAPER_TABLE2",
    "TABLE_COLUMNS",
    "as_tf_dataset",
    "build_dataset",
    "build_datasets",
    "cli_main",
    "dataset_table",
    "expected_table",
    "kfold_splits",
    "normalize",
    "oriented_views",
    "patient_split",
    "preprocess",
    "resample",
    "split_table",
]
