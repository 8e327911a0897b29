"""Look inside built models: attention maps, final features, depth, parameters, FLOPs.

Grad-CAM needs the last feature map before global pooling; attention overlays need every
CBAM spatial map. Both are nodes of the functional graph (the CBAM layers are built with
``return_attention=True``), so sub-models can expose them without re-running anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras

from scintilab.models.cbam import CBAM


def _as_list(x: Any) -> list[Any]:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _parent_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Layers whose outputs feed ``layer`` (first call site; every layer here is called once)."""
    if isinstance(layer, keras.layers.InputLayer):
        return []
    parents = []
    for tensor in _as_list(layer.input):
        # KerasTensor._keras_history = (operation, node_index, tensor_index): the documented
        # way Keras itself walks a functional graph.
        parents.append(tensor._keras_history.operation)
    return parents


def cbam_layers(model: keras.Model) -> list[CBAM]:
    """The model's CBAM layers in graph order."""
    return [layer for layer in model.layers if isinstance(layer, CBAM)]


def attention_maps_model(model: keras.Model, kind: str = "spatial") -> keras.Model:
    """A model from the same input to every CBAM attention map, keyed by CBAM layer name.

    Args:
        model: A model from :func:`scintilab.models.build_model` (or reloaded from .keras).
        kind: "spatial" for the (B, H, W, 1) maps of eq. 4 (what overlays show), or
            "channel" for the (B, 1, 1, C) weights of eq. 3.

    Returns:
        A ``keras.Model`` whose output is a dict ``{cbam_layer_name: map}``; weights are
        shared with ``model``. Maps are in (0, 1); their height/width is that of the
        block's feature map (upsample for overlays).

    Raises:
        ValueError: the model has no CBAM built with ``return_attention=True``.
    """
    if kind not in ("spatial", "channel"):
        raise ValueError(f"kind must be 'spatial' or 'channel', got {kind!r}")
    index = 2 if kind == "spatial" else 1
    outputs = {}
    for layer in cbam_layers(model):
        out = layer.output
        if not isinstance(out, (list, tuple)):
            raise ValueError(f"CBAM layer {layer.name!r} was built without return_attention=True")
        outputs[layer.name] = out[index]
    if not outputs:
        raise ValueError(f"model {model.name!r} has no attention (CBAM) layers")
    return keras.Model(model.input, outputs, name=f"{model.name}_attention_{kind}")


def last_conv_layer_name(model: keras.Model) -> str:
    """Name of the layer whose output is the last 4-D feature map (the input of global pooling).

    For models from :func:`scintilab.models.build_model` this is ``"features"``, an
    identity on the last block's output: the usual Grad-CAM target (as Keras' own example
    uses ResNet's last block output rather than its last ``Conv2D``). For other models it
    is the producer of the global-pooling input, or else the last layer with a 4-D output.

    Raises:
        ValueError: no 4-D feature map found.
    """
    for layer in reversed(model.layers):
        if isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)):
            return _parent_layers(layer)[0].name
    for layer in reversed(model.layers):
        outs = _as_list(layer.output)
        if len(outs) == 1 and len(outs[0].shape) == 4:
            return layer.name
    raise ValueError(f"model {model.name!r} has no 4-D feature map")


def feature_model(model: keras.Model) -> keras.Model:
    """A model returning ``[last feature map, class probabilities]`` (for Grad-CAM).

    Grad-CAM differentiates a class score with respect to the feature map; this gives both
    from one forward pass with weights shared with ``model``.
    """
    features = model.get_layer(last_conv_layer_name(model)).output
    return keras.Model(model.input, [features, model.output], name=f"{model.name}_features")


def weight_layer_depth(model: keras.Model) -> int:
    """Weight layers (Conv2D, Dense) on the longest input-to-output path.

    The convention of He et al. and Guo et al. ("26-layer"): 1x1 projection shortcuts are
    on a shorter path and so do not count; CBAM modules are not counted either.
    """
    depth: dict[int, int] = {}

    def visit(layer: keras.layers.Layer) -> int:
        key = id(layer)
        if key not in depth:
            weighted = isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
            depth[key] = max((visit(p) for p in _parent_layers(layer)), default=0) + int(weighted)
        return depth[key]

    return max(visit(_as_list(t)[0]._keras_history.operation) for t in model.outputs)


def forward_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass of one image, counted analytically.

    Counts the weight multiplications of Conv2D, Dense and CBAM layers (nested models are
    walked); batch norm, pooling, activations and element-wise products are left out, as
    is usual. FLOPs are conventionally ``2 x MACs``.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += forward_macs(layer)
        elif isinstance(layer, CBAM):
            total += layer.macs(_as_list(layer.input)[0].shape)
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, _ = layer.output.shape
            kh, kw, cin_per_group, cout = layer.kernel.shape
            total += int(height) * int(width) * int(kh) * int(kw) * int(cin_per_group) * int(cout)
        elif isinstance(layer, keras.layers.Dense):
            in_shape = layer.input.shape
            positions = 1
            for dim in in_shape[1:-1]:
                positions *= int(dim)
            total += positions * int(in_shape[-1]) * int(layer.units)
    return total


def count_params_table(
    input_shape: tuple[int, int, int] = (1024, 256, 1),
    num_classes: int = 3,
    models: Iterable[str] | None = None,
    **options: Any,
) -> pandas.DataFrame:  # noqa: F821 - pandas imported lazily
    """Parameters, depth and forward cost of the registered models.

    Args:
        input_shape: Input (height, width, channels) the models are built for.
        num_classes: Classes of the head.
        models: Names to include (default: all registered).
        **options: Passed to every ``build_model`` call (e.g. ``width=8``).

    Returns:
        DataFrame indexed by model name with columns ``params``, ``trainable``,
        ``non_trainable``, ``depth`` (weight layers on the longest path), ``cbam``
        (number of CBAM modules), ``features`` (last feature map, HxWxC) and ``gflops``
        (forward, one image, 2 x MACs).
    """
    import pandas as pd

    from scintilab.models.registry import build_model, list_models

    rows = []
    for name in models if models is not None else list_models():
        model = build_model(name, input_shape=input_shape, num_classes=num_classes, **options)
        trainable = sum(_size(w) for w in model.trainable_weights)
        total = model.count_params()
        fshape = model.get_layer(last_conv_layer_name(model)).output.shape
        rows.append(
            {
                "model": name,
                "params": int(total),
                "trainable": int(trainable),
                "non_trainable": int(total - trainable),
                "depth": weight_layer_depth(model),
                "cbam": len(cbam_layers(model)),
                "features": "x".join(str(int(d)) for d in fshape[1:]),
                "gflops": 2 * forward_macs(model) / 1e9,
            }
        )
        del model
    return pd.DataFrame(rows).set_index("model")


def _size(variable: Any) -> int:
    n = 1
    for d in variable.shape:
        n *= int(d)
    return n
