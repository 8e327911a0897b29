"""Where did the model look? Grad-CAM, CBAM attention maps, overlays, the Fig. 11 gallery.

* **Grad-CAM** (Selvaraju et al. 2017): weight each channel of a convolutional feature
  map by the spatial mean of the class score's gradient with respect to it, sum, ReLU,
  upsample to the image. By default the map is taken at the last convolutional stage (the
  model's ``features`` layer, input of global pooling) and the score is the class
  *logit* (pre-softmax, as in the Grad-CAM paper: softmax gradients vanish for confident
  predictions). The gradient is taken with the backend's own autodiff: TensorFlow's
  ``GradientTape``, ``jax.grad``, or ``torch.autograd``.
* **CBAM spatial attention** (Woo et al. 2018; the paper's eq. 4): the maps the model
  multiplies its features with, read from the graph, upsampled and averaged over blocks.
* **Overlays** on the fused image, and the **misclassified-cases gallery** of the paper's
  Fig. 11 (false positives, ADMet/nADMet confusions, and correct cases for contrast).

The last stage of Classifier-inRAC has a stride of 32: at the ``quick`` preset's 256 x 64
input its map is only 8 x 2 cells. Pass ``layer_name="s3b5_out"`` (stride 16) for a finer
but less class-specific map.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab.errors import InputError
from scintilab.runs import load_run


# --------------------------------------------------------------------------- maps
def _resize(maps: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of (N, h, w) maps to (N, H, W) (scikit-image, order 1)."""
    from skimage.transform import resize

    if maps.shape[1:] == tuple(hw):
        return maps.astype(np.float32)
    return np.stack(
        [resize(m, hw, order=1, mode="edge", anti_aliasing=False, preserve_range=True) for m in maps]
    ).astype(np.float32)


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Scale each map to [0, 1] by its maximum (an all-zero map stays zero)."""
    maps = np.maximum(maps, 0.0)
    peak = maps.reshape(len(maps), -1).max(axis=1)
    peak[peak <= 0] = 1.0
    return (maps / peak[:, None, None]).astype(np.float32)


def _as_batch(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"images must be (H, W), (N, H, W) or (N, H, W, 1); got shape {np.shape(images)}")
    return x


def _score_layer(model: Any) -> str:
    """The pre-softmax score layer when the model has one (``logits``), else the output."""
    names = {layer.name for layer in model.layers}
    return "logits" if "logits" in names else model.layers[-1].name


def _features_and_scores(model: Any, layer_name: str | None) -> Any:
    import keras

    from scintilab.models import last_conv_layer_name

    name = layer_name or last_conv_layer_name(model)
    # one feature model per (model, layer), kept on the model: its traced gradient
    # function is then reused by every later call instead of being traced again
    cache = model.__dict__.setdefault("_scintilab_gradcam_models", {})
    if name not in cache:
        feats = model.get_layer(name).output
        score = model.get_layer(_score_layer(model)).output
        cache[name] = keras.Model(model.input, [feats, score], name=f"{model.name}_gradcam")
    return cache[name]


def _gradients(fm: Any, x: np.ndarray, class_index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, d score[class] / d features, scores) with the active backend's autodiff."""
    import keras

    backend = keras.backend.backend()
    onehot = np.eye(int(fm.outputs[1].shape[-1]), dtype=np.float32)[class_index]
    if backend == "tensorflow":
        import tensorflow as tf

        # Traced once per feature model: eager GradientTape through the CBAM ops has
        # crashed TF 2.21's oneDNN CPU kernels (heap corruption); the graph path is
        # also faster for repeated batches.
        step = getattr(fm, "_scintilab_gradcam_step", None)
        if step is None:

            @tf.function(reduce_retracing=True)
            def step(xt, oh):
                with tf.GradientTape() as tape:
                    feats, scores = fm(xt, training=False)
                    tape.watch(feats)
                    target = tf.reduce_sum(scores * oh, axis=-1)
                return feats, tape.gradient(target, feats), scores

            fm._scintilab_gradcam_step = step
        feats, grads, scores = step(tf.constant(x), tf.constant(onehot))
        return feats.numpy(), grads.numpy(), scores.numpy()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        # Split at the feature layer: differentiate the head as a function of the features.
        feats = fm(x, training=False)[0]
        head = _head_model(fm)

        def target(f):
            return jnp.sum(head(f, training=False) * onehot)

        grads = jax.grad(target)(jnp.asarray(feats))
        return np.asarray(feats), np.asarray(grads), np.asarray(head(feats, training=False))
    if backend == "torch":
        import torch

        xt = torch.as_tensor(x)
        feats, scores = fm(xt, training=False)
        head = _head_model(fm)
        f = feats.detach().clone().requires_grad_(True)
        s = head(f, training=False)
        (grad,) = torch.autograd.grad((s * torch.as_tensor(onehot)).sum(), f)
        return f.detach().cpu().numpy(), grad.cpu().numpy(), s.detach().cpu().numpy()
    raise NotImplementedError(f"Grad-CAM has no gradient path for backend {backend!r}")


def _head_model(fm: Any) -> Any:
    """Re-apply the layers between the feature map and the score to a new input (JAX/torch)."""
    import keras

    feat_tensor = fm.outputs[0]
    start = feat_tensor._keras_history.operation
    layers = fm.layers
    i = layers.index(start)
    inp = keras.Input(shape=tuple(feat_tensor.shape[1:]))
    y = inp
    for layer in layers[i + 1 :]:
        y = layer(y)
        if layer.name == fm.outputs[1]._keras_history.operation.name:
            break
    return keras.Model(inp, y)


def grad_cam(
    model: Any,
    images: np.ndarray,
    class_index: int | Sequence[int] | None = None,
    *,
    layer_name: str | None = None,
    batch_size: int = 16,
    upsample: bool = True,
) -> np.ndarray:
    """Grad-CAM heat maps of ``images`` for one class each.

    Args:
        model: a Keras classifier (from :func:`scintilab.models.build_model` or any model
            with a 4-D feature map before global pooling).
        images: (H, W), (N, H, W) or (N, H, W, 1) images as fed to the model.
        class_index: the class to explain, one for all images or one per image
            (default: each image's predicted class).
        layer_name: the feature layer (default: the last convolutional stage).
        batch_size: images per gradient pass.
        upsample: resize maps to the image size (bilinear); False keeps the layer's grid.

    Returns:
        float32 (N, H, W) maps in [0, 1], each scaled to its own maximum (0 everywhere
        where no location supports the class).
    """
    x = _as_batch(images)
    fm = _features_and_scores(model, layer_name)
    if class_index is None:
        cls = None
    else:
        cls = np.broadcast_to(np.asarray(class_index, dtype=int), (len(x),))
    out = []
    for s in range(0, len(x), batch_size):
        xb = x[s : s + batch_size]
        if cls is None:
            # predicted class: the score layer's argmax equals the softmax argmax
            import keras

            _, scores_b = fm(xb, training=False)
            cb = keras.ops.convert_to_numpy(scores_b).argmax(axis=1)
        else:
            cb = cls[s : s + batch_size]
        feats, grads, _ = _gradients(fm, xb, cb)
        weights = grads.mean(axis=(1, 2))  # (B, C): global-average-pooled gradients
        cam = np.einsum("bhwc,bc->bhw", feats, weights)
        out.append(np.maximum(cam, 0.0))
    cams = np.concatenate(out)
    if upsample:
        cams = _resize(cams, x.shape[1:3])
    return _normalise(cams)


def attention_maps(
    model: Any, images: np.ndarray, *, upsample: bool = True, batch_size: int = 16
) -> dict[str, np.ndarray]:
    """CBAM spatial attention maps of every attention block, keyed by layer name.

    Args:
        model: a model with CBAM layers (inrac, outrac, attention, classifier18/34).
        images: (N, H, W[, 1]) model inputs.
        upsample: resize each map to the image size.
        batch_size: images per forward pass.

    Returns:
        ``{cbam layer name: (N, H, W) float32 in (0, 1)}`` in graph order.

    Raises:
        ValueError: the model has no CBAM layers.
    """
    from scintilab.models import attention_maps_model

    x = _as_batch(images)
    am = attention_maps_model(model, kind="spatial")
    parts: dict[str, list[np.ndarray]] = {}
    for s in range(0, len(x), batch_size):
        res = am(x[s : s + batch_size], training=False)
        for name, m in res.items():
            parts.setdefault(name, []).append(np.asarray(m)[..., 0])
    maps = {name: np.concatenate(v) for name, v in parts.items()}
    if upsample:
        maps = {name: _resize(m, x.shape[1:3]) for name, m in maps.items()}
    return maps


def mean_attention(model: Any, images: np.ndarray, *, last: int | None = None) -> np.ndarray:
    """Average of the (upsampled) CBAM spatial maps, rescaled to [0, 1] per image.

    Args:
        model: a model with CBAM layers.
        images: model inputs.
        last: average only the last ``last`` blocks (deeper blocks are more class-specific).
    """
    maps = list(attention_maps(model, images).values())
    if last:
        maps = maps[-last:]
    mean = np.mean(maps, axis=0)
    lo = mean.reshape(len(mean), -1).min(axis=1)[:, None, None]
    return _normalise(mean - lo)


# --------------------------------------------------------------------------- scoring maps
def peak_location(heat: np.ndarray) -> tuple[int, int]:
    """(row, col) of a map's maximum."""
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(heat)), heat.shape))  # type: ignore[return-value]


def pointing_game(heat: np.ndarray, mask: np.ndarray, tolerance: int = 0) -> bool:
    """True when the map's peak falls inside ``mask`` (dilated by ``tolerance`` pixels).

    The "pointing game" of Zhang et al. 2016: a simple, threshold-free test of whether an
    explanation lands on the annotated lesion.
    """
    m = np.asarray(mask, dtype=bool)
    if tolerance > 0:
        from scipy.ndimage import binary_dilation

        m = binary_dilation(m, iterations=tolerance)
    r, c = peak_location(heat)
    return bool(m[r, c])


def energy_in_mask(heat: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's total mass inside ``mask`` (vs the mask's share of the image)."""
    h = np.maximum(np.asarray(heat, dtype=float), 0)
    total = h.sum()
    return float(h[np.asarray(mask, dtype=bool)].sum() / total) if total > 0 else float("nan")


# --------------------------------------------------------------------------- overlays
def overlay(
    image: np.ndarray, heat: np.ndarray, *, alpha: float = 0.45, cmap: str = "jet", gamma: float = 0.5
) -> np.ndarray:
    """RGB overlay of a heat map on a grey image (both (H, W)).

    The image is shown with a gamma (default 0.5, a square root) because bone-scan
    counts span two orders of magnitude: linear grey would show only the bladder.
    The heat map's opacity grows with its value, so cold areas keep the anatomy visible.

    Returns:
        float (H, W, 3) in [0, 1].
    """
    import matplotlib

    img = np.asarray(image, dtype=float)
    lo, hi = np.percentile(img, [1, 99.5])
    grey = np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1) ** gamma
    rgb = np.repeat(grey[..., None], 3, axis=2)
    h = np.clip(np.asarray(heat, dtype=float), 0, 1)
    colour = matplotlib.colormaps[cmap](h)[..., :3]
    a = alpha * h[..., None]
    return (1 - a) * rgb + a * colour


def case_groups(predictions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split predictions into the paper's Fig. 11 groups (plus the correct NoMet cases).

    Groups: ``"NoMet called metastatic"`` (a), ``"metastatic called NoMet"``,
    ``"ADMet called nADMet"`` (b), ``"nADMet called ADMet"``, ``"correct nADMet"`` (c),
    ``"correct ADMet"`` (d), ``"correct NoMet"``; each sorted by the model's confidence
    (most confident first: confident mistakes are the instructive ones). Two-class runs
    give the NoMet/Met groups only.
    """
    pcols = [c for c in predictions.columns if c.startswith("p_")]
    df = predictions.copy()
    df["confidence"] = df[pcols].max(axis=1)
    df = df.sort_values("confidence", ascending=False)
    t, p = df["true"], df["pred"]
    met_t, met_p = t != "NoMet", p != "NoMet"
    groups = {
        "NoMet called metastatic": df[~met_t & met_p],
        "metastatic called NoMet": df[met_t & ~met_p],
        "ADMet called nADMet": df[(t == "ADMet") & (p == "nADMet")],
        "nADMet called ADMet": df[(t == "nADMet") & (p == "ADMet")],
        "correct nADMet": df[(t == "nADMet") & (p == "nADMet")],
        "correct ADMet": df[(t == "ADMet") & (p == "ADMet")],
        "correct Met": df[(t == "Met") & (p == "Met")],
        "correct NoMet": df[(t == "NoMet") & (p == "NoMet")],
    }
    return {k: v for k, v in groups.items() if len(v)}


def load_test_images(run_dir: str | Path) -> np.ndarray:
    """The test images a run saved (float32 (N, H, W), rows in ``predictions.csv`` test order).

    Raises:
        InputError: the run kept no images (``save_test_images=False``).
    """
    path = Path(run_dir) / "test_images.npy"
    if not path.exists():
        raise InputError(path, "run folder holds no test images (trained with save_test_images=False)")
    return np.load(path).astype(np.float32)


def gallery_figure(
    images: np.ndarray,
    heats: np.ndarray | None,
    rows: pd.DataFrame,
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 6,
    panel_height: float = 4.5,
):
    """Matplotlib grid of images (with heat-map overlays) titled with truth, prediction, P.

    Args:
        images: (N, H, W) images, aligned with ``rows``.
        heats: (N, H, W) maps in [0, 1], or None for plain images.
        rows: predictions rows (``study_key``, ``true``, ``pred``, ``p_*``).
        titles: group label per panel (e.g. "NoMet called metastatic").
        ncols: panels per row.
        panel_height: inches per panel row.

    Returns:
        ``matplotlib.figure.Figure``. Titles carry only pseudonymous study keys.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    h, w = images.shape[1:3]
    # panels at least 2.1 in wide, so the three title lines fit over a 1:4 whole-body image
    panel_w = max(2.1, panel_height * w / h * 1.35)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * panel_w, nrows * (panel_height + 0.6)), squeeze=False)
    pcols = [c for c in rows.columns if c.startswith("p_")]
    for ax in axes.ravel():
        ax.axis("off")
    for i, (ax, (_, row)) in enumerate(zip(axes.ravel(), rows.iterrows())):
        shown = overlay(images[i], heats[i]) if heats is not None else images[i]
        ax.imshow(shown, cmap=None if heats is not None else "gray_r", aspect="equal")
        probs = "P " + " / ".join(f"{row[c]:.2f}" for c in pcols)  # in class order (see the notebook text)
        head = f"{titles[i]}\n" if titles is not None else ""
        ax.set_title(f"{head}{row['study_key']}\ntrue {row['true']} -> pred {row['pred']}\n{probs}", fontsize=7)
    fig.tight_layout()
    return fig


def explain_run(
    run_dir: str | Path,
    *,
    per_group: int = 2,
    method: str = "gradcam",
    layer_name: str | None = None,
    groups: Sequence[str] | None = None,
    model: Any = None,
) -> tuple[Any, pd.DataFrame, np.ndarray]:
    """The Fig. 11 gallery of a run: the most confident cases of each error/correct group.

    Args:
        run_dir: a finished run folder (needs ``model.keras`` and ``test_images.npy``).
        per_group: cases shown per group.
        method: ``"gradcam"`` or ``"attention"`` (mean CBAM spatial map) or ``"none"``.
        layer_name: Grad-CAM feature layer (default the last stage).
        groups: which groups of :func:`case_groups` to show (default all present).
        model: the loaded model (saves reloading it).

    Returns:
        ``(figure, chosen rows with a "group" column, heat maps)``.
    """
    run = load_run(run_dir)
    test = run.predictions[run.predictions.get("split", "test") == "test"].reset_index(drop=True)
    images = load_test_images(run_dir)
    if len(images) != len(test):
        raise InputError(
            Path(run_dir) / "test_images.npy", f"holds {len(images)} images for {len(test)} test predictions"
        )
    found = case_groups(test)
    chosen = []
    for name, frame in found.items():
        if groups is not None and name not in groups:
            continue
        # one image per study: augmented copies of one study would fill a group otherwise
        chosen.append(frame.drop_duplicates("study_key").head(per_group).assign(group=name))
    if not chosen:
        raise ValueError(f"{run_dir}: no test cases in the requested groups")
    sel = pd.concat(chosen)
    idx = sel.index.to_numpy()
    imgs = images[idx]
    heats = None
    if method != "none":
        model = model if model is not None else run.load_model()
        classes = run.classes
        cls = np.array([classes.index(p) for p in sel["pred"]])
        if method == "gradcam":
            heats = grad_cam(model, imgs, cls, layer_name=layer_name)
        elif method == "attention":
            heats = mean_attention(model, imgs)
        else:
            raise ValueError(f"method must be 'gradcam', 'attention' or 'none', not {method!r}")
    fig = gallery_figure(imgs, heats, sel, titles=list(sel["group"]))
    return fig, sel.reset_index(drop=True), heats if heats is not None else np.zeros_like(imgs)


def case_figure(
    image: np.ndarray, heat: np.ndarray | None, row: pd.Series | dict[str, Any], *, method: str = "Grad-CAM"
):
    """One test case: the image, the heat-map overlay and the class probabilities.

    Args:
        image: (H, W) model input.
        heat: (H, W) map in [0, 1], or None for no overlay.
        row: the case's predictions row (``study_key``, ``true``, ``pred``, ``p_*``).
        method: name of the map, for the panel title.

    Returns:
        ``matplotlib.figure.Figure`` (pseudonymous study key only).
    """
    import matplotlib.pyplot as plt

    row = pd.Series(row)
    pcols = [c for c in row.index if str(c).startswith("p_")]
    fig, axes = plt.subplots(1, 3, figsize=(8, 5.5), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    lo, hi = np.percentile(image, [1, 99.5])
    axes[0].imshow(np.clip((image - lo) / (hi - lo if hi > lo else 1), 0, 1) ** 0.5, cmap="gray")
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(overlay(image, heat) if heat is not None else np.zeros((*image.shape, 3)))
    axes[1].set_title(method if heat is not None else "(no map)", fontsize=9)
    for ax in axes[:2]:
        ax.axis("off")
    names = [c[2:] for c in pcols]
    colours = ["tab:green" if n == row["true"] else "tab:grey" for n in names]
    axes[2].barh(names, [float(row[c]) for c in pcols], color=colours)
    axes[2].set_xlim(0, 1)
    axes[2].invert_yaxis()
    axes[2].set_xlabel("probability (green = true class)")
    fig.suptitle(f"{row['study_key']}: true {row['true']}, predicted {row['pred']}", fontsize=10)
    fig.tight_layout()
    return fig
