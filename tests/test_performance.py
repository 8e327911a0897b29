"""Speed settings, batch-norm folding, the PyTorch reference and the benchmark plumbing.

No test here times anything against a threshold (speed figures live in BENCHMARKS.md);
they check that the fast paths compute the same function as the plain ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from scintilab import performance as perf  # noqa: E402
from scintilab.models import build_model  # noqa: E402

SHAPE = (64, 16, 1)


def _perturbed(model: keras.Model, seed: int = 1) -> keras.Model:
    """Give every batch norm non-trivial statistics (fresh ones are the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.1, layer.beta.shape).astype("float32"))
    return model


# --------------------------------------------------------------------------- CPU detection and settings
def test_cpu_flags_read_from_a_cpuinfo_file(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 AVX512F avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n"
    )
    flags = perf.cpu_flags(info)
    assert flags == frozenset({"fpu", "avx2", "avx512f", "avx512_bf16"})  # first CPU, lower-cased
    assert perf.cpu_has_bf16(flags)
    assert perf.cpu_has_bf16(frozenset({"amx_bf16"}))
    assert not perf.cpu_has_bf16(frozenset({"avx2", "avx512f"}))
    assert perf.cpu_flags(tmp_path / "absent") == frozenset()


def test_precision_and_jit_resolution() -> None:
    assert perf.resolve_precision(False) == "float32"
    assert perf.resolve_precision(None) == "float32"
    assert perf.resolve_precision("mixed_float16") == "mixed_float16"
    expected_cpu = "mixed_bfloat16" if perf.cpu_has_bf16() else "float32"
    assert perf.resolve_precision(True, on_gpu=False) == expected_cpu
    assert perf.resolve_precision("auto", on_gpu=False) == expected_cpu
    assert perf.resolve_precision(True, on_gpu=True) in ("mixed_float16", "mixed_bfloat16")
    with pytest.raises(ValueError, match="mixed_precision"):
        perf.resolve_precision("int8")
    assert perf.resolve_jit_compile("auto", on_gpu=False) is False
    assert perf.resolve_jit_compile("auto", on_gpu=True) is True
    assert perf.resolve_jit_compile(True, on_gpu=False) is True
    with pytest.raises(ValueError, match="jit_compile"):
        perf.resolve_jit_compile("sometimes")
    s = perf.speed_settings(False, "auto")
    assert s.device == "cpu" and s.dtype_policy == "float32" and s.jit_compile is False
    assert set(s.to_dict()) == {"device", "backend", "dtype_policy", "jit_compile", "cpu_bf16", "cpu"}


# --------------------------------------------------------------------------- batch-norm folding
def test_fold_batchnorm_same_predictions_fewer_layers(tmp_path: Path) -> None:
    model = _perturbed(build_model("inrac", input_shape=SHAPE, num_classes=3, width=4))
    folded = perf.fold_batchnorm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    n_bn = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert sum(type(layer).__name__ == "FoldedBatchNorm" for layer in folded.layers) == n_bn
    assert all(layer.use_bias for layer in folded.layers if isinstance(layer, keras.layers.Conv2D))
    x = np.random.default_rng(0).random((4, *SHAPE), dtype=np.float32)
    p, q = np.asarray(model.predict_on_batch(x)), np.asarray(folded.predict_on_batch(x))
    np.testing.assert_allclose(q, p, atol=2e-5)
    assert np.abs(p - p.mean(axis=0)).max() > 1e-4  # the inputs do give different outputs
    # the folded model saves and reloads like any scintilab model
    folded.save(tmp_path / "folded.keras")
    again = keras.saving.load_model(tmp_path / "folded.keras")
    np.testing.assert_allclose(np.asarray(again.predict_on_batch(x)), q, atol=1e-6)


def test_fold_batchnorm_keeps_the_mixed_policy() -> None:
    model = _perturbed(build_model("inrac", input_shape=SHAPE, num_classes=3, width=4, dtype_policy="mixed_bfloat16"))
    folded = perf.fold_batchnorm(model)
    assert folded.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert folded.get_layer("predictions").compute_dtype == "float32"
    x = np.random.default_rng(0).random((4, *SHAPE), dtype=np.float32)
    diff = np.abs(np.asarray(model.predict_on_batch(x)) - np.asarray(folded.predict_on_batch(x))).max()
    assert diff < 3e-2  # bf16 rounding of the folded weights, nothing more


# --------------------------------------------------------------------------- the PyTorch reference
def test_torch_reference_is_the_same_network() -> None:
    torch = pytest.importorskip("torch")
    from scintilab.bench.torch_reference import InRAC, load_keras_weights

    model = _perturbed(build_model("inrac", input_shape=SHAPE, num_classes=3, width=8))
    net = load_keras_weights(InRAC(3, width=8, keras_padding=True), model).eval()
    x = np.random.default_rng(0).random((3, *SHAPE), dtype=np.float32)
    with torch.no_grad():
        t = torch.softmax(net(torch.from_numpy(x).permute(0, 3, 1, 2)), dim=1).numpy()
    np.testing.assert_allclose(t, np.asarray(model.predict_on_batch(x)), atol=1e-5)
    keras_params = model.count_params() - sum(
        int(np.prod(w.shape))
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for w in (layer.moving_mean, layer.moving_variance)
    )
    assert sum(p.numel() for p in net.parameters()) == keras_params


# --------------------------------------------------------------------------- training wiring
def test_train_uses_the_resolved_precision(tmp_path: Path) -> None:
    from scintilab.datasets import ImageSet
    from scintilab.presets import config_from_preset
    from scintilab.training import train

    n = 12
    rng = np.random.default_rng(0)
    ds = ImageSet(
        images=rng.random((n, 64, 16), dtype=np.float32),
        labels=np.arange(n) % 3,
        patient_keys=np.array([f"P{i // 2}" for i in range(n)]),
        study_keys=np.array([f"S{i}" for i in range(n)]),
        kinds=np.array(["ANT"] * n),
        aug=np.array(["orig"] * n),
    )
    cfg = config_from_preset(
        "quick",
        image_size=(64, 16),
        model_options={"width": 4},
        epochs=1,
        batch_size=4,
        n_boot=10,
        save_test_images=False,
        mixed_precision=True,
    )
    result = train(cfg, tmp_path / "run", dataset=ds, verbose=0)
    expected = perf.resolve_precision(True)
    assert result.info["speed"]["dtype_policy"] == expected
    assert result.model.get_layer("stem_conv").dtype_policy.name == expected
    assert result.model.get_layer("predictions").compute_dtype == "float32"
    probs = result.predictions[["p_NoMet", "p_ADMet", "p_nADMet"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- benchmark plumbing
def test_write_section_replaces_only_its_own_block(tmp_path: Path) -> None:
    from scintilab.bench.runner import write_section

    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nHand-written notes stay.\n")
    write_section(md, "a", "Section A", "first")
    write_section(md, "b", "Section B", "other")
    write_section(md, "a", "Section A", "second")
    text = md.read_text()
    assert "Hand-written notes stay." in text
    assert "second" in text and "first" not in text and "other" in text
    assert text.count("<!-- bench:a -->") == 1 and text.index("Section A") < text.index("Section B")


def test_model_speed_section_runs_every_contender_interleaved() -> None:
    pytest.importorskip("torch")
    from scintilab.bench.runner import model_speed

    lines: list[str] = []
    md, raw = model_speed(
        (64, 16),
        batch=2,
        steps=1,
        rounds=3,
        precisions=("float32",),
        torch_threads=(1,),
        onnx=False,
        before=True,
        log=lines.append,
    )
    names = [(r["name"], r["mode"]) for r in raw["results"]]
    assert ("keras", "train") in names and ("torch/1t", "infer") in names and ("keras+fold", "infer") in names
    assert ("keras-before", "train") in names and "| train | float32 |" in md.split("before img/s")[1]
    assert all(len(r["rounds"]) == 3 and r["median"] > 0 and r["fraction"] > 0 for r in raw["results"])
    # the median round is reported (not the best), with the spread beside it
    for r in raw["results"]:
        assert r["median"] == sorted(r["rounds"])[1] and (r["low"], r["high"]) == (min(r["rounds"]), max(r["rounds"]))
    # rounds alternate between contenders (A/B/A/B), they are not run back to back
    first_round = [ln for ln in lines if ln.startswith("round 1/3")]
    assert lines.index(first_round[-1]) < min(i for i, ln in enumerate(lines) if ln.startswith("round 2/3"))
    # the oneDNN kernels of a real Keras step were listed, per phase
    kernels = raw["onednn"]["float32"]["kernels"]
    assert {k["phase"] for k in kernels} == {"train", "infer"} and "oneDNN kernels that ran (float32" in md
    assert "| 64x16 | train | float32 | keras |" in md and "ratio" in md
    assert raw["ceiling_gflops"]["float32"] > 0


def test_bench_cli_writes_the_pipeline_section(tmp_path: Path) -> None:
    from scintilab.bench import cli_main

    out = tmp_path / "B.md"
    assert cli_main(["pipeline", "--size", "64x16", "--out", str(out)]) == 0
    text = out.read_text()
    from scintilab.bench.runner import machine_kind

    assert f"<!-- bench:pipeline@{machine_kind()} -->" in text and "CPU:" in text and "memmap -> batch" in text
    assert "| 64x16 | memmap -> batch -> rotate+translate | 8 |" in text


# --------------------------------------------------------------------------- ISA and kernels
def test_machine_kind_and_isa_line_follow_the_flags() -> None:
    from scintilab.bench.runner import isa_line, machine_kind

    amx = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    assert isa_line(amx) == "AVX2 yes, AVX-512 yes, AVX512_BF16 yes, AMX-BF16 yes"
    assert isa_line(frozenset({"avx2"})) == "AVX2 yes, AVX-512 no, AVX512_BF16 no, AMX-BF16 no"
    assert machine_kind(amx).endswith("-amxbf16")
    assert machine_kind(frozenset({"avx2", "avx512f", "avx512_bf16"})).endswith("-avx512bf16")
    assert machine_kind(frozenset({"avx2"})).endswith("-avx2") and machine_kind(frozenset()).endswith("-generic")


def test_parse_onednn_verbose_groups_kernels_by_phase() -> None:
    from scintilab.bench.runner import parse_onednn_verbose

    text = "\n".join(
        [
            "onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions",
            "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,src,,alg,9.0",
            "scintilab-phase:train",
            "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_amx,forward_training,src,,alg,2.5",
            "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_amx,forward_training,src,,alg,1.5",
            "onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv_bwd_w:avx512_core_amx,backward_weights,src,,alg,6.0",
            "some other line",
            "scintilab-phase:infer",
            "onednn_verbose,v1,primitive,exec,cpu,gemm_api,,undef,src,,,4x8:8x3,0.5",
            "scintilab-phase:end",
            "onednn_verbose,v1,primitive,exec,cpu,reorder,simple:any,undef,src,,,1x1,7.0",
        ]
    )
    found = parse_onednn_verbose(text)
    assert found["isa"].startswith("Intel AVX-512")
    rows = {(k["phase"], k["implementation"], k["prop_kind"]): (k["calls"], k["ms"]) for k in found["kernels"]}
    assert rows == {
        ("train", "brgconv_bwd_w:avx512_core_amx", "backward_weights"): (1, 6.0),
        ("train", "brg_conv_fwd:avx512_core_amx", "forward_training"): (2, 4.0),
        ("infer", "-", "undef"): (1, 0.5),
    }
    assert found["kernels"][0]["ms"] == 6.0  # slowest first; warm-up and after-end lines left out
