"""The on-disk cache of a built dataset: a float32 ``.npy`` memmap and a ``.json`` of the rest.

:func:`scintilab.datasets.build_dataset` names a cache ``<name>-<fingerprint>`` after a hash
of its parameters and of every study's identity (:func:`study_identity`: file sizes and
modification times, or a pixel hash for in-memory studies), writes the images into a
``.f32.partial`` memmap as it goes, and moves it into place with :func:`truncate_npy` once
the count of usable images is known. A cache that cannot be read whole is rebuilt, never
trusted (:func:`load_cache`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from scintilab.image_set import ImageSet
from scintilab.study import Study


def study_identity(study: Study) -> list[Any]:
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


def truncate_npy(tmp: Path, n: int, hw: tuple[int, int], final: Path) -> None:
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


def write_cache_meta(base: Path, ds: ImageSet) -> None:
    """Write ``base.json``: everything of ``ds`` but its pixels (those are ``base.npy``)."""
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


def load_cache(base: Path) -> ImageSet | None:
    """The dataset cached at ``base`` (images memory-mapped), or None when missing or damaged."""
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
