"""VGG-11 (Simonyan & Zisserman 2015, configuration A), the baseline of Guo et al. Tables 9-10.

Convolutions: 64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M (3x3, stride 1, "same",
ReLU; M = 2x2 max pool stride 2), optionally with batch norm after each convolution
(``batch_norm=True``, torchvision's ``vgg11_bn``).

Head, adapted to the single-channel 1024x256 input. The original flattens a 7x7x512 map
into two 4096-wide dense layers. At 1024x256 the last map is 32x8x512, and flattening it
would put 131072 x 4096 = 537M weights in the first dense layer alone. We therefore pool
first (global average pooling), and keep the three dense layers so the network still has
the **11 weight layers** Table 9 lists (8 conv + 3 dense):

* ``head="fc"`` (default): GAP -> Dense(4096)+ReLU -> Dropout(0.5) -> Dense(4096)+ReLU ->
  Dropout(0.5) -> Dense(classes) softmax. 3-class: 28.1M parameters (9.2M conv + 18.9M dense).
* ``head="gap"``: GAP -> [Dropout] -> Dense(classes) softmax, 9.2M parameters, 9 weight layers.

``fc_units`` defaults to 64 x ``width`` (4096 at the base width 64).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from scintilab.models.blocks import check_input_shape, classification_head, conv_bn, make_input, scaled

#: VGG configuration A (numbers are output channels, "M" a 2x2 max pool).
CONFIG_A: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def vgg11(
    input_shape: tuple[int, int, int] = (1024, 256, 1),
    num_classes: int = 3,
    *,
    batch_norm: bool = False,
    head: str = "fc",
    fc_units: int | None = None,
    dropout: float = 0.5,
    width: int = 64,
    name: str = "vgg11",
) -> keras.Model:
    """Build VGG-11 (configuration A) for ``input_shape`` and ``num_classes``.

    Args:
        input_shape: (height, width, channels).
        num_classes: Output classes.
        batch_norm: Batch norm after every convolution (VGG-11-BN).
        head: "fc" (three dense layers on the pooled features, 11 weight layers) or
            "gap" (one dense layer).
        fc_units: Width of the two hidden dense layers of the "fc" head
            (default 64 x width = 4096).
        dropout: Dropout rate in the head (after each hidden dense layer for "fc",
            before the output layer for "gap").
        width: Base width; 64 is the published network.
        name: Model name.

    Returns:
        The ``keras.Model``.
    """
    shape = check_input_shape(input_shape, num_classes)
    if head not in ("fc", "gap"):
        raise ValueError(f"vgg11 head must be 'fc' or 'gap', got {head!r}")
    inputs = make_input(shape)
    x = inputs
    conv_index, pool_index = 0, 0
    for item in CONFIG_A:
        if item == "M":
            pool_index += 1
            x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{pool_index}")(x)
        else:
            conv_index += 1
            x = conv_bn(x, scaled(int(item), width), 3, 1, name=f"block{conv_index}", batch_norm=batch_norm)
    if head == "gap":
        return keras.Model(inputs, classification_head(x, num_classes, dropout=dropout), name=name)
    units = int(fc_units) if fc_units is not None else 64 * int(width)
    x = layers.Identity(name="features")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    for i in (1, 2):
        x = layers.Dense(units, activation="relu", name=f"fc{i}")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def build(input_shape: tuple[int, int, int] = (1024, 256, 1), num_classes: int = 3, **options: Any) -> keras.Model:
    """Registry entry point for ``vgg11`` (see :func:`vgg11` for the options)."""
    if options.get("blocks", 0) is None:  # the generic "no override" value; any other is an error
        options.pop("blocks")
    return vgg11(input_shape, num_classes, **options)
