"""The data side of a training run: fingerprints, the image set, the split and its audit.

* Fingerprints (:func:`dataset_fingerprint`, :func:`studies_fingerprint`,
  :func:`resolve_data_fingerprint`) name the data a run was trained on, so that
  :func:`scintilab.training.find_or_train` reuses a run only for the same data.
* :func:`load_image_set` builds dataset D1/D2/D3 from study records or a manifest.
* :func:`split_indices` splits it *by patient* (or by the groups of
  ``config.split_groups``, merged along the audit's duplicate and same-patient pairs),
  or takes a hand-made split; :func:`check_leaks` refuses, before anything is fitted, a
  split with such a pair across it (issue 14).
* :func:`labels_for` and :func:`class_weight_dict` turn the labels into what Keras fits.

Nothing here imports Keras.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab.datasets import build_dataset
from scintilab.errors import InputError
from scintilab.paths import repo_path
from scintilab.presets import TrainConfig, audit_files, audit_tail, config_manifest, manifest_data_fingerprint
from scintilab.splits import patient_split


def dataset_fingerprint(dataset: Any) -> str:
    """Hash of an in-memory image set's content (images, labels, keys)."""
    h = hashlib.sha256()
    images = np.ascontiguousarray(np.asarray(dataset.images, dtype=np.float32))
    h.update(str(images.shape).encode())
    h.update(images.tobytes())
    h.update(np.asarray(dataset.labels, dtype=np.int64).tobytes())
    for seq in (dataset.patient_keys, dataset.study_keys):
        h.update("|".join(map(str, seq)).encode())
    return h.hexdigest()[:16]


def studies_fingerprint(studies: Sequence[Any]) -> str:
    """Hash of study records' keys, labels and pixel sums (cheap, content-sensitive)."""
    h = hashlib.sha256()
    for s in studies:
        sums = [int(np.asarray(v, dtype=np.int64).sum()) if v is not None else -1 for v in (s.anterior, s.posterior)]
        h.update(f"{s.study_key}|{s.patient_key}|{s.label}|{sums}\n".encode())
    return h.hexdigest()[:16]


def resolve_data_fingerprint(config: TrainConfig, studies: Sequence[Any] | None = None, dataset: Any = None) -> str:
    """The data fingerprint that goes into a run's fingerprint: dataset > studies > manifest.

    The audit files in use (:func:`audit_files`) are hashed in too: they change the split.
    """
    if dataset is not None:
        return dataset_fingerprint(dataset) + audit_tail(config)
    if studies is not None:
        return studies_fingerprint(studies) + audit_tail(config)
    return manifest_data_fingerprint(config)


def load_image_set(
    config: TrainConfig,
    studies: Sequence[Any] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Any:
    """Build the configured dataset (D1/D2/D3) from ``studies`` or the manifest in ``config.data``.

    Args:
        config: supplies dataset name, image size, r_t, t_t and the seed.
        studies: study records (default: read the manifest ``config.data``).
        cache_dir: memory-mapped cache folder of :func:`scintilab.datasets.build_dataset`.
        progress: show the dataset builder's progress bar.

    Raises:
        InputError: no data given, or the manifest cannot be read.
    """
    if studies is None:
        if not config.data:
            raise InputError(None, "no data: set config.data to a manifest or pass studies=")
        from scintilab.ingest import load_cohort
        from scintilab.paths import repo_path

        studies = load_cohort(repo_path(config.data))  # a manifest or a cohort folder
    return build_dataset(
        studies,
        name=config.dataset,
        image_size=tuple(config.image_size),
        r_t=config.r_t,
        t_t=int(round(config.t_t)),
        rng=config.seed,
        cache_dir=cache_dir,
        progress=progress,
    )


def labels_for(config: TrainConfig, labels: np.ndarray) -> np.ndarray:
    """Integer labels as the model is trained on them (merged to two classes when configured)."""
    y = np.asarray(labels, dtype=int)
    # 2-class mode: the paper's Table 8 merges ADMet and nADMet into "metastatic".
    return (y > 0).astype(int) if config.num_classes == 2 else y


def _split_groups(config: TrainConfig, ds: Any) -> np.ndarray | None:
    """Per-image group ids from ``config.split_groups`` (audit output), or None."""
    if not config.split_groups:
        return None
    path = repo_path(config.split_groups)
    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read split groups ({exc})") from exc
    if "group" not in table.columns or not ({"patient_key", "study_key"} & set(table.columns)):
        raise InputError(path, "split groups CSV needs columns group and patient_key or study_key")
    key = "study_key" if "study_key" in table.columns else "patient_key"
    mapping = dict(zip(table[key], table["group"]))
    own = ds.study_keys if key == "study_key" else ds.patient_keys
    # Images not listed keep their patient as group, so the split stays patient-level.
    return np.array([mapping.get(k, f"patient:{p}") for k, p in zip(own, ds.patient_keys)])


# --------------------------------------------------------------------------- audit (issue 14)
def _audit_groups(ds: Any, base: np.ndarray, flags: Path, review: Path | None) -> np.ndarray:
    """Per-image groups: ``base`` groups merged along the audit's duplicate/same-patient pairs."""
    from scintilab.audit import split_groups

    keys = np.asarray(ds.study_keys).astype(str)
    first = {}
    for k, g in zip(keys, np.asarray(base).astype(str)):
        first.setdefault(k, g)  # augmented copies share their study's group
    # The base group plays the patient's part, so split_groups keeps it whole and adds the pairs.
    table = pd.DataFrame({"study_key": list(first), "patient_key": list(first.values())})
    merged = split_groups(table, flags, review=review)
    return merged.reindex(keys).to_numpy(dtype=object)


def _fixed_split(ds: Any, split: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices from a hand-made split (``study_key, split`` with train/val/test)."""
    table = split
    if isinstance(split, (str, os.PathLike)):
        try:
            table = pd.read_csv(split, dtype=str, keep_default_na=False)
        except (OSError, ValueError) as exc:
            raise InputError(split, f"cannot read split CSV ({exc})") from exc
    if isinstance(table, pd.Series):
        sides = {str(k): str(v) for k, v in table.items()}
    else:
        if not {"study_key", "split"} <= set(table.columns):
            raise InputError(
                split if isinstance(split, (str, os.PathLike)) else None,
                "split table needs columns study_key and split",
            )
        sides = dict(zip(table["study_key"].astype(str), table["split"].astype(str)))
    sides = {
        k: {"validation": "val", "valid": "val"}.get(v.strip().lower(), v.strip().lower()) for k, v in sides.items()
    }
    keys = np.asarray(ds.study_keys).astype(str)
    missing = sorted(set(keys) - set(sides))
    if missing:
        raise ValueError(f"the split does not place {len(missing)} study(ies), e.g. {missing[:3]}")
    side = np.array([sides[k] for k in keys])
    bad = sorted(set(side) - {"train", "val", "test"})
    if bad:
        raise ValueError(f"split sides must be train, val or test, got {bad}")
    return tuple(np.flatnonzero(side == name) for name in ("train", "val", "test"))  # type: ignore[return-value]


def split_fingerprint(split: Any) -> str:
    """Hash of a hand-made split's content (DataFrame, Series or CSV), independent of row order."""
    table = pd.read_csv(split, dtype=str, keep_default_na=False) if isinstance(split, (str, os.PathLike)) else split
    table = table.rename("split").reset_index() if isinstance(table, pd.Series) else table
    text = table.astype(str).sort_values(list(table.columns)).to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_leaks(config: TrainConfig, ds: Any, parts: dict[str, np.ndarray]) -> dict[str, Any]:
    """Check a split against the audit before fitting; refuse a leaky one unless allowed.

    Args:
        config: supplies the audit files and ``allow_leaks``.
        ds: the image set (its study keys are matched against the flags).
        parts: side name -> image indices (``train``, ``val``, ``test``).

    Returns:
        What goes into ``config.json["audit"]``: whether an audit was applied, the files,
        and the pairs straddling the split (empty unless ``allow_leaks``).

    Raises:
        scintilab.audit.LeakageError: a duplicate or same-patient pair straddles the
            split and ``config.allow_leaks`` is False; the message names the pairs.
    """
    import warnings

    flags, review, source = audit_files(config)
    record: dict[str, Any] = {
        "applied": flags is not None,
        "source": source,
        "flags": _shown_path(flags, config),
        "review": _shown_path(review, config),
        "allow_leaks": bool(config.allow_leaks),
        "straddling": [],
    }
    if flags is None:
        return record
    from scintilab.audit import refuse_leaky_split

    keys = np.asarray(ds.study_keys).astype(str)
    split_df = pd.DataFrame([{"study_key": k, "split": name} for name, idx in parts.items() for k in keys[idx]])
    pairs = refuse_leaky_split(split_df, flags, go_on=config.allow_leaks, review=review)
    if pairs:
        warnings.warn(
            f"allow_leaks: training goes on with {len(pairs)} duplicate/same-patient pair(s) "
            f"across the split: {'; '.join(map(str, pairs))}",
            UserWarning,
            stacklevel=3,
        )
    record["straddling"] = [str(p) for p in pairs]
    return record


def _shown_path(path: Path | None, config: TrainConfig) -> str | None:
    """A path as recorded in config.json: relative to the manifest folder when inside it."""
    if path is None:
        return None
    if config.data:
        try:
            return path.resolve().relative_to(config_manifest(config).parent.resolve()).as_posix()
        except ValueError:
            pass
    return path.name


def split_indices(config: TrainConfig, ds: Any, split: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) image indices; patients (or groups) never straddle them.

    Groups are patients, or ``config.split_groups``, merged along the audit's duplicate
    and same-patient pairs when an audit applies (:func:`audit_files`).

    Args:
        config: split settings.
        ds: the image set.
        split: a hand-made split instead (DataFrame or CSV ``study_key, split`` with
            sides train/val/test, or a Series study_key -> side); taken as is.
    """
    if split is not None:
        return _fixed_split(ds, split)
    groups = _split_groups(config, ds)
    flags, review, _ = audit_files(config)
    if flags is not None:
        groups = _audit_groups(ds, np.asarray(ds.patient_keys) if groups is None else groups, flags, review)
    train_idx, test_idx = patient_split(ds, test_size=config.test_size, rng=config.seed, groups=groups)
    train_idx, test_idx = np.asarray(train_idx, dtype=int), np.asarray(test_idx, dtype=int)
    val_idx = np.array([], dtype=int)
    if config.val_size > 0:
        sub = ds.subset(train_idx)
        sub_groups = None if groups is None else groups[train_idx]
        tr, va = patient_split(sub, test_size=config.val_size, rng=config.seed + 1, groups=sub_groups)
        train_idx, val_idx = train_idx[np.asarray(tr, dtype=int)], train_idx[np.asarray(va, dtype=int)]
    return train_idx, val_idx, test_idx


def class_weight_dict(config: TrainConfig, y_train: np.ndarray) -> dict[int, float] | None:
    """Keras ``class_weight`` from the config: None, balanced (n / (k * count)) or named."""
    cw = config.class_weights
    if cw is None:
        return None
    k = config.num_classes
    if cw == "balanced":
        counts = np.bincount(y_train, minlength=k).astype(float)
        return {i: float(len(y_train) / (k * c)) if c else 0.0 for i, c in enumerate(counts)}
    names = config.classes
    unknown = sorted(set(cw) - set(names))
    if unknown:
        raise ValueError(f"class_weights names {unknown} not among classes {names}")
    return {i: float(cw.get(n, 1.0)) for i, n in enumerate(names)}
