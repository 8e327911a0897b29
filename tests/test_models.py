"""Tests for scintilab.models: registry, shapes, CBAM maths, wiring, introspection, saving."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from scintilab.models import (
    CBAM,
    attention_maps_model,
    build_model,
    cbam_layers,
    cbam_param_count,
    count_params_table,
    feature_model,
    forward_macs,
    last_conv_layer_name,
    list_models,
    weight_layer_depth,
)
from scintilab.models.blocks import ra_block

SMALL = (64, 32, 1)
TINY_WIDTH = 8  # base width 8 instead of 64: same topology, ~1/64 of the weights
ALL = list_models()
RA_FAMILY = ["inrac", "outrac", "plain", "attention", "residual", "classifier18", "classifier34"]


def _run(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


def _maps(model: keras.Model, x: np.ndarray, kind: str = "spatial") -> dict[str, np.ndarray]:
    out = attention_maps_model(model, kind=kind)(x, training=False)
    return {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}


def _parent(layer: keras.layers.Layer) -> keras.layers.Layer:
    return layer.input._keras_history.operation


def _consumers(model: keras.Model, layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    out = []
    for other in model.layers:
        if isinstance(other, keras.layers.InputLayer):
            continue
        inputs = other.input if isinstance(other.input, (list, tuple)) else [other.input]
        if any(t._keras_history.operation is layer for t in inputs):
            out.append(other)
    return out


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((2, *SMALL), dtype=np.float32)


def test_registry_lists_every_model_of_the_paper():
    assert ALL == RA_FAMILY + ["vgg11", "inception_v1"]
    with pytest.raises(ValueError, match="unknown model 'resnet50'"):
        build_model("resnet50")


@pytest.mark.parametrize("name", ALL)
def test_builds_at_full_size(name):
    model = build_model(name)  # (1024, 256, 1), 3 classes: build only, no forward
    assert tuple(model.input.shape) == (None, 1024, 256, 1)
    assert tuple(model.output.shape) == (None, 3)
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    # Five stride-2 reductions in every model: 1024x256 -> 32x8.
    assert tuple(model.get_layer(last_conv_layer_name(model)).output.shape[1:3]) == (32, 8)


@pytest.mark.parametrize("num_classes", [3, 2])
@pytest.mark.parametrize("name", ALL)
def test_small_forward_gives_probabilities(name, num_classes, images):
    model = build_model(name, input_shape=SMALL, num_classes=num_classes, width=TINY_WIDTH)
    probs = _run(model, images)
    assert probs.shape == (2, num_classes)
    assert np.all(probs >= 0) and np.all(probs <= 1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-5)


def test_full_size_forward_of_a_narrow_inrac():
    model = build_model("inrac", width=4)  # full 1024x256 input, narrow channels: fast
    x = np.random.default_rng(1).random((1, 1024, 256, 1), dtype=np.float32)
    probs = _run(model, x)
    assert probs.shape == (1, 3)
    assert abs(float(probs.sum()) - 1.0) < 1e-5


def test_depth_matches_the_papers_layer_counts():
    expected = {
        "inrac": 26,
        "outrac": 26,
        "plain": 26,
        "attention": 26,
        "residual": 26,
        "classifier18": 18,
        "classifier34": 34,
        "vgg11": 11,
        "inception_v1": 22,
    }
    got = {n: weight_layer_depth(build_model(n, input_shape=SMALL, width=TINY_WIDTH)) for n in ALL}
    assert got == expected
    vgg_gap = build_model("vgg11", input_shape=SMALL, width=TINY_WIDTH, head="gap")
    assert weight_layer_depth(vgg_gap) == 9  # 8 conv + 1 dense


def test_cbam_parameter_count_by_hand():
    # C=64, r=16 -> hidden 4. Shared MLP: W1 64*4=256, b1 4, W2 4*64=256, b2 64 -> 580.
    # Spatial conv 7x7, 2 input maps, 1 output, no bias: 7*7*2 = 98.  Total 678.
    layer = CBAM(16, 7)
    layer.build((None, 16, 8, 64))
    assert layer.count_params() == 580 + 98 == 678
    assert cbam_param_count(64, 16, 7) == 678
    # C=512: hidden 32; 512*32 + 32 + 32*512 + 512 + 98 = 33410.
    assert cbam_param_count(512) == 33410


def test_residual_block_parameter_count_by_hand():
    # First block of stage 2 of inRAC: 64 -> 128 channels, stride 2, projection shortcut.
    # conv1 3*3*64*128 = 73728 (no bias), bn1 4*128 = 512 (gamma, beta, mean, var),
    # conv2 3*3*128*128 = 147456, bn2 512, proj conv 1*1*64*128 = 8192, proj bn 512.
    plain_block = 73728 + 512 + 147456 + 512 + 8192 + 512
    assert plain_block == 230912
    # CBAM(128), r=16 -> hidden 8: 128*8 + 8 + 8*128 + 128 + 7*7*2 = 2282.
    with_cbam = plain_block + 2282

    inp = keras.Input((16, 8, 64))
    m = keras.Model(inp, ra_block(inp, 128, 2, name="b", residual=True, attention=False))
    assert m.count_params() == plain_block
    inp = keras.Input((16, 8, 64))
    m = keras.Model(inp, ra_block(inp, 128, 2, name="b", residual=True, attention=True))
    assert m.count_params() == with_cbam
    # The same block inside the full-width inRAC (parameter counts do not depend on H, W).
    full = build_model("inrac", input_shape=SMALL)
    in_block = sum(layer.count_params() for layer in full.layers if layer.name.startswith("s2b1_"))
    assert in_block == with_cbam


def _numpy_cbam(x, w1, b1, w2, b2, kernel):
    """Reference of eq. 2-4 in plain NumPy (channels last)."""
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    mlp = lambda v: np.maximum(v @ w1 + b1, 0.0) @ w2 + b2  # noqa: E731
    fc = sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))[:, None, None, :]
    f1 = fc * x
    pooled = np.concatenate([f1.mean(axis=-1, keepdims=True), f1.max(axis=-1, keepdims=True)], axis=-1)
    k = kernel.shape[0]
    pad = k // 2
    padded = np.pad(pooled, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    b, h, w, _ = pooled.shape
    logits = np.zeros((b, h, w))
    for i in range(k):  # cross-correlation, as every deep-learning "conv"
        for j in range(k):
            logits += np.einsum("bhwc,c->bhw", padded[:, i : i + h, j : j + w, :], kernel[i, j, :, 0])
    fs = sigmoid(logits)[..., None]
    return fs * f1, fc, fs


@pytest.mark.parametrize("k", [3, 7])
def test_cbam_matches_numpy_reference(k):
    rng = np.random.default_rng(42)
    x = rng.normal(size=(2, 9, 6, 32)).astype(np.float32)
    layer = CBAM(reduction=4, spatial_kernel=k, return_attention=True)
    layer.build(x.shape)
    w1 = rng.normal(size=(32, 8)).astype(np.float32)
    b1 = rng.normal(size=8).astype(np.float32)
    w2 = rng.normal(size=(8, 32)).astype(np.float32) * 0.3
    b2 = rng.normal(size=32).astype(np.float32)
    kernel = rng.normal(size=(k, k, 2, 1)).astype(np.float32)
    layer.set_weights([w1, b1, w2, b2, kernel])
    out, ch, sp = (keras.ops.convert_to_numpy(t) for t in layer(x))
    ref_out, ref_ch, ref_sp = _numpy_cbam(x.astype(np.float64), w1, b1, w2, b2, kernel)
    np.testing.assert_allclose(ch, ref_ch, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sp, ref_sp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    # The spatial map must vary over the image, otherwise the test proves little.
    assert sp.std() > 0.05


def test_cbam_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        CBAM(spatial_kernel=4)


def test_inrac_and_outrac_differ_only_in_wiring(images):
    inrac = build_model("inrac", input_shape=SMALL, width=TINY_WIDTH)
    outrac = build_model("outrac", input_shape=SMALL, width=TINY_WIDTH)
    assert inrac.count_params() == outrac.count_params()
    assert sorted(layer.name for layer in inrac.layers) == sorted(layer.name for layer in outrac.layers)
    assert sorted(type(layer).__name__ for layer in inrac.layers) == sorted(
        type(layer).__name__ for layer in outrac.layers
    )
    for cbam in cbam_layers(inrac):
        block = cbam.name[: -len("_cbam")]
        assert _parent(cbam).name == f"{block}_bn2"  # inside: on the branch's BN output
        assert [type(c).__name__ for c in _consumers(inrac, cbam)] == ["Add"]
    for cbam in cbam_layers(outrac):
        block = cbam.name[: -len("_cbam")]
        relu = _parent(cbam)  # outside: on ReLU(Add)
        assert relu.name == f"{block}_out" and isinstance(relu, keras.layers.ReLU)
        assert isinstance(_parent(relu), keras.layers.Add)
    # Same weights, different wiring -> different outputs.
    for layer in inrac.layers:
        outrac.get_layer(layer.name).set_weights(layer.get_weights())
    assert not np.allclose(_run(inrac, images), _run(outrac, images), atol=1e-6)


def test_ablations_have_exactly_their_components():
    def kinds(name):
        m = build_model(name, input_shape=SMALL, width=TINY_WIDTH)
        return (len(cbam_layers(m)), sum(isinstance(layer, keras.layers.Add) for layer in m.layers))

    assert kinds("plain") == (0, 0)
    assert kinds("attention") == (12, 0)
    assert kinds("residual") == (0, 12)
    assert kinds("inrac") == (12, 12)
    assert kinds("classifier18") == (8, 8)
    assert kinds("classifier34") == (16, 16)
    # The stage-count override reaches the builder.
    assert kinds_override() == (4, 4)


def kinds_override():
    m = build_model("inrac", input_shape=SMALL, width=TINY_WIDTH, blocks=(1, 1, 1, 1))
    return (len(cbam_layers(m)), sum(isinstance(layer, keras.layers.Add) for layer in m.layers))


def test_attention_maps_model_shapes_and_range(images):
    model = build_model("inrac", input_shape=SMALL, width=TINY_WIDTH)
    maps = _maps(model, images)
    assert len(maps) == 12
    for name, amap in maps.items():
        feat = model.get_layer(name.replace("_cbam", "_bn2")).output.shape
        assert amap.shape == (2, feat[1], feat[2], 1)
        assert amap.min() >= 0.0 and amap.max() <= 1.0
    assert maps["s1b1_cbam"].shape == (2, 16, 8, 1) and maps["s4b2_cbam"].shape == (2, 2, 1, 1)
    channel = _maps(model, images, kind="channel")
    assert channel["s4b2_cbam"].shape == (2, 1, 1, 64)
    with pytest.raises(ValueError, match="no attention"):
        attention_maps_model(build_model("residual", input_shape=SMALL, width=TINY_WIDTH))


@pytest.mark.parametrize("name", ["outrac", "vgg11", "inception_v1"])
def test_feature_model_exposes_last_feature_map(name, images):
    model = build_model(name, input_shape=SMALL, width=TINY_WIDTH)
    assert last_conv_layer_name(model) == "features"
    feats, probs = feature_model(model)(images, training=False)
    assert tuple(feats.shape[:3]) == (2, 2, 1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(probs), _run(model, images), atol=1e-6)


def test_save_and_reload_keras_file(tmp_path, images):
    model = build_model("inrac", input_shape=SMALL, num_classes=2, width=TINY_WIDTH)
    path = tmp_path / "inrac.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(_run(loaded, images), _run(model, images))
    before = _maps(model, images)
    after = _maps(loaded, images)
    np.testing.assert_array_equal(after["s3b5_cbam"], before["s3b5_cbam"])


def test_mixed_precision_keeps_float32_probabilities(images):
    before = keras.config.dtype_policy().name
    model = build_model("inrac", input_shape=SMALL, width=TINY_WIDTH, dtype_policy="mixed_float16")
    assert keras.config.dtype_policy().name == before  # global policy restored
    assert model.get_layer("s1b1_conv1").compute_dtype == "float16"
    probs = model(images, training=False)
    assert keras.backend.standardize_dtype(probs.dtype) == "float32"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(probs).sum(axis=1), 1.0, atol=1e-5)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_classes"):
        build_model("inrac", input_shape=SMALL, num_classes=1)
    with pytest.raises(ValueError, match="input_shape"):
        build_model("vgg11", input_shape=(64, 32))
    with pytest.raises(TypeError, match="fixed"):
        build_model("inrac", input_shape=SMALL, residual=False)
    with pytest.raises(TypeError):
        build_model("vgg11", input_shape=SMALL, reduction=8)
    with pytest.raises(ValueError, match="head"):
        build_model("vgg11", input_shape=SMALL, head="flatten")


def test_forward_macs_by_hand():
    inp = keras.Input((8, 6, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)  # 8*6 positions * 3*3*2 * 4 = 3456
    x = keras.layers.Conv2D(5, 1, strides=2)(x)  # 4*3 positions * 4 * 5 = 240
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3)(x)  # 5 * 3 = 15
    assert forward_macs(keras.Model(inp, out)) == 3456 + 240 + 15
    # CBAM on 8x6x16, r=4 (hidden 4): MLP 2*(16*4 + 4*16) = 256; spatial 8*6*7*7*2 = 4704.
    assert CBAM(4, 7).macs((None, 8, 6, 16)) == 256 + 4704


def test_count_params_table_small():
    table = count_params_table(input_shape=SMALL, models=["inrac", "outrac", "residual"], width=TINY_WIDTH)
    assert list(table.index) == ["inrac", "outrac", "residual"]
    assert table.loc["inrac", "params"] == table.loc["outrac", "params"]
    assert table.loc["inrac", "params"] > table.loc["residual", "params"]
    assert table.loc["inrac", "depth"] == 26 and table.loc["inrac", "cbam"] == 12
    assert (table["params"] == table["trainable"] + table["non_trainable"]).all()
    assert (table["gflops"] > 0).all()
