"""Inception-v1 (GoogLeNet, Szegedy et al. 2015), the baseline of Guo et al. Tables 9-10.

Stem: 7x7/64 stride-2 conv, 3x3 stride-2 max pool, 1x1/64 conv, 3x3/192 conv, 3x3
stride-2 max pool. Then the nine inception modules 3a-5b with the original filter counts
(Table 1 of Szegedy et al.), a 3x3 stride-2 max pool after 3b and after 4e, global average
pooling, dropout 0.4 and a dense softmax. Each module has four branches concatenated on
channels: 1x1; 1x1 reduce -> 3x3; 1x1 reduce -> 5x5; 3x3 max pool (stride 1) -> 1x1 proj.

Choices:

* Local response normalisation of the original is replaced by batch norm after every
  convolution (``batch_norm=True``, as torchvision's GoogLeNet does); ``batch_norm=False``
  gives plain conv+ReLU (LRN itself is not provided).
* The 5x5 branch really is 5x5 (torchvision's port uses 3x3 there).
* The two auxiliary classifiers are not built: they only add training-time losses, Guo
  et al. do not mention them, and one output keeps the training loop model-agnostic.
* Depth: 3 stem convs + 9 x 2 + 1 dense = 22 weight layers on the longest path.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from scintilab.models.blocks import check_input_shape, classification_head, conv_bn, make_input, scaled

#: name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)  (Szegedy et al. Table 1)
MODULES: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def inception_module(x: Any, filters: tuple[int, ...], *, name: str, batch_norm: bool, width: int) -> Any:
    """One inception module: four branches concatenated on channels."""
    f1, f3r, f3, f5r, f5, fp = (scaled(f, width) for f in filters)
    b1 = conv_bn(x, f1, 1, name=f"{name}_1x1", batch_norm=batch_norm)
    b3 = conv_bn(x, f3r, 1, name=f"{name}_3x3reduce", batch_norm=batch_norm)
    b3 = conv_bn(b3, f3, 3, name=f"{name}_3x3", batch_norm=batch_norm)
    b5 = conv_bn(x, f5r, 1, name=f"{name}_5x5reduce", batch_norm=batch_norm)
    b5 = conv_bn(b5, f5, 5, name=f"{name}_5x5", batch_norm=batch_norm)
    bp = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = conv_bn(bp, fp, 1, name=f"{name}_poolproj", batch_norm=batch_norm)
    return layers.Concatenate(axis=-1, name=f"{name}_concat")([b1, b3, b5, bp])


def inception_v1(
    input_shape: tuple[int, int, int] = (1024, 256, 1),
    num_classes: int = 3,
    *,
    batch_norm: bool = True,
    dropout: float = 0.4,
    width: int = 64,
    name: str = "inception_v1",
) -> keras.Model:
    """Build Inception-v1 (GoogLeNet without auxiliary heads).

    Args:
        input_shape: (height, width, channels).
        num_classes: Output classes.
        batch_norm: Batch norm after every convolution (in place of LRN).
        dropout: Dropout before the dense layer (0.4 in the original).
        width: Base width; 64 is the published network (all filter counts scale with it).
        name: Model name.

    Returns:
        The ``keras.Model``.
    """
    shape = check_input_shape(input_shape, num_classes)
    inputs = make_input(shape)
    x = conv_bn(inputs, scaled(64, width), 7, 2, name="stem1", batch_norm=batch_norm)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem1_pool")(x)
    x = conv_bn(x, scaled(64, width), 1, name="stem2", batch_norm=batch_norm)
    x = conv_bn(x, scaled(192, width), 3, name="stem3", batch_norm=batch_norm)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem3_pool")(x)
    for key, filters in MODULES.items():
        x = inception_module(x, filters, name=f"inception{key}", batch_norm=batch_norm, width=width)
        if key in ("3b", "4e"):
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"inception{key}_maxpool")(x)
    outputs = classification_head(x, num_classes, dropout=dropout)
    return keras.Model(inputs, outputs, name=name)


def build(input_shape: tuple[int, int, int] = (1024, 256, 1), num_classes: int = 3, **options: Any) -> keras.Model:
    """Registry entry point for ``inception_v1`` (see :func:`inception_v1` for the options)."""
    if options.get("blocks", 0) is None:  # the generic "no override" value; any other is an error
        options.pop("blocks")
    return inception_v1(input_shape, num_classes, **options)
