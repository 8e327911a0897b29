"""The paper's datasets D1, D2, D3, patient-level splits and the Keras input pipeline.

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
  to ``image_size`` (bilinear, anti-aliased when shrinking), then :func:`normalize`.

Splits are patient-level: every image of one patient (both views, all visits, all augmented
copies) lands on one side. The audit can merge patients into larger groups (duplicates,
same-patient suspects); pass those as ``groups``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab.augment import DEFAULT_R_T, DEFAULT_T_T, apply_params, draw_params, params_str
from scintilab.errors import InputError
from scintilab.fusion import flip_posterior, fuse
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

#: Percentile of the nonzero pixels that maps to 1.0 in :func:`normalize`.
NORM_PERCENTILE = 99.5
#: Upper clip of normalised values (a full bladder or injection site must not set the scale).
NORM_CLIP = 4.0
#: The normalisation, as recorded in :attr:`ImageSet.normalization`.
NORMALIZATION = f"counts / p{NORM_PERCENTILE:g}(nonzero pixels of the image), clipped to [0, {NORM_CLIP:g}]"

KINDS: tuple[str, ...] = ("ANT", "POST", "fused")


def normalize(image: np.ndarray) -> np.ndarray:
    """Scale counts into a unit range the network can use, per image.

    ``x = counts / q`` with q the 99.5th percentile of the image's nonzero pixels, clipped
    to [0, 4]. Why per image: total counts differ several-fold between scans (dose, time
    since injection, body habitus), while the diagnosis lives in the *pattern* of uptake.
    Why a high percentile rather than the maximum: the maximum is usually the bladder or the
    injection site; q sits in the bright bone, so normal bone maps near 1 and hot lesions a
    little above. The clip keeps a full bladder (tens of times bone) from dominating.

    Args:
        image: (rows, cols) counts (any real dtype).

    Returns:
        float32 image in [0, 4]; all zeros for an empty image.
    """
    img = np.asarray(image, dtype=np.float32)
    pos = img[img > 0]
    if pos.size == 0:
        return np.zeros_like(img)
    q = float(np.percentile(pos, NORM_PERCENTILE))
    if q <= 0:
        q = float(pos.max())
    return np.clip(img / np.float32(q), 0.0, NORM_CLIP).astype(np.float32, copy=False)


def resample(image: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Resample to (rows, cols): bilinear, anti-aliased when shrinking (keeps mean counts).

    Args:
        image: (rows, cols) array.
        image_size: target (rows, cols).

    Returns:
        float32 array of the target size (the input itself, as float32, if sizes agree).
    """
    img = np.asarray(image, dtype=np.float32)
    if tuple(img.shape) == tuple(image_size):
        return img
    from skimage.transform import resize  # lazy: only needed when resampling

    shrink = image_size[0] < img.shape[0] or image_size[1] < img.shape[1]
    return resize(img, image_size, order=1, anti_aliasing=shrink, preserve_range=True, mode="constant").astype(
        np.float32
    )


def preprocess(image: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Resample then :func:`normalize` (the order every dataset image goes through)."""
    return normalize(resample(image, image_size))


@dataclass
class ImageSet:
    """A dataset ready for a model: images plus who they came from.

    Attributes:
        images: (N, rows, cols) float32 normalised images (may be a read-only ``np.memmap``).
        labels: (N,) int index into :data:`~scintilab.study.CLASSES`.
        patient_keys: (N,) pseudonymous patient keys (the default split groups).
        study_keys: (N,) pseudonymous study keys.
        kinds: (N,) ``ANT``, ``POST`` (flipped to anterior orientation) or ``fused``.
        aug: (N,) ``orig`` or the augmentation parameters (see :func:`scintilab.augment.params_str`).
        name: ``D1``, ``D2`` or ``D3``.
        normalization: how pixel values were scaled (:data:`NORMALIZATION`).
        skipped: (study_key, reason) for studies left out (bad or unlabelled).
        meta: build parameters (image_size, r_t, t_t, method, seed, fingerprint...).
    """

    images: np.ndarray
    labels: np.ndarray
    patient_keys: np.ndarray
    study_keys: np.ndarray
    kinds: np.ndarray
    aug: np.ndarray
    name: str = "D3"
    normalization: str = NORMALIZATION
    skipped: list[tuple[str, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.labels))

    def subset(self, idx: np.ndarray | Sequence[int]) -> ImageSet:
        """The images at ``idx`` (loaded into memory), with their keys and labels."""
        idx = np.asarray(idx, dtype=np.int64)
        return ImageSet(
            images=np.asarray(self.images[idx]),
            labels=self.labels[idx],
            patient_keys=self.patient_keys[idx],
            study_keys=self.study_keys[idx],
            kinds=self.kinds[idx],
            aug=self.aug[idx],
            name=self.name,
            normalization=self.normalization,
            skipped=list(self.skipped),
            meta=dict(self.meta),
        )

    def class_counts(self) -> dict[str, int]:
        """Images per class name."""
        return {c: int((self.labels == i).sum()) for i, c in enumerate(CLASSES)}

    def frame(self) -> pd.DataFrame:
        """One row per image: index, study/patient key, label, kind, aug (no pixels)."""
        return pd.DataFrame(
            {
                "index": np.arange(len(self)),
                "study_key": self.study_keys,
                "patient_key": self.patient_keys,
                "label": [CLASSES[i] for i in self.labels],
                "kind": self.kinds,
                "aug": self.aug,
            }
        )


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


def _study_identity(study: Study) -> list[Any]:
    """What the cache fingerprint knows of a study (file stats, or a pixel hash in memory)."""
    ident: list[Any] = [study.study_key, study.patient_key, study.label]
    if study.source_paths:
        for p in study.source_paths:
            try:
                st = os.stat(p)
                ident.append((Path(p).name, st.st_size, st.st_mtime_ns))
            except OSError:
                ident.append((Path(p).name, None, None))
    else:
        h = hashlib.sha256()
        for img in (study.anterior, study.posterior):
            if img is not None:
                arr = np.ascontiguousarray(img)
                h.update(str(arr.shape).encode())
                h.update(arr.tobytes())
        ident.append(h.hexdigest())
    return ident


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
        out.append(_Record(i, s.study_key, s.patient_key, s.label, _n_views(s), _study_identity(s), study=s))
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
        cached = _load_cache(cache_base)
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
        _truncate_npy(tmp, n, (h_out, w_out), final)
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
        _write_cache_meta(cache_base, ds)
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


def _truncate_npy(tmp: Path, n: int, hw: tuple[int, int], final: Path) -> None:
    """Keep the first n images of a .npy memmap, rewriting its header, and move it into place."""
    src = np.load(tmp, mmap_mode="r")
    if n == src.shape[0]:
        del src
        os.replace(tmp, final)
        return
    out = np.lib.format.open_memmap(final.with_suffix(".npy.partial"), mode="w+", dtype=np.float32, shape=(n, *hw))
    step = 256
    for a in range(0, n, step):
        out[a : a + step] = src[a : min(n, a + step)]
    out.flush()
    del out, src
    os.replace(final.with_suffix(".npy.partial"), final)
    os.remove(tmp)


def _write_cache_meta(base: Path, ds: ImageSet) -> None:
    meta = {
        "labels": ds.labels.tolist(),
        "patient_keys": list(ds.patient_keys),
        "study_keys": list(ds.study_keys),
        "kinds": list(ds.kinds),
        "aug": list(ds.aug),
        "name": ds.name,
        "normalization": ds.normalization,
        "skipped": [list(x) for x in ds.skipped],
        "meta": ds.meta,
    }
    base.with_suffix(".json").write_text(json.dumps(meta, default=str))


def _load_cache(base: Path) -> ImageSet | None:
    arr_path, meta_path = base.with_suffix(".npy"), base.with_suffix(".json")
    if not (arr_path.exists() and meta_path.exists()):
        return None
    try:
        m = json.loads(meta_path.read_text())
        images = np.load(arr_path, mmap_mode="r")
    except (OSError, ValueError):
        return None  # a damaged cache is rebuilt, never trusted
    if images.shape[0] != len(m["labels"]):
        return None
    return ImageSet(
        images=images,
        labels=np.asarray(m["labels"], dtype=np.int64),
        patient_keys=np.asarray(m["patient_keys"], dtype=object),
        study_keys=np.asarray(m["study_keys"], dtype=object),
        kinds=np.asarray(m["kinds"], dtype=object),
        aug=np.asarray(m["aug"], dtype=object),
        name=m["name"],
        normalization=m["normalization"],
        skipped=[tuple(x) for x in m["skipped"]],
        meta=m["meta"],
    )


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


# --------------------------------------------------------------------------- splits


def _group_ids(ds: ImageSet, groups: np.ndarray | Mapping[str, str] | None) -> np.ndarray:
    if groups is None:
        return np.asarray(ds.patient_keys)
    if isinstance(groups, Mapping):
        # patient -> merged group (the audit's duplicate/same-patient groups); others alone
        return np.asarray([groups.get(p, p) for p in ds.patient_keys], dtype=object)
    g = np.asarray(groups)
    if len(g) != len(ds):
        raise ValueError(f"groups has {len(g)} entries for {len(ds)} images")
    return g


def patient_split(
    ds: ImageSet,
    test_size: float = 0.3,
    rng: np.random.Generator | int | None = None,
    groups: np.ndarray | Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, grouped train/test split (7:3 by default, as the paper).

    No group (patient by default) has images on both sides, augmented copies included.
    Stratification: each group takes the label most of its images carry; groups of each
    label are shuffled and moved to the test side until that label's test images reach
    ``test_size`` of its images (the group that crosses the target goes to test only if
    that brings the count closer).

    Args:
        ds: the dataset.
        test_size: fraction of images for the test side, in (0, 1).
        rng: randomness.
        groups: per-image group ids, or a mapping patient_key -> group id (patients not in
            it form their own group); None groups by patient.

    Returns:
        (train indices, test indices), sorted int arrays.

    Raises:
        ValueError: bad ``test_size`` or fewer than two groups.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    gen = as_rng(rng)
    g = _group_ids(ds, groups)
    codes, inv = np.unique(g.astype(str), return_inverse=True)
    n_groups = len(codes)
    if n_groups < 2:
        raise ValueError("a split needs at least two groups (patients)")
    sizes = np.bincount(inv, minlength=n_groups)
    # majority label per group
    lab_counts = np.zeros((n_groups, len(CLASSES)), dtype=np.int64)
    np.add.at(lab_counts, (inv, ds.labels), 1)
    major = lab_counts.argmax(axis=1)
    in_test = np.zeros(n_groups, dtype=bool)
    for c in range(len(CLASSES)):
        cand = np.flatnonzero(major == c)
        if len(cand) == 0:
            continue
        cand = gen.permutation(cand)
        target = test_size * sizes[cand].sum()
        acc = 0
        for gi in cand:
            if acc >= target:
                break
            if acc + sizes[gi] - target > target - acc and acc > 0:
                break  # taking this group would overshoot more than stopping short
            in_test[gi] = True
            acc += sizes[gi]
    # both sides must hold something
    if in_test.all():
        in_test[gen.choice(np.flatnonzero(in_test))] = False
    if not in_test.any():
        in_test[gen.integers(n_groups)] = True
    test_mask = in_test[inv]
    return np.flatnonzero(~test_mask), np.flatnonzero(test_mask)


def kfold_splits(
    ds: ImageSet,
    k: int = 5,
    rng: np.random.Generator | int | None = None,
    groups: np.ndarray | Mapping[str, str] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified group k-fold (scikit-learn's ``StratifiedGroupKFold``), patients kept whole.

    Args:
        ds: the dataset.
        k: number of folds (>= 2, at most the number of groups).
        rng: randomness (shuffles the groups).
        groups: as for :func:`patient_split`.

    Returns:
        k (train indices, test indices) pairs; every image is in exactly one test fold.

    Raises:
        ValueError: k out of range.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    g = _group_ids(ds, groups).astype(str)
    n_groups = len(np.unique(g))
    if k < 2 or k > n_groups:
        raise ValueError(f"k must be in [2, {n_groups}] (number of groups), got {k}")
    seed = int(as_rng(rng).integers(0, 2**31 - 1))
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(np.sort(tr), np.sort(te)) for tr, te in cv.split(np.zeros(len(ds)), ds.labels, g)]


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


_SCAN_SEQUENCE: type | None = None


def __getattr__(name: str) -> Any:
    # ScanSequence subclasses keras.utils.PyDataset; building the class on first use keeps
    # "import scintilab.datasets" free of the multi-second Keras import
    if name == "ScanSequence":
        return _scan_sequence_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _scan_sequence_class() -> type:
    global _SCAN_SEQUENCE
    if _SCAN_SEQUENCE is not None:
        return _SCAN_SEQUENCE
    import keras

    class ScanSequence(keras.utils.PyDataset):
        """Batches of (x, y) for ``model.fit`` on every Keras backend.

        ``x`` is (B, rows, cols, 1) float32; ``y`` is (B,) int class indices (use
        ``sparse_categorical_crossentropy``), or (B, n_classes) one-hot float32 when
        ``num_classes`` is given. Images may be a ``np.memmap``: only the batch is read.
        The optional ``augment`` layer (e.g. :func:`scintilab.augment.augmentation_layers`)
        is called with ``training=True`` on each batch; it runs on the backend's device.

        Args:
            images: (N, rows, cols) or (N, rows, cols, 1) array, or an :class:`ImageSet`.
            labels: (N,) int labels (taken from the ImageSet when None).
            batch_size: images per batch (the last batch may be smaller).
            shuffle: reshuffle the order at every epoch end.
            seed: seed of the shuffling and the augmentation. Each epoch's order and each
                batch's augmentation are functions of (seed, epoch, batch) alone
                (:meth:`set_epoch`), so a run resumed at epoch k sees exactly the batches an
                uninterrupted run would, whatever order Keras fetches them in.
            augment: a Keras layer applied to each batch, or None.
            num_classes: one-hot size, or None for int labels.
            indices: restrict to these image indices (e.g. a split side).
            equal_batches: every batch has the same size, ``min(batch_size, N)``: the last
                batch is completed with images drawn (seeded) from the rest of the epoch's
                order. Training uses this: TensorFlow 2.21's oneDNN kernels corrupted the
                heap when a training step ran again for a smaller last batch (residual
                models, small inputs), and one batch shape also means one traced step.
            **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` for PyDataset.
        """

        def __init__(
            self,
            images: np.ndarray | ImageSet,
            labels: np.ndarray | None = None,
            batch_size: int = 32,
            shuffle: bool = True,
            seed: int | None = None,
            augment: Any = None,
            num_classes: int | None = None,
            indices: np.ndarray | None = None,
            equal_batches: bool = False,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            if isinstance(images, ImageSet):
                labels = images.labels if labels is None else labels
                images = images.images
            if labels is None:
                raise ValueError("labels are required when images is an array")
            if len(images) != len(labels):
                raise ValueError(f"{len(images)} images but {len(labels)} labels")
            if batch_size < 1:
                raise ValueError("batch_size must be >= 1")
            self.images = images
            self.labels = np.asarray(labels, dtype=np.int64)
            self.batch_size = int(batch_size)
            self.shuffle = shuffle
            self.augment = augment
            self.num_classes = num_classes
            # no seed: one drawn now, so the run is still a function of (seed, epoch, batch)
            self.seed = int(np.random.default_rng().integers(2**31)) if seed is None else int(seed)
            self._base = np.arange(len(self.labels)) if indices is None else np.asarray(indices, dtype=np.int64)
            self.equal_batches = bool(equal_batches)
            self.epoch = 0
            self._order = self._epoch_order()

        def set_epoch(self, epoch: int) -> None:
            """Serve epoch ``epoch``'s batches (0-based), e.g. when a run resumes there."""
            self.epoch = int(epoch)
            self._order = self._epoch_order()

        def _epoch_order(self) -> np.ndarray:
            """This epoch's image order (padded to whole batches with ``equal_batches``)."""
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(self._base) if self.shuffle else self._base.copy()
            size = min(self.batch_size, len(order))
            short = -len(order) % size if self.equal_batches and size else 0
            if short:
                # fill from images not already in the last batch, so no batch holds an image twice
                head = order[: len(order) - (size - short)]
                order = np.concatenate([order, rng.choice(head, short, replace=False)])
            return order

        def __len__(self) -> int:
            return math.ceil(len(self._order) / min(self.batch_size, max(1, len(self._order))))

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            if i < 0 or i >= len(self):
                raise IndexError(f"batch {i} out of range ({len(self)} batches)")
            size = min(self.batch_size, len(self._order))
            idx = self._order[i * size : (i + 1) * size]
            # sorted reads are sequential on a memmap; put them back in the shuffled order after
            srt = np.argsort(idx)
            x = np.empty((len(idx), *self.images.shape[1:3]), dtype=np.float32)
            x[srt] = np.asarray(self.images[idx[srt]], dtype=np.float32).reshape(len(idx), *self.images.shape[1:3])
            x = x[..., None]
            if self.augment is not None:
                import keras

                from scintilab.utils import reseed_generators

                reseed_generators(self.augment, self.seed, self.epoch, i)
                x = keras.ops.convert_to_numpy(self.augment(x, training=True)).astype(np.float32, copy=False)
            y = self.labels[idx]
            if self.num_classes is not None:
                y = np.eye(self.num_classes, dtype=np.float32)[y]
            return x, y

        def on_epoch_end(self) -> None:
            """Move on to the next epoch (a new order when ``shuffle``)."""
            self.set_epoch(self.epoch + 1)

    ScanSequence.__module__ = __name__
    ScanSequence.__qualname__ = "ScanSequence"
    _SCAN_SEQUENCE = ScanSequence
    return ScanSequence


def as_tf_dataset(
    ds: ImageSet, indices: np.ndarray | None = None, batch_size: int = 32, shuffle: bool = True, seed: int | None = None
) -> Any:
    """Optional fast path when TensorFlow is the backend: a ``tf.data.Dataset`` of (x, y int).

    Args:
        ds: the dataset.
        indices: restrict to these images.
        batch_size: batch size.
        shuffle: shuffle each epoch.
        seed: shuffle seed.

    Returns:
        A batched, prefetching ``tf.data.Dataset``.
    """
    import tensorflow as tf  # optional fast path only

    idx = np.arange(len(ds)) if indices is None else np.asarray(indices)
    images, labels = ds.images, ds.labels

    def gen():  # reads one image at a time so a memmap is never loaded whole
        order = np.random.default_rng(seed).permutation(idx) if shuffle else idx
        for j in order:
            yield np.asarray(images[j], dtype=np.float32)[..., None], labels[j]

    h, w = images.shape[1:3]
    out = tf.data.Dataset.from_generator(
        gen, output_signature=(tf.TensorSpec((h, w, 1), tf.float32), tf.TensorSpec((), tf.int64))
    )
    return out.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def oriented_views(study: Study) -> list[tuple[str, np.ndarray]]:
    """The study's views in anterior orientation: [("ANT", ant), ("POST", flipped post)]."""
    out: list[tuple[str, np.ndarray]] = []
    if study.anterior is not None:
        out.append(("ANT", np.asarray(study.anterior, dtype=np.float32)))
    if study.posterior is not None:
        out.append(("POST", flip_posterior(study.posterior)))
    return out


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

    from scintilab.errors import partial_exit
    from scintilab.ingest import load_cohort  # lazy: written by the ingest module
    from scintilab.outputs import OutputFolder, write_csv

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
