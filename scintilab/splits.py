"""Patient-grouped train/test splits and k-fold cross-validation of an :class:`ImageSet`.

Splits are patient-level: every image of one patient (both views, all visits, all augmented
copies) lands on one side. The audit can merge patients into larger groups (duplicates,
same-patient suspects); pass those as ``groups``.
:func:`scintilab.datasets.split_table` counts each side in the layout of the paper's Table 2.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scintilab.image_set import ImageSet
from scintilab.study import CLASSES
from scintilab.utils import as_rng


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
