"""CBAM, the hybrid (channel then spatial) attention module of Guo et al. 2022, eq. 2-4.

The module is Woo et al.'s Convolutional Block Attention Module (ECCV 2018,
arXiv:1807.06521). Given a feature map ``F`` of shape (batch, H, W, C)::

    f_C(F) = sigmoid(MLP(AvgPool_hw(F)) + MLP(MaxPool_hw(F)))          (eq. 3)
    F'     = f_C(F) * F
    f_S(F') = sigmoid(conv_kxk([AvgPool_c(F'); MaxPool_c(F')]))         (eq. 4)
    M      = f_S(F') * F'                                               (eq. 2)

Choices, following Woo et al. where Guo et al. are silent:

* The MLP is **shared** by the average- and max-pooled descriptors: C -> C/r -> C with
  a ReLU between, **with biases** on both dense layers (Woo's released code uses
  ``nn.Linear`` with its default ``bias=True``). The hidden width is ``max(1, C // r)``
  so tiny test models with C < r still get a valid MLP.
* The spatial convolution has **no bias** (Woo's released code: ``bias=False``), one
  output channel, "same" padding and stride 1. Woo's code also puts a batch norm after
  this convolution; neither paper's equations have it, so we follow the equations.
* The two channel-pooled maps are stacked in the paper's order ``[AvgPool; MaxPool]``
  (Woo's code concatenates max first; with learned weights the order is immaterial, but
  it matters for the NumPy reference in the tests).

Everything is written with ``keras.ops`` so the layer runs on TensorFlow, JAX and PyTorch.
Data layout is channels-last.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

#: Take TensorFlow's own reductions on the TensorFlow backend (see :func:`_mean`).
FAST_TF_MEAN = True


def _mean(x: Any, axis: Any, keepdims: bool = False) -> Any:
    """``ops.mean`` without Keras' float32 round trip on TensorFlow.

    Keras' TensorFlow ``mean`` casts a bfloat16 map to float32, reduces and casts back: two
    extra passes over every CBAM input under a ``mixed_bfloat16`` policy. TensorFlow's CPU
    reductions already accumulate bfloat16 in float32 (measured: 0.4% relative error, the
    rounding of the bfloat16 result itself, over 16,384 summands), so the cast buys
    nothing. Float32 input gives the same numbers either way; other backends use ``ops``.
    """
    if FAST_TF_MEAN and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.reduce_mean(x, axis=axis, keepdims=keepdims)
    return ops.mean(x, axis=axis, keepdims=keepdims)


@keras.saving.register_keras_serializable(package="scintilab")
class CBAM(keras.layers.Layer):
    """Convolutional Block Attention Module (channel attention, then spatial attention).

    Args:
        reduction: Reduction ratio ``r`` of the shared MLP (hidden width ``max(1, C // r)``).
        spatial_kernel: Side ``k`` of the spatial-attention convolution (odd, e.g. 7).
        return_attention: When True, ``call`` returns ``(refined, channel_att, spatial_att)``
            with shapes (B, H, W, C), (B, 1, 1, C) and (B, H, W, 1); the models build with
            this on so the attention maps are nodes of the graph (see
            :func:`scintilab.models.attention_maps_model`). When False, only ``refined``.
        **kwargs: Passed to ``keras.layers.Layer`` (name, dtype, ...).

    Weights (for a C-channel input, hidden width h):
        ``mlp_w1`` (C, h), ``mlp_b1`` (h,), ``mlp_w2`` (h, C), ``mlp_b2`` (C,),
        ``spatial_kernel`` (k, k, 2, 1): ``2*C*h + h + C + 2*k*k`` parameters.
    """

    def __init__(
        self,
        reduction: int = 16,
        spatial_kernel: int = 7,
        return_attention: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(reduction) < 1:
            raise ValueError(f"CBAM reduction ratio must be >= 1, got {reduction}")
        if int(spatial_kernel) < 1 or int(spatial_kernel) % 2 == 0:
            # An even kernel cannot be centred, so "same" padding would shift the map.
            raise ValueError(f"CBAM spatial_kernel must be a positive odd integer, got {spatial_kernel}")
        self.reduction = int(reduction)
        self.spatial_kernel_size = int(spatial_kernel)
        self.return_attention = bool(return_attention)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create the shared-MLP and spatial-convolution weights for ``input_shape``."""
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("CBAM needs a known channel dimension")
        hidden = max(1, int(channels) // self.reduction)
        self.hidden_units = hidden
        # He-normal for the ReLU layer, Glorot for the layers feeding a sigmoid: the
        # usual choice (also in Keras ports of CBAM).
        self.mlp_w1 = self.add_weight(name="mlp_w1", shape=(channels, hidden), initializer="he_normal")
        self.mlp_b1 = self.add_weight(name="mlp_b1", shape=(hidden,), initializer="zeros")
        self.mlp_w2 = self.add_weight(name="mlp_w2", shape=(hidden, channels), initializer="glorot_uniform")
        self.mlp_b2 = self.add_weight(name="mlp_b2", shape=(channels,), initializer="zeros")
        k = self.spatial_kernel_size
        self.spatial_kernel = self.add_weight(name="spatial_kernel", shape=(k, k, 2, 1), initializer="glorot_uniform")

    def _mlp(self, v: Any) -> Any:
        """The shared two-layer MLP applied to a (B, C) descriptor."""
        hidden = ops.relu(ops.matmul(v, self.mlp_w1) + self.mlp_b1)
        return ops.matmul(hidden, self.mlp_w2) + self.mlp_b2

    def channel_attention(self, x: Any) -> Any:
        """Eq. 3: channel weights in (0, 1), shape (B, 1, 1, C)."""
        avg = _mean(x, axis=(1, 2))
        mx = ops.max(x, axis=(1, 2))
        att = ops.sigmoid(self._mlp(avg) + self._mlp(mx))
        return ops.expand_dims(ops.expand_dims(att, 1), 1)

    def spatial_attention(self, x: Any) -> Any:
        """Eq. 4: spatial weights in (0, 1), shape (B, H, W, 1)."""
        pooled = ops.concatenate([_mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)], axis=-1)
        logits = ops.conv(pooled, self.spatial_kernel, strides=1, padding="same", data_format="channels_last")
        return ops.sigmoid(logits)

    def call(self, inputs: Any) -> Any:
        """Eq. 2: refine ``inputs`` by channel then spatial attention."""
        channel_att = self.channel_attention(inputs)
        refined = inputs * channel_att
        spatial_att = self.spatial_attention(refined)
        out = refined * spatial_att
        if self.return_attention:
            return out, channel_att, spatial_att
        return out

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> Any:
        """Shapes of ``refined`` (and of the two attention tensors when returned)."""
        input_shape = tuple(input_shape)
        if not self.return_attention:
            return input_shape
        batch, height, width, channels = input_shape
        return input_shape, (batch, 1, 1, channels), (batch, height, width, 1)

    def macs(self, input_shape: tuple[int | None, ...]) -> int:
        """Multiply-accumulates of the MLP and the spatial convolution for one image.

        Only weight multiplications are counted (pooling, sigmoids and the two
        element-wise products are not), the same convention as for Conv2D/Dense.
        """
        _, height, width, channels = input_shape
        hidden = max(1, int(channels) // self.reduction)
        mlp = 2 * (int(channels) * hidden + hidden * int(channels))  # two descriptors share it
        spatial = int(height) * int(width) * self.spatial_kernel_size**2 * 2
        return mlp + spatial

    def get_config(self) -> dict[str, Any]:
        """Serializable configuration (for ``.keras`` save and load)."""
        config = super().get_config()
        config.update(
            reduction=self.reduction,
            spatial_kernel=self.spatial_kernel_size,
            return_attention=self.return_attention,
        )
        return config


def cbam_param_count(channels: int, reduction: int = 16, spatial_kernel: int = 7) -> int:
    """Parameters of a CBAM on a ``channels``-channel map (shared MLP + spatial kernel)."""
    hidden = max(1, channels // reduction)
    return channels * hidden + hidden + hidden * channels + channels + spatial_kernel * spatial_kernel * 2
