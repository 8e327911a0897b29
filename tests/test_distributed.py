"""Data-parallel training on one machine, and Dask dispatch of papermill batch grids.

The device layout of TensorFlow and JAX is fixed when the framework starts, so the
two-device cases run in a fresh Python process: TensorFlow with the CPU split into two
logical devices, JAX with two host devices (``--xla_force_host_platform_device_count``).
The Dask case starts a real two-worker LocalCluster and runs two real notebooks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PY = sys.executable


def run_child(code: str, env: dict[str, str] | None = None, timeout: int = 240) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last, returned here."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    out = subprocess.run(
        [PY, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=full_env
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_mirrored_strategy_on_two_logical_cpus_trains_a_run(tmp_path: Path) -> None:
    res = run_child(f"""
        import json
        import numpy as np
        from scintilab.distributed import split_cpu, distribution_scope, replicas, tf_strategy
        devices = split_cpu(2)
        from scintilab.datasets import ImageSet
        from scintilab.presets import config_from_preset
        from scintilab.training import train
        rng = np.random.default_rng(0)
        n = 16
        labels = np.arange(n) % 3
        images = rng.random((n, 64, 16), dtype=np.float32)
        images[labels == 1, 20:30, 4:12] += 2.0  # something learnable
        keys = np.array([f"P{{i // 2}}" for i in range(n)])
        ds = ImageSet(images=images, labels=labels, patient_keys=keys, study_keys=np.array([f"S{{i}}" for i in range(n)]),
                      kinds=np.array(["ANT"] * n), aug=np.array(["orig"] * n))
        cfg = config_from_preset("quick", image_size=(64, 16), model_options={{"width": 4, "blocks": [1, 1, 1, 1]}}, epochs=2, batch_size=4,
                                 n_boot=10, save_test_images=False)
        result = train(cfg, {str(tmp_path / "run")!r}, dataset=ds, verbose=0, distribution="mirrored")
        model = result.model
        strategy = tf_strategy("mirrored")
        var = model.trainable_variables[0]
        print(json.dumps({{
            "devices": len(devices),
            "replicas": replicas("mirrored"),
            "model_strategy_replicas": int(model.distribute_strategy.num_replicas_in_sync),
            "mirrored_var": type(getattr(var, "value", var)).__name__,
            "speed": result.info["speed"],
            "epochs": len(result.history),
            "losses": [float(v) for v in result.history["loss"]],
            "n_pred": len(result.predictions),
        }}))
    """)
    assert res["devices"] == 2 and res["replicas"] == 2
    assert res["model_strategy_replicas"] == 2
    assert "Mirrored" in res["mirrored_var"]  # weights live on both replicas
    assert res["speed"]["distribution"] == "mirrored"
    assert res["epochs"] == 2 and all(v == v and v < 10 for v in res["losses"])  # finite
    assert res["n_pred"] > 0
    assert (tmp_path / "run" / "model.keras").exists()


def test_keras_distribution_api_on_two_jax_cpu_devices() -> None:
    pytest.importorskip("jax")
    res = run_child(
        """
        import json
        import numpy as np
        import keras
        from scintilab.distributed import distribution_scope, replicas
        from scintilab.models import build_model
        with distribution_scope("mirrored") as dist:
            model = build_model("inrac", input_shape=(64, 16, 1), num_classes=3, width=4, blocks=(1, 1, 1, 1))
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            x = np.random.default_rng(0).random((8, 64, 16, 1), dtype=np.float32)
            y = np.arange(8) % 3
            before = model.get_layer("logits").kernel.numpy().copy()
            hist = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
            kernel = model.get_layer("logits").kernel
            devices_of_weight = len(kernel.value.sharding.device_set)
        print(json.dumps({
            "backend": keras.backend.backend(),
            "kind": type(dist).__name__,
            "mesh_devices": int(np.prod(dist.device_mesh.shape)),
            "weight_devices": devices_of_weight,
            "changed": bool(np.abs(kernel.numpy() - before).max() > 0),
            "loss": float(hist.history["loss"][-1]),
            "after": keras.distribution.distribution() is None,
        }))
    """,
        env={"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"},
    )
    assert res["backend"] == "jax" and res["kind"] == "DataParallel"
    assert res["mesh_devices"] == 2 and res["weight_devices"] == 2  # replicated on both devices
    assert res["changed"] and res["loss"] == res["loss"]
    assert res["after"]  # the scope restores "no distribution"


def test_unknown_distribution_name_is_refused() -> None:
    from scintilab.distributed import distribution_scope

    with pytest.raises(ValueError, match="distribution must be one of"):
        with distribution_scope("ring-allreduce"):
            pass


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("x: int = 1  # a number\nfail: bool = False  # raise on purpose")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Dask test notebook"),
        params,
        nbformat.v4.new_code_cell(
            'import os\nfrom pathlib import Path\nPath("pid.txt").write_text(str(os.getppid()))\nprint("value", x * 10)'
        ),
        nbformat.v4.new_code_cell('if fail:\n    raise RuntimeError("planned failure")'),
        nbformat.v4.new_code_cell('print("after the failure point")'),
    ]
    nbformat.write(nb, path)
    return path


def test_dask_local_cluster_runs_a_grid_and_keeps_the_failed_run(tmp_path: Path) -> None:
    from scintilab import batch
    from scintilab.dask_executor import DaskExecutor

    nb = _notebook(tmp_path / "tiny.ipynb")
    doc = {
        "runs": [
            {"name": "good", "notebook": str(nb), "parameters": {"x": 4}},
            {"name": "bad", "notebook": str(nb), "parameters": {"fail": True}},
            {"name": "after-bad", "notebook": str(nb), "depends_on": ["bad"]},
        ]
    }
    out = tmp_path / "out"
    specs = batch.expand_specs(doc, out_root=out)
    with DaskExecutor(n_workers=2) as ex:
        assert ex.n_workers == 2
        result = batch.run_batch(specs, out, executor=ex, render=False, write_index=False, log=None)
    status = {o.name: o.status for o in result.outcomes}
    assert status == {"good": "ok", "bad": "failed", "after-bad": "skipped"}
    good = json.loads((out / "good" / "status.json").read_text())
    bad = json.loads((out / "bad" / "status.json").read_text())
    assert good["status"] == "ok" and bad["status"] == "failed"
    assert "planned failure" in bad["error"]["evalue"]
    # the failed run's partial notebook is kept, with the output before the failure
    executed = nbformat.read(out / "bad" / "tiny.ipynb", as_version=4)
    texts = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "value 10" in texts and "after the failure point" not in texts
    assert "value 40" in (out / "good" / "tiny.ipynb").read_text()
    # the runs executed in the Dask worker processes, not in this one
    assert int((out / "good" / "pid.txt").read_text()) != os.getpid()
