"""The Keras input pipeline: batches of an :class:`ImageSet` for ``model.fit``.

``ScanSequence`` (a ``keras.utils.PyDataset``, for every Keras backend) reads only the batch
from a memory-mapped dataset, optionally augments it on the backend's device and serves
batches that depend on (seed, epoch, batch) alone, so a resumed run sees what an
uninterrupted one would. :func:`as_tf_dataset` is an optional ``tf.data`` path for the
TensorFlow backend.

Keras and TensorFlow are imported on first use only: ``ScanSequence`` is built by
:func:`scan_sequence_class` when the module attribute is first read (module ``__getattr__``),
so importing this module, or :mod:`scintilab.datasets`, costs no Keras import.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scintilab.image_set import ImageSet

_SCAN_SEQUENCE: type | None = None


def __getattr__(name: str) -> Any:
    # ScanSequence subclasses keras.utils.PyDataset; building the class on first use keeps
    # "import scintilab.keras_input" (and scintilab.datasets) free of the multi-second Keras import
    if name == "ScanSequence":
        return scan_sequence_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scan_sequence_class() -> type:
    """The ``ScanSequence`` class, defined (and Keras imported) on the first call, then reused."""
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
