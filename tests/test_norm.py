"""The fused batch norm (scintilab.models.norm.BatchNorm) against Keras' own layer."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from scintilab.models.norm import BatchNorm


def _pair(dtype: str = "float32") -> tuple[keras.layers.Layer, keras.layers.Layer]:
    ref, ours = keras.layers.BatchNormalization(dtype=dtype), BatchNorm(dtype=dtype)
    for layer in (ref, ours):
        layer.build((None, 6, 5, 4))
    rng = np.random.default_rng(0)
    weights = [rng.normal(1, 0.2, 4), rng.normal(0, 0.2, 4), rng.normal(0, 0.5, 4), rng.uniform(0.5, 2, 4)]
    for layer in (ref, ours):
        layer.set_weights([w.astype(np.float32) for w in weights])
    return ref, ours


def test_training_step_matches_keras_batch_norm() -> None:
    import tensorflow as tf

    ref, ours = _pair()
    x = np.random.default_rng(1).normal(3, 2, (3, 6, 5, 4)).astype(np.float32)
    grads = []
    for layer in (ref, ours):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=True)
            loss = tf.reduce_sum(y * tf.range(1.0, 1.0 + y.shape[-1]))  # uneven weights: non-trivial grads
        grads.append(tape.gradient(loss, [xt, layer.gamma, layer.beta]))
        grads[-1].append(y)
    for a, b in zip(*grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
    # moving statistics updated the same way (biased variance, Keras' momentum)
    for a, b in zip(ref.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours.get_weights()[2], _pair()[1].get_weights()[2])  # it did move
    # and the fused kernel is what ran
    graph = tf.function(lambda t: ours(t, training=True)).get_concrete_function(tf.TensorSpec(x.shape)).graph
    assert any(op.type.startswith("FusedBatchNorm") for op in graph.get_operations())


def test_inference_and_bfloat16_policy_match() -> None:
    ref, ours = _pair()
    x = np.random.default_rng(2).normal(0, 1, (2, 6, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(ref(x, training=False), ours(x, training=False), rtol=1e-6, atol=1e-6)
    ref16, ours16 = _pair("mixed_bfloat16")
    a, b = ref16(x, training=True), ours16(x, training=True)
    assert keras.backend.standardize_dtype(b.dtype) == "bfloat16"
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), atol=0.05)


def test_models_use_it_and_it_round_trips(tmp_path) -> None:
    from scintilab.models import build_model

    model = build_model("inrac", input_shape=(64, 16, 1), num_classes=3, width=4)
    assert any(isinstance(layer, BatchNorm) for layer in model.layers)
    x = np.random.default_rng(3).random((2, 64, 16, 1), dtype=np.float32)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert type(again.get_layer("stem_bn")) is BatchNorm
    np.testing.assert_allclose(model.predict_on_batch(x), again.predict_on_batch(x), atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 6, 5, 4)])
def test_unfused_cases_fall_back_to_keras(shape) -> None:
    # 3-D input, or a mask: Keras' own code path, same result as the parent class
    layer, ref = BatchNorm(), keras.layers.BatchNormalization()
    x = np.random.default_rng(4).normal(0, 1, shape).astype(np.float32)
    np.testing.assert_allclose(layer(x, training=True), ref(x, training=True), rtol=1e-5, atol=1e-5)
