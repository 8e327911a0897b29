"""The model zoo: Classifier-inRAC, its ablations and depth variants, and two baselines.

One entry point, :func:`build_model`, and a registry :data:`MODELS`::

    from scintilab.models import build_model, list_models
    model = build_model("inrac", input_shape=(1024, 256, 1), num_classes=3)

=============  =====================================================================
name           model
=============  =====================================================================
inrac          Classifier-inRAC (Guo et al. Table 1): residual + CBAM inside, [2,3,5,2]
outrac         Classifier-outRAC: CBAM after the residual addition
plain          Table 6: no residual, no attention
attention      Table 6: attention, no residual
residual       Table 6: residual, no attention
classifier18   Table 7: inRAC blocks, [2,2,2,2]
classifier34   Table 7: inRAC blocks, [3,4,6,3]
vgg11          Table 9: VGG configuration A (``batch_norm`` option)
inception_v1   Table 9: GoogLeNet, 9 inception modules, no auxiliary heads
=============  =====================================================================

Models are Keras 3 functional models written with ``keras.layers``/``keras.ops`` only,
so they run on the TensorFlow, JAX and PyTorch backends; the only custom layer,
:class:`~scintilab.models.cbam.CBAM`, is registered for ``.keras`` saving.
"""
from __future__ import annotations

from typing import Any, Callable

import keras

from scintilab.models import inception, resnet, vgg
from scintilab.models.cbam import CBAM, cbam_param_count
from scintilab.models.introspect import (
    attention_maps_model,
    cbam_layers,
    count_params_table,
    feature_model,
    forward_macs,
    last_conv_layer_name,
    weight_layer_depth,
)

#: name -> builder(input_shape, num_classes, **options) -> keras.Model
MODELS: dict[str, Callable[..., keras.Model]] = {
    "inrac": resnet.inrac,
    "outrac": resnet.outrac,
    "plain": resnet.plain,
    "attention": resnet.attention,
    "residual": resnet.residual,
    "classifier18": resnet.classifier18,
    "classifier34": resnet.classifier34,
    "vgg11": vgg.build,
    "inception_v1": inception.build,
}


def list_models() -> list[str]:
    """Registered model names, in the order of the paper's tables."""
    return list(MODELS)


def build_model(
    name: str,
    input_shape: tuple[int, int, int] = (1024, 256, 1),
    num_classes: int = 3,
    **options: Any,
) -> keras.Model:
    """Build a registered model with fresh weights.

    Args:
        name: A name from :func:`list_models`.
        input_shape: (height, width, channels); the paper's images are 1024x256x1.
        num_classes: 3 (NoMet/ADMet/nADMet) or 2 (metastatic vs not); any >= 2 works.
        **options: Model options. RA-Conv family (inrac ... classifier34): ``reduction``
            (16), ``spatial_kernel`` (7), ``blocks`` (override the four stage counts;
            None = the model's own), ``width`` (base width 64; small values make tiny
            test models), ``dropout`` (0). vgg11: ``batch_norm`` (False), ``head``
            ("fc"), ``fc_units``, ``dropout`` (0.5), ``width``. inception_v1:
            ``batch_norm`` (True), ``dropout`` (0.4), ``width``. Every model:
            ``dtype_policy`` (e.g. "mixed_float16"; the softmax stays float32).
            An option a model does not know raises ``TypeError``.

    Returns:
        The uncompiled ``keras.Model`` (input named ``image``, output ``predictions``).

    Raises:
        ValueError: unknown model name, or a bad shape/class count/option value.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    policy = options.pop("dtype_policy", None)
    if policy is None:
        return MODELS[name](tuple(input_shape), int(num_classes), **options)
    # Layers take the global policy when constructed; set it only for this build.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return MODELS[name](tuple(input_shape), int(num_classes), **options)
    finally:
        keras.config.set_dtype_policy(previous)


__all__ = [
    "CBAM",
    "MODELS",
    "attention_maps_model",
    "build_model",
    "cbam_layers",
    "cbam_param_count",
    "count_params_table",
    "feature_model",
    "forward_macs",
    "last_conv_layer_name",
    "list_models",
    "weight_layer_depth",
]
