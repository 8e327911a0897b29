"""Batch normalisation that trains with TensorFlow's fused kernel.

Keras 3's ``BatchNormalization`` computes the batch moments and the normalisation as
separate element-wise passes (``Mean``, ``SquaredDifference``, ``Sum``, ``Mul``, ...), and
under a ``mixed_bfloat16`` policy it first casts every feature map to float32 and back.
On a CPU those passes are memory-bound and the 26-layer inRAC has 33 batch norms on maps
of up to 512x128x64 per image: in a per-op profile of a bfloat16 training step at
1024x256 they were about 10% of the thread time (BENCHMARKS.md). TensorFlow's
``FusedBatchNormV3`` does moments, normalisation and, in the backward pass, the gradient
in one oneDNN kernel each, reading bfloat16 directly.

:class:`BatchNorm` is a drop-in subclass: the same weights, names, config and inference
path (so saved models, batch-norm folding and Grad-CAM are unchanged); only a *training*
call on the TensorFlow backend, for a 4-D channels-last input without mask or renorm,
takes the fused kernel. Everything else (JAX, PyTorch, masks, other axes) is Keras' own
code. Moving statistics follow Keras' convention (biased batch variance).
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="scintilab")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose TensorFlow training step is fused."""

    def _fused_ok(self, inputs: Any, training: Any, mask: Any) -> bool:
        if not (training and self.trainable) or mask is not None or self.renorm or self.synchronized:
            return False
        if keras.backend.backend() != "tensorflow" or len(inputs.shape) != 4:
            return False
        return self.axis in (-1, 3) and keras.backend.standardize_dtype(inputs.dtype) in {
            "float32",
            "bfloat16",
            "float16",
        }

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        """Normalise ``inputs``; fused on TensorFlow when training (see the module doc)."""
        if not self._fused_ok(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = int(inputs.shape[-1])
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        y, mean, var = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        # The fused kernel returns the unbiased (n-1) batch variance for the moving
        # average; Keras keeps the biased one. Same convention here, so a model trained
        # with either layer has the same moving statistics.
        shape = tf.shape(inputs)
        n = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
        var = var * tf.math.maximum(n - 1.0, 1.0) / tf.math.maximum(n, 1.0)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + tf.cast(mean, self.moving_mean.dtype) * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + tf.cast(var, self.moving_variance.dtype) * (1.0 - m))
        return tf.cast(y, self.compute_dtype)


__all__ = ["BatchNorm"]
