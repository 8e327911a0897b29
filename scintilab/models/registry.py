"""The registry of model builders: :data:`MODELS`, :func:`list_models`, :func:`build_model`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from scintilab.models import inception, resnet, vgg

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
