"""A learned skeleton: a compact U-Net that labels every pixel with a BSI bone group.

Issue 24, item 1. The network sees both views of a study in one frame
(:class:`~scintilab.view_frame.ViewFrame`): channel 0 the anterior, channel 1 the posterior
mirrored and aligned to it (zeros for a missing view). Every matrix is resampled to one
millimetre grid (:data:`GRID_MM` per pixel, :data:`GRID_SHAPE` pixels, the field centred),
so 1024x256 at 2.26 mm, 2048x512 at 1.13 mm and 512x128 at 4.5 mm give the same input;
its per-pixel softmax over background and the 17 groups of :data:`scintilab.anatomy.BONES`
(ids ``i + 1`` as :data:`BONE_IDS`, the generator's ids) is mapped back to the study's own
matrix. Intensities are divided by a high percentile of each view and square-rooted, so
total counts do not matter.

Training reads the generator's label maps (``truth/<study_id>_maps.npz``, array ``bone``,
anterior orientation, stored coordinates) through
:func:`scintilab.lesion_agreement.truth_files`. The model is data: weights plus a JSON
config, loaded by path. It is not (yet) the default source of regions or of the BSI
denominator; the hand-drawn atlas (:mod:`scintilab.atlas`) still is.

Model and loss code uses ``keras.layers`` and ``keras.ops`` only (any Keras 3 backend);
Keras is imported inside the functions that need it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from scintilab.anatomy import BONES
from scintilab.errors import InputError
from scintilab.ingest import load_cohort
from scintilab.lesion_agreement import truth_files
from scintilab.study import Study
from scintilab.utils import as_rng, set_seed
from scintilab.view_frame import ViewFrame

#: Bone-group id per name, 0 = background (the same numbering the generator writes).
BONE_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(BONES)}
#: Output classes: background and the bone groups.
N_CLASSES = len(BONES) + 1
#: Millimetres per pixel of the network's grid: the coarsest matrix seen in clinics
#: (512x128), so no study is upsampled and a 2-core CPU can train it.
GRID_MM = 4.5
#: (rows, cols) of the grid: 2304 x 576 mm, the whole-body field of all three matrices.
GRID_SHAPE = (512, 128)
#: Percentile of a view's grid image that scales it to about normal bone (the skeleton
#: covers more than 1 % of the field; bladder and injection site much less).
NORM_PERCENTILE = 99.0
#: Ceiling after scaling: the bladder and injection site are clipped, not left to dominate.
NORM_CLIP = 16.0
#: File names inside a saved model's folder.
WEIGHTS_FILE = "skeleton.weights.h5"
CONFIG_FILE = "skeleton.json"


@dataclass(frozen=True)
class SkeletonConfig:
    """The network and its input grid (saved beside the weights).

    Attributes:
        base_width: filters of the first level; each level down doubles them.
        levels: resolution levels (``levels - 1`` poolings); the grid must divide by
            ``2 ** (levels - 1)``.
        grid_mm: millimetres per grid pixel.
        grid_shape: (rows, cols) of the grid.
        dice_weight: weight of the soft Dice term beside the cross-entropy.
        learning_rate: Adam's step.
    """

    base_width: int = 12
    levels: int = 5
    grid_mm: float = GRID_MM
    grid_shape: tuple[int, int] = GRID_SHAPE
    dice_weight: float = 1.0
    learning_rate: float = 2e-3

    def __post_init__(self) -> None:
        step = 2 ** (self.levels - 1)
        if self.grid_shape[0] % step or self.grid_shape[1] % step:
            raise ValueError(f"grid {self.grid_shape} does not divide by 2**(levels-1) = {step}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SkeletonConfig:
        """The config a saved model's JSON records (unknown keys ignored)."""
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "grid_shape" in known:
            known["grid_shape"] = tuple(int(v) for v in known["grid_shape"])
        return cls(**known)


@dataclass
class SkeletonModel:
    """A trained (or freshly built) skeleton network with its config and provenance."""

    network: Any
    config: SkeletonConfig
    info: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- the grid


def grid_axis(n: int, spacing: float, grid_n: int, grid_mm: float) -> np.ndarray:
    """Source pixel coordinate (float) under each grid pixel centre along one axis.

    The study's field (``n * spacing`` mm) is centred in the grid's (``grid_n * grid_mm``).
    """
    offset = 0.5 * (grid_n * grid_mm - n * spacing)
    return ((np.arange(grid_n) + 0.5) * grid_mm - offset) / spacing - 0.5


def study_axis(n: int, spacing: float, grid_n: int, grid_mm: float) -> np.ndarray:
    """Grid coordinate (float) under each source pixel centre: the inverse of :func:`grid_axis`."""
    offset = 0.5 * (grid_n * grid_mm - n * spacing)
    return ((np.arange(n) + 0.5) * spacing + offset) / grid_mm - 0.5


def lerp_axis(arr: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``arr`` at float ``coords`` along ``axis``; zero outside."""
    a = np.moveaxis(np.asarray(arr, np.float32), axis, 0)
    n = a.shape[0]
    i0 = np.floor(coords).astype(int)
    w = (coords - i0).astype(np.float32)
    # zero padding on both ends, so a coordinate just outside fades to zero like the field edge
    pad = np.concatenate([np.zeros((1, *a.shape[1:]), np.float32), a, np.zeros((1, *a.shape[1:]), np.float32)])
    lo = np.clip(i0, -1, n) + 1
    hi = np.clip(i0 + 1, -1, n) + 1
    shape = (-1,) + (1,) * (a.ndim - 1)
    out = pad[lo] * (1 - w).reshape(shape) + pad[hi] * w.reshape(shape)
    return np.moveaxis(out, 0, axis)


def nearest_axis(arr: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Nearest-neighbour sampling along ``axis``; zero (background) outside."""
    a = np.moveaxis(np.asarray(arr), axis, 0)
    idx = np.round(coords).astype(int)
    inside = (idx >= 0) & (idx < a.shape[0])
    out = np.zeros((len(idx), *a.shape[1:]), a.dtype)
    out[inside] = a[idx[inside]]
    return np.moveaxis(out, 0, axis)


def image_to_grid(image: np.ndarray, spacing: Sequence[float], config: SkeletonConfig) -> np.ndarray:
    """A stored-matrix image on the grid (float32), smoothed first where the grid is coarser.

    The Gaussian before sampling stands in for averaging the pixels a grid pixel covers, so
    a 1.13 mm matrix's Poisson noise is averaged rather than aliased.
    """
    img = np.asarray(image, np.float32)
    (gr, gc), mm = config.grid_shape, config.grid_mm
    factors = (mm / float(spacing[0]), mm / float(spacing[1]))
    sigma = [0.5 * f if f > 1.2 else 0.0 for f in factors]
    if any(sigma):
        img = ndi.gaussian_filter(img, sigma)
    out = lerp_axis(img, grid_axis(img.shape[0], float(spacing[0]), gr, mm), 0)
    return lerp_axis(out, grid_axis(img.shape[1], float(spacing[1]), gc, mm), 1)


def labels_to_grid(labels: np.ndarray, spacing: Sequence[float], config: SkeletonConfig) -> np.ndarray:
    """A label map on the grid (nearest neighbour, uint8)."""
    (gr, gc), mm = config.grid_shape, config.grid_mm
    lab = np.asarray(labels)
    out = nearest_axis(lab, grid_axis(lab.shape[0], float(spacing[0]), gr, mm), 0)
    return nearest_axis(out, grid_axis(lab.shape[1], float(spacing[1]), gc, mm), 1).astype(np.uint8)


def probs_from_grid(
    probs: np.ndarray, shape: tuple[int, int], spacing: Sequence[float], config: SkeletonConfig
) -> np.ndarray:
    """Grid class probabilities ``(gr, gc, K)`` on the study's matrix ``(rows, cols, K)`` (linear)."""
    (gr, gc), mm = config.grid_shape, config.grid_mm
    out = lerp_axis(probs, study_axis(shape[0], float(spacing[0]), gr, mm), 0)
    return lerp_axis(out, study_axis(shape[1], float(spacing[1]), gc, mm), 1)


def labels_from_grid(
    labels: np.ndarray, shape: tuple[int, int], spacing: Sequence[float], config: SkeletonConfig
) -> np.ndarray:
    """A grid label map on the study's matrix: one-hot, interpolated, arg-max (uint8)."""
    onehot = np.eye(N_CLASSES, dtype=np.float32)[np.asarray(labels, int)]
    return probs_from_grid(onehot, shape, spacing, config).argmax(-1).astype(np.uint8)


def normalise(grid_image: np.ndarray) -> np.ndarray:
    """One view on the grid scaled by its :data:`NORM_PERCENTILE`, clipped, square-rooted.

    Dividing by a percentile of the view itself makes the input independent of total counts
    (a 1 M and a 4 M count scan of one patient look alike); the square root evens out
    Poisson noise across levels.
    """
    g = np.asarray(grid_image, np.float32)
    p = float(np.percentile(g, NORM_PERCENTILE)) if g.size else 0.0
    if not np.isfinite(p) or p <= 0:
        return np.zeros_like(g)
    return np.sqrt(np.clip(g / p, 0.0, NORM_CLIP))


def prepare_input(study: Study, config: SkeletonConfig, frame: ViewFrame | None = None) -> tuple[np.ndarray, ViewFrame]:
    """The network's input for one study and the frame its prediction lives in.

    Args:
        study: a :class:`~scintilab.study.Study` (one or both views).
        config: the grid.
        frame: the study's frame, when already aligned.

    Returns:
        ``(x, frame)``: ``x`` float32 ``(rows, cols, 2)`` on the grid, channel 0 the
        anterior, channel 1 the posterior in the frame (zeros for a missing view).

    Raises:
        InputError: no view, or views of different matrices (named by the study key).
    """
    frame = ViewFrame.of_study(study) if frame is None else frame
    chans = []
    for view, img in (("ANT", study.anterior), ("POST", study.posterior)):
        if img is None:
            chans.append(np.zeros(config.grid_shape, np.float32))
        else:
            chans.append(normalise(image_to_grid(frame.to_frame(img, view), study.pixel_spacing, config)))
    return np.stack(chans, axis=-1), frame


# ----------------------------------------------------------------------------- the network


def build_skeleton_model(config: SkeletonConfig | None = None, *, compile: bool = True) -> SkeletonModel:
    """A compact U-Net: ``levels`` levels of two 3x3 convolutions (batch norm, ReLU), skip
    connections, a 1x1 softmax over :data:`N_CLASSES`; compiled with :func:`skeleton_loss`
    unless ``compile`` is False."""
    import keras
    from keras import layers

    cfg = config or SkeletonConfig()

    def block(x: Any, width: int, name: str) -> Any:
        for k in range(2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv{k}")(x)
            x = layers.BatchNormalization(name=f"{name}_bn{k}")(x)
            x = layers.Activation("relu", name=f"{name}_relu{k}")(x)
        return x

    inp = keras.Input((*cfg.grid_shape, 2), name="views")
    x, skips = inp, []
    for lvl in range(cfg.levels):
        x = block(x, cfg.base_width * 2**lvl, f"down{lvl}")
        if lvl < cfg.levels - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"pool{lvl}")(x)
    for lvl in reversed(range(cfg.levels - 1)):
        x = layers.UpSampling2D(2, name=f"up{lvl}")(x)
        x = layers.Concatenate(name=f"skip{lvl}")([x, skips[lvl]])
        x = block(x, cfg.base_width * 2**lvl, f"dec{lvl}")
    out = layers.Conv2D(N_CLASSES, 1, activation="softmax", dtype="float32", name="bone_groups")(x)
    net = keras.Model(inp, out, name="skeleton_unet")
    if compile:
        net.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=skeleton_loss(cfg.dice_weight))
    return SkeletonModel(network=net, config=cfg)


def keras_adam(learning_rate: float) -> Any:
    """Adam (Keras imported here, lazily)."""
    import keras

    return keras.optimizers.Adam(learning_rate)


def skeleton_loss(dice_weight: float = 1.0) -> Any:
    """Pixel cross-entropy plus ``dice_weight`` times (1 - soft Dice averaged over the bone groups).

    The Dice term keeps small groups (sternum, mandible) from drowning in background pixels;
    a group absent from the batch scores 1 (the smoothing), so it neither helps nor hurts.
    """
    from keras import ops

    def loss(y_true: Any, y_pred: Any) -> Any:
        labels = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        onehot = ops.one_hot(labels, N_CLASSES)
        ce = -ops.mean(ops.sum(onehot * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1))
        inter = ops.sum(onehot * y_pred, axis=(0, 1, 2))
        denom = ops.sum(onehot, axis=(0, 1, 2)) + ops.sum(y_pred, axis=(0, 1, 2))
        dice = (2.0 * inter + 1.0) / (denom + 1.0)
        return ce + dice_weight * (1.0 - ops.mean(dice[1:]))

    return loss


# ----------------------------------------------------------------------------- data


def truth_bone_map(maps_path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The generator's ``bone`` label map of one study, checked against the study's matrix.

    Raises:
        InputError: the file is missing, unreadable, has no ``bone`` array, or another shape.
    """
    if not Path(maps_path).exists():
        raise InputError(maps_path, "truth label map missing (the generator writes <study_id>_maps.npz)")
    try:
        with np.load(maps_path) as z:
            bone = np.asarray(z["bone"])
    except (OSError, ValueError, KeyError) as err:
        raise InputError(maps_path, f"no readable 'bone' label map ({err})") from None
    if bone.shape != tuple(shape):
        raise InputError(maps_path, f"bone label map is {bone.shape}, the study's matrix is {tuple(shape)}")
    return bone.astype(np.uint8)


def training_arrays(
    manifest: str | Path, config: SkeletonConfig, truth_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]:
    """Grid inputs and label maps of every study of a generated cohort.

    Args:
        manifest: the cohort's manifest CSV (or its folder).
        config: the grid.
        truth_dir: the cohort's ``truth/`` folder (default: beside the manifest).

    Returns:
        ``(x, y, patient_keys, skipped)``: ``x`` ``(N, rows, cols, 2)``, ``y`` ``(N, rows,
        cols)`` uint8, one patient key per study, and ``(study_key, reason)`` for studies
        left out (a posterior-only frame or a view turned at ingest, where the anterior
        truth is not the frame).

    Raises:
        InputError: a study without a truth record, or a missing or misshapen truth map.
    """
    cohort = load_cohort(manifest, with_shapes=False)
    tdir = Path(truth_dir) if truth_dir is not None else Path(cohort.root or ".") / "truth"
    truth = truth_files(tdir)
    xs, ys, patients, skipped = [], [], [], []
    turned = cohort.manifest.get("turned")
    for i, study in enumerate(cohort):
        if study.study_key not in truth:
            raise InputError(tdir, f"no truth record for study {study.study_key}")
        if turned is not None and isinstance(turned.iloc[i], str) and turned.iloc[i].strip():
            skipped.append((study.study_key, "a view was turned at ingest; the truth is in stored coordinates"))
            continue
        rec, maps_path = truth[study.study_key]
        if rec.get("bone_ids", BONE_IDS) != BONE_IDS:
            raise InputError(maps_path, "its bone ids differ from scintilab.anatomy.BONES numbered from 1")
        bone = truth_bone_map(maps_path, study.shape_hw)
        x, frame = prepare_input(study, config)
        if frame.name != "ANT":
            skipped.append((study.study_key, "posterior only: the anterior-orientation truth is not its frame"))
            continue
        xs.append(x)
        ys.append(labels_to_grid(bone, study.pixel_spacing, config))
        patients.append(study.patient_key)
    if not xs:
        raise InputError(tdir, "no study with a usable truth label map")
    return np.stack(xs), np.stack(ys), patients, skipped


def shift_zero(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``a`` moved by whole pixels (rows ``dr``, columns ``dc``), zeros coming in (no wrap-around:
    feet rolled over the head would teach the network nonsense)."""
    out = np.zeros_like(a)
    h, w = a.shape[:2]
    out[max(dr, 0) : h + min(dr, 0), max(dc, 0) : w + min(dc, 0)] = a[
        max(-dr, 0) : h + min(-dr, 0), max(-dc, 0) : w + min(-dc, 0)
    ]
    return out


def augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A randomly varied copy of a batch: left-right flip, shift, gamma, a dropped posterior.

    A left-right flip keeps every label right, since each bone group holds both sides; the
    dropped posterior teaches the one-view studies a clinic sends.
    """
    x, y = x.copy(), y.copy()
    h, w = y.shape[1:]
    for i in range(len(x)):
        if rng.random() < 0.5:
            x[i], y[i] = x[i][:, ::-1], y[i][:, ::-1]
        dr, dc = int(rng.integers(-h // 16, h // 16 + 1)), int(rng.integers(-w // 16, w // 16 + 1))
        x[i], y[i] = shift_zero(x[i], dr, dc), shift_zero(y[i], dr, dc)
        x[i] = x[i] ** float(np.exp(rng.uniform(-0.25, 0.25)))
        if rng.random() < 0.1:
            x[i][..., 1] = 0.0
    return x, y


# ----------------------------------------------------------------------------- training


def train_skeleton_model(
    manifest: str | Path,
    *,
    truth_dir: str | Path | None = None,
    config: SkeletonConfig | None = None,
    epochs: int = 40,
    batch_size: int = 8,
    val_fraction: float = 0.1,
    rng: np.random.Generator | int | None = 0,
    progress: bool = True,
) -> tuple[SkeletonModel, dict[str, Any]]:
    """Train the skeleton network on a generated cohort's label maps.

    Args:
        manifest: the cohort's manifest CSV (or its folder).
        truth_dir: its ``truth/`` folder (default: beside the manifest).
        config: network and grid (default :class:`SkeletonConfig`).
        epochs: passes over the training studies.
        batch_size: studies per step.
        val_fraction: share of patients held out to print a validation Dice per epoch
            (nothing is chosen on it; 0 holds none out).
        rng: seed or Generator (Keras is seeded from it too).
        progress: print one line per epoch to stderr.

    Returns:
        ``(model, history)``: history holds per-epoch ``loss``, ``val_loss``, ``val_dice``
        (mean bone-group Dice on the grid), ``seconds``, the studies used and skipped.

    Raises:
        InputError: see :func:`training_arrays`.
    """
    gen = as_rng(rng)
    set_seed(int(gen.integers(2**31)))
    cfg = config or SkeletonConfig()
    x, y, patients, skipped = training_arrays(manifest, cfg, truth_dir)
    keys = sorted(set(patients))
    held = set(gen.permutation(keys)[: int(round(val_fraction * len(keys)))]) if val_fraction > 0 else set()
    val = np.array([p in held for p in patients])
    xt, yt, xv, yv = x[~val], y[~val], x[val], y[val]
    model = build_skeleton_model(cfg)
    hist: dict[str, Any] = {"loss": [], "val_loss": [], "val_dice": [], "seconds": []}
    t0 = time.perf_counter()
    for ep in range(epochs):
        order = gen.permutation(len(xt))
        xa, ya = augment(xt[order], yt[order], gen)
        h = model.network.fit(xa, ya, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        hist["loss"].append(float(h.history["loss"][-1]))
        line = f"epoch {ep + 1}/{epochs}  loss {hist['loss'][-1]:.4f}"
        if len(xv):
            pv = model.network.predict(xv, batch_size=batch_size, verbose=0)
            hist["val_loss"].append(float(model.network.evaluate(xv, yv, batch_size=batch_size, verbose=0)))
            d = [np.nanmean(list(dice_per_group(p.argmax(-1), t).values())) for p, t in zip(pv, yv)]
            hist["val_dice"].append(float(np.nanmean(d)))
            line += f"  val_loss {hist['val_loss'][-1]:.4f}  val_dice {hist['val_dice'][-1]:.3f}"
        hist["seconds"].append(round(time.perf_counter() - t0, 1))
        if progress:
            print(f"{line}  ({hist['seconds'][-1]:.0f} s)", file=sys.stderr, flush=True)
    hist.update(train_studies=int(len(xt)), val_studies=int(len(xv)), skipped=skipped)
    model.info = {"epochs": epochs, "train_studies": int(len(xt)), "val_studies": int(len(xv))}
    return model, hist


# ----------------------------------------------------------------------------- use


def predict_probs(model: SkeletonModel, study: Study, frame: ViewFrame | None = None) -> np.ndarray:
    """Class probabilities ``(rows, cols, N_CLASSES)`` on the study's matrix, in its frame."""
    x, frame = prepare_input(study, model.config, frame)
    p = np.asarray(model.network.predict(x[None], verbose=0))[0]
    return probs_from_grid(p, frame.shape, study.pixel_spacing, model.config)


def predict_bone_map(model: SkeletonModel, study: Study, frame: ViewFrame | None = None) -> np.ndarray:
    """The bone group of every pixel (uint8, :data:`BONE_IDS`, 0 = background) on the study's
    matrix, in its :class:`~scintilab.view_frame.ViewFrame` (the stored anterior grid; the
    mirrored posterior for a posterior-only study; carry it to a view with ``from_frame``)."""
    return predict_probs(model, study, frame).argmax(-1).astype(np.uint8)


def save_skeleton_model(model: SkeletonModel, folder: str | Path) -> Path:
    """Write the weights and a JSON config (with ``model.info``) into ``folder``; returns it."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    model.network.save_weights(out / WEIGHTS_FILE)
    doc = {"config": asdict(model.config), "classes": ["background", *BONES], "info": model.info}
    (out / CONFIG_FILE).write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    return out


def load_skeleton_model(folder: str | Path) -> SkeletonModel:
    """A model saved by :func:`save_skeleton_model`.

    Raises:
        InputError: the config or weights are missing or unreadable, or the classes differ
            from :data:`scintilab.anatomy.BONES`.
    """
    src = Path(folder)
    try:
        doc = json.loads((src / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(src / CONFIG_FILE, f"no readable skeleton model config ({err})") from None
    if doc.get("classes") != ["background", *BONES]:
        raise InputError(src / CONFIG_FILE, "its classes are not background + scintilab.anatomy.BONES")
    model = build_skeleton_model(SkeletonConfig.from_dict(doc.get("config", {})), compile=False)
    if not (src / WEIGHTS_FILE).exists():
        raise InputError(src / WEIGHTS_FILE, "skeleton model weights missing")
    model.network.load_weights(src / WEIGHTS_FILE)
    # compiled after loading, so the saved optimizer state is not half-restored into a fresh one
    model.network.compile(
        optimizer=keras_adam(model.config.learning_rate), loss=skeleton_loss(model.config.dice_weight)
    )
    model.info = dict(doc.get("info", {}))
    return model


def dice_per_group(pred: np.ndarray, truth: np.ndarray, names: Sequence[str] = BONES) -> dict[str, float]:
    """Dice ``2|P & T| / (|P| + |T|)`` of every group of two label maps (id ``i + 1`` = ``names[i]``).

    With the default names the ids are :data:`BONE_IDS`; with :data:`scintilab.anatomy.REGIONS`
    the maps are region maps. A group in neither map (a cut field without feet) is NaN, so
    averages skip it.

    Raises:
        ValueError: the maps differ in shape.
    """
    p, t = np.asarray(pred).ravel(), np.asarray(truth).ravel()
    if p.shape != t.shape:
        raise ValueError(f"prediction {np.shape(pred)} and truth {np.shape(truth)} differ in shape")
    k = len(names) + 1
    both = np.bincount(t[p == t].astype(np.int64), minlength=k)
    n_p = np.bincount(p.astype(np.int64), minlength=k)
    n_t = np.bincount(t.astype(np.int64), minlength=k)
    out = {}
    for i, name in enumerate(names, start=1):
        denom = n_p[i] + n_t[i]
        out[name] = float(2.0 * both[i] / denom) if denom else float("nan")
    return out


__all__ = [
    "BONE_IDS",
    "CONFIG_FILE",
    "GRID_MM",
    "GRID_SHAPE",
    "N_CLASSES",
    "NORM_CLIP",
    "NORM_PERCENTILE",
    "WEIGHTS_FILE",
    "SkeletonConfig",
    "SkeletonModel",
    "augment",
    "build_skeleton_model",
    "dice_per_group",
    "grid_axis",
    "image_to_grid",
    "keras_adam",
    "labels_from_grid",
    "labels_to_grid",
    "lerp_axis",
    "load_skeleton_model",
    "nearest_axis",
    "normalise",
    "predict_bone_map",
    "predict_probs",
    "prepare_input",
    "probs_from_grid",
    "save_skeleton_model",
    "shift_zero",
    "skeleton_loss",
    "study_axis",
    "train_skeleton_model",
    "training_arrays",
    "truth_bone_map",
]
