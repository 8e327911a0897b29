"""Classifier-inRAC and its relatives (Guo et al. 2022, Tables 1, 6 and 7).

All share the stem of Table 1 (7x7/64 stride-2 conv, batch norm, ReLU, 3x3 stride-2 max
pool), four stages of RA-Conv blocks at 64/128/256/512 channels (stride 2 in the first
block of stages 2-4), global average pooling and a softmax. They differ in the blocks
(:func:`scintilab.models.blocks.ra_block`) and in the number of blocks per stage.

Depth ("26-layer" in the paper) counts weight layers on the main path, as He et al. do
for ResNet-18/34: 1 stem conv + 2 x (2+3+5+2) block convs + 1 dense = 26. The 1x1
projection shortcuts and the CBAM modules are not counted.

Table 1 lists no activation after the stem's batch norm; we put a ReLU there, as in
ResNet, because a BN output fed straight to max pooling and the first block's
convolution would otherwise let half of the stem's signal be negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from scintilab.models.blocks import (
    check_input_shape,
    classification_head,
    conv_bn,
    make_input,
    ra_block,
    scaled,
)

#: Blocks per stage of each named model.
STAGES_INRAC = (2, 3, 5, 2)
STAGES_18 = (2, 2, 2, 2)
STAGES_34 = (3, 4, 6, 3)
STAGE_FILTERS = (64, 128, 256, 512)


def build_ra_classifier(
    input_shape: tuple[int, int, int] = (1024, 256, 1),
    num_classes: int = 3,
    *,
    blocks: Sequence[int] = STAGES_INRAC,
    residual: bool = True,
    attention: bool = True,
    placement: str = "inside",
    reduction: int = 16,
    spatial_kernel: int = 7,
    width: int = 64,
    dropout: float = 0.0,
    name: str = "inrac",
) -> keras.Model:
    """Build a stem + RA-Conv stages + GAP + softmax classifier.

    Args:
        input_shape: (height, width, channels); the paper's images are 1024x256x1.
        num_classes: Output classes (3: NoMet/ADMet/nADMet; 2: metastatic or not).
        blocks: Blocks per stage (four stages).
        residual: Residual connections in the blocks.
        attention: CBAM in the blocks.
        placement: "inside" (inRAC) or "outside" (outRAC) the residual branch.
        reduction: CBAM MLP reduction ratio r (Woo et al.: 16).
        spatial_kernel: CBAM spatial kernel k (Woo et al.: 7).
        width: Base width (64 in the paper); stages use width x (1, 2, 4, 8). Small
            values give tiny models for tests.
        dropout: Dropout rate before the dense layer (0 = none, as in Table 1).
        name: Model name.

    Returns:
        A freshly initialised ``keras.Model`` mapping images to class probabilities.
    """
    shape = check_input_shape(input_shape, num_classes)
    blocks = tuple(int(b) for b in blocks)
    if len(blocks) != 4 or min(blocks) < 1:
        raise ValueError(f"blocks must be four positive counts, got {blocks}")
    inputs = make_input(shape)
    x = conv_bn(inputs, scaled(64, width), 7, 2, name="stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (count, filters) in enumerate(zip(blocks, STAGE_FILTERS), start=1):
        for block in range(1, count + 1):
            strides = 2 if (stage > 1 and block == 1) else 1
            x = ra_block(
                x,
                scaled(filters, width),
                strides,
                name=f"s{stage}b{block}",
                residual=residual,
                attention=attention,
                placement=placement,
                reduction=reduction,
                spatial_kernel=spatial_kernel,
            )
    outputs = classification_head(x, num_classes, dropout=dropout)
    return keras.Model(inputs, outputs, name=name)


def _variant(name: str, doc: str, **fixed: Any):
    """Make a registry builder with some architecture switches fixed."""

    def builder(
        input_shape: tuple[int, int, int] = (1024, 256, 1), num_classes: int = 3, **options: Any
    ) -> keras.Model:
        params = dict(fixed)
        clash = set(options) & {"residual", "attention", "placement"}
        if clash:
            raise TypeError(f"{name}: {sorted(clash)} are fixed by the model name")
        if options.get("blocks") is None:
            options.pop("blocks", None)
        params.update(options)
        return build_ra_classifier(input_shape, num_classes, name=name, **params)

    builder.__name__ = name
    builder.__doc__ = doc + "\n\nOptions: see :func:`build_ra_classifier` (``blocks`` may override the stage counts)."
    return builder


inrac = _variant(
    "inrac",
    "Classifier-inRAC (Table 1): residual blocks [2,3,5,2], CBAM inside the branch.",
    blocks=STAGES_INRAC,
    residual=True,
    attention=True,
    placement="inside",
)
outrac = _variant(
    "outrac",
    "Classifier-outRAC: as inRAC with CBAM after the addition (and its ReLU).",
    blocks=STAGES_INRAC,
    residual=True,
    attention=True,
    placement="outside",
)
plain = _variant(
    "plain",
    "Table 6 ablation: no residual connection, no attention, blocks [2,3,5,2].",
    blocks=STAGES_INRAC,
    residual=False,
    attention=False,
)
attention = _variant(
    "attention",
    "Table 6 ablation: CBAM without residual connection, blocks [2,3,5,2].",
    blocks=STAGES_INRAC,
    residual=False,
    attention=True,
)
residual = _variant(
    "residual",
    "Table 6 ablation: residual blocks without attention, blocks [2,3,5,2].",
    blocks=STAGES_INRAC,
    residual=True,
    attention=False,
)
classifier18 = _variant(
    "classifier18",
    "Table 7: inRAC blocks, stages [2,2,2,2] (18 weight layers).",
    blocks=STAGES_18,
    residual=True,
    attention=True,
    placement="inside",
)
classifier34 = _variant(
    "classifier34",
    "Table 7: inRAC blocks, stages [3,4,6,3] (34 weight layers).",
    blocks=STAGES_34,
    residual=True,
    attention=True,
    placement="inside",
)
