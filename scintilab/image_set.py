"""The record of a dataset ready for a model: images, labels and whom each image came from.

:class:`ImageSet` is what :func:`scintilab.datasets.build_dataset` returns, what the splits
(:mod:`scintilab.splits`) divide by patient and what the Keras input
(:mod:`scintilab.keras_input`) batches; it holds no knowledge of how it was built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scintilab.preprocessing import NORMALIZATION
from scintilab.study import CLASSES

#: What :attr:`ImageSet.kinds` holds: a single view (POST flipped to anterior) or a fused pair.
KINDS: tuple[str, ...] = ("ANT", "POST", "fused")


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
