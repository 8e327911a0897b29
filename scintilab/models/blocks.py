"""Building blocks shared by the classifiers: conv+BN, the residual (RA-Conv) block, heads.

Layer names follow one scheme so later code (Grad-CAM, overlays, tests) can find things:
``s{stage}b{block}_conv1`` / ``_bn1`` / ``_relu1`` / ``_conv2`` / ``_bn2`` / ``_cbam`` /
``_proj_conv`` / ``_proj_bn`` / ``_add`` / ``_out``; the head is ``features`` (identity on the last feature map), ``gap``, ``dropout``,
``logits`` and ``predictions`` (softmax, always float32).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from scintilab.models.cbam import CBAM
from scintilab.models.norm import BatchNorm

#: Where a CBAM goes in a block.
PLACEMENTS = ("inside", "outside")


def scaled(filters: int, width: int) -> int:
    """Scale a published filter count (defined at base width 64) to base ``width``."""
    return max(1, int(round(filters * width / 64)))


def conv_bn(
    x: Any,
    filters: int,
    kernel: int,
    strides: int = 1,
    *,
    name: str,
    batch_norm: bool = True,
    relu: bool = True,
    suffix: str = "",
) -> Any:
    """Convolution ("same" padding), optional batch norm, optional ReLU.

    The convolution has no bias when a batch norm follows (the BN shift replaces it).
    """
    x = layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        use_bias=not batch_norm,
        kernel_initializer="he_normal",
        name=f"{name}_conv{suffix}",
    )(x)
    if batch_norm:
        x = BatchNorm(name=f"{name}_bn{suffix}")(x)
    if relu:
        x = layers.ReLU(name=f"{name}_relu{suffix}")(x)
    return x


def ra_block(
    x: Any,
    filters: int,
    strides: int = 1,
    *,
    name: str,
    residual: bool = True,
    attention: bool = True,
    placement: str = "inside",
    reduction: int = 16,
    spatial_kernel: int = 7,
) -> Any:
    """One RA-Conv block: two 3x3 convolutions with residual connection and/or CBAM.

    Wiring (``F`` = conv3x3(stride s)-BN-ReLU-conv3x3-BN, ``P`` = shortcut)::

        residual, attention inside  (inRA-Conv): out = ReLU(CBAM(F(x)) + P(x))
        residual, attention outside (outRA-Conv): out = CBAM(ReLU(F(x) + P(x)))
        residual, no attention:                   out = ReLU(F(x) + P(x))
        attention, no residual:                   out = ReLU(CBAM(F(x)))
        neither:                                  out = ReLU(F(x))

    ``P`` is the identity when shape is kept, else a projection (1x1 conv, stride s, BN),
    as in ResNet option B. "Inside" is Woo et al.'s placement (CBAM on the branch, before
    the addition). "Outside" applies CBAM to the block's output, after the addition and
    its ReLU, so the attention sees exactly what the next block receives and the block's
    output stays non-negative as in every other variant.

    Args:
        x: Input tensor (B, H, W, C).
        filters: Output channels.
        strides: Stride of the first convolution (and of the projection).
        name: Prefix of every layer name of the block.
        residual: Add the shortcut.
        attention: Insert a CBAM.
        placement: "inside" or "outside" (only used with ``residual`` and ``attention``).
        reduction: CBAM reduction ratio.
        spatial_kernel: CBAM spatial kernel side.

    Returns:
        The block's output tensor.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    in_channels = x.shape[-1]
    y = conv_bn(x, filters, 3, strides, name=name, suffix="1")
    y = conv_bn(y, filters, 3, 1, name=name, suffix="2", relu=False)
    cbam = None
    if attention:
        cbam = CBAM(reduction, spatial_kernel, return_attention=True, name=f"{name}_cbam")
    if attention and (placement == "inside" or not residual):
        y = cbam(y)[0]
    if residual:
        shortcut = x
        if strides != 1 or in_channels != filters:
            shortcut = layers.Conv2D(
                filters,
                1,
                strides=strides,
                use_bias=False,
                kernel_initializer="he_normal",
                name=f"{name}_proj_conv",
            )(x)
            shortcut = BatchNorm(name=f"{name}_proj_bn")(shortcut)
        y = layers.Add(name=f"{name}_add")([y, shortcut])
    y = layers.ReLU(name=f"{name}_out")(y)
    if attention and residual and placement == "outside":
        y = cbam(y)[0]
    return y


def classification_head(x: Any, num_classes: int, *, dropout: float = 0.0) -> Any:
    """Named final feature map, global average pooling, optional dropout, dense, softmax.

    The last 4-D feature map passes through an identity layer named ``features`` so
    Grad-CAM finds it under one name in every model, even where the last block ends in a
    multi-output CBAM layer (outRAC).

    The softmax layer is pinned to float32 so probabilities stay exact (and sum to 1)
    under a mixed-precision dtype policy.
    """
    x = layers.Identity(name="features")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="predictions")(x)


def check_input_shape(input_shape: tuple[int, ...], num_classes: int) -> tuple[int, int, int]:
    """Validate ``(height, width, channels)`` and the class count; return the shape as ints."""
    shape = tuple(input_shape)
    if len(shape) != 3 or any(s is None or int(s) < 1 for s in shape):
        raise ValueError(f"input_shape must be (height, width, channels) of positive ints, got {input_shape}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def make_input(input_shape: tuple[int, int, int]) -> Any:
    """The model's input layer (named ``image``)."""
    return keras.Input(shape=input_shape, name="image")
