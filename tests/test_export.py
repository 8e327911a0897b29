"""ONNX export and ONNX Runtime scoring agree with Keras; bad inputs are named."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from scintilab.errors import InputError  # noqa: E402
from scintilab.export import OnnxScorer, export_onnx, float32_twin, max_abs_difference, score_cohort  # noqa: E402
from scintilab.models import build_model  # noqa: E402

SHAPE = (64, 16, 1)


def _perturb_bn(model) -> None:
    """Non-trivial batch-norm statistics, so a wrong export of BN would show."""
    import keras

    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape).astype("float32"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    model = build_model("inrac", input_shape=SHAPE, num_classes=3, width=4)
    _perturb_bn(model)
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    return model, path


def test_onnx_runtime_matches_keras(exported) -> None:
    model, path = exported
    scorer = OnnxScorer(path)
    assert scorer.input_shape[:2] == SHAPE[:2]
    x = np.random.default_rng(0).random((5, *SHAPE), dtype=np.float32)
    keras_p = np.asarray(model.predict_on_batch(x))
    onnx_p = scorer.predict(x, batch_size=2)  # batches of 2, 2 and 1: dynamic batch size
    assert onnx_p.shape == (5, 3)
    np.testing.assert_allclose(onnx_p.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(onnx_p, keras_p, atol=1e-5)
    assert max_abs_difference(model, scorer, x) < 1e-5


def test_score_cohort_same_table_from_keras_and_onnx(exported) -> None:
    model, path = exported
    images = np.random.default_rng(2).random((7, *SHAPE[:2]), dtype=np.float32)  # (N, rows, cols)
    keys = [f"S{i:03d}" for i in range(7)]
    a = score_cohort(model, images, keys=keys, batch_size=3, chunk=4)
    b = score_cohort(OnnxScorer(path), images, keys=keys, batch_size=3, chunk=4)
    assert list(a.columns) == ["key", "p_NoMet", "p_ADMet", "p_nADMet", "pred"]
    assert list(a["key"]) == keys
    np.testing.assert_allclose(a[["p_NoMet", "p_ADMet", "p_nADMet"]], b[["p_NoMet", "p_ADMet", "p_nADMet"]], atol=1e-5)
    assert list(a["pred"]) == list(b["pred"])
    c = score_cohort(model, images, keys=keys, batch_size=3, chunk=4, fold=False)  # unfolded Keras: same table
    np.testing.assert_allclose(a[["p_NoMet", "p_ADMet", "p_nADMet"]], c[["p_NoMet", "p_ADMet", "p_nADMet"]], atol=1e-5)


def test_mixed_precision_model_exports_its_float32_twin(tmp_path: Path) -> None:
    model = build_model("inrac", input_shape=SHAPE, num_classes=3, width=4, dtype_policy="mixed_bfloat16")
    twin = float32_twin(model)
    assert twin is not model
    assert {layer.compute_dtype for layer in twin.layers} == {"float32"}
    scorer = OnnxScorer(export_onnx(model, tmp_path / "mixed.onnx"))
    x = np.random.default_rng(3).random((3, *SHAPE), dtype=np.float32)
    np.testing.assert_allclose(scorer.predict(x), np.asarray(twin.predict_on_batch(x)), atol=1e-5)
    # and the bfloat16 model itself is close, not equal (bf16 has 8 bits of mantissa)
    assert np.abs(scorer.predict(x) - np.asarray(model.predict_on_batch(x))).max() < 5e-2


def test_bad_inputs_name_the_problem(exported, tmp_path: Path) -> None:
    model, path = exported
    with pytest.raises(InputError, match="ONNX model not found"):
        OnnxScorer(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx file")
    with pytest.raises(InputError, match="junk.onnx: not a loadable ONNX model"):
        OnnxScorer(junk)
    with pytest.raises(InputError, match="32x16 but the model takes 64x16"):
        score_cohort(OnnxScorer(path), np.zeros((2, 32, 16), np.float32))
