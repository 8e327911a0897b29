"""TensorFlow's native log noise is dropped from what a notebook kernel shows, nothing else (issue 26)."""

from __future__ import annotations

import io

from scintilab.kernel_logs import drop_noise, filter_kernel_stderr

NOISE = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796426326.378034   10414 port.cc:153] oneDNN custom operations are on. You may see slightly different
E0000 00:00:1796425396.1   4738 meta_optimizer.cc:966] layout failed: NodeDef mentions attribute use_unbounded_threadpool
W1204 23:18:46.123456   10414 generator_dataset_op.cc:213] Memory patch applied
WARNING:tensorflow:5 out of the last 5 calls to <function f> triggered tf.function retracing.
2026-12-04 23:18:46.123456: I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow binary is optimized
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
"""
KEPT = """E0000 00:00:1796426326.378034   10414 op_kernel.cc:1840] OP_REQUIRES failed: out of memory
Traceback (most recent call last):
  File "x.py", line 1, in <module>
ValueError: the manifest names no study
/work/scintilab/quantify.py:12: UserWarning: 3 studies skipped
Epoch 1/3 [=====>    ]\r
To enable the plots, set show=True.
"""


def test_noise_lines_go_and_everything_else_stays() -> None:
    mixed = "".join(a + b for a, b in zip(NOISE.splitlines(keepends=True), KEPT.splitlines(keepends=True)))
    assert drop_noise(mixed) == KEPT
    assert drop_noise(NOISE) == ""
    assert drop_noise(KEPT) == KEPT


def test_only_a_kernel_stream_is_wrapped() -> None:
    plain = io.StringIO()
    assert filter_kernel_stderr(plain) is False
    plain.write(NOISE)
    assert plain.getvalue() == NOISE  # a terminal keeps TensorFlow's lines: they may explain a crash


def _run_notebook(tmp_path, source: str) -> list[str]:
    """Execute a one-cell notebook with papermill; the text of its stderr outputs."""
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    cells = nbformat.read(out, as_version=4).cells
    return ["".join(o.get("text", "")) for o in cells[0].get("outputs", []) if o.get("name") == "stderr"]


def test_a_kernel_that_imported_scintilab_shows_no_tensorflow_noise(tmp_path, monkeypatch) -> None:
    import nbformat

    from notebook_support import tf_log_lines  # the same check the notebook runs use

    # ipykernel forwards fd 2 into the notebook only outside pytest, as in a user's kernel
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    # every log level, so TensorFlow speaks on any CPU (with level 2 an AVX2 machine prints nothing)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    body = (
        "import os, sys, time\nimport tensorflow as tf\nprint(float(tf.reduce_sum(tf.ones([3]))))\n"
        "print('kept', file=sys.stderr)\nos.write(2, b'native error kept\\n')\ntime.sleep(1)\n"
    )
    # without scintilab the kernel shows TensorFlow's lines: the check has something to catch
    bare = _run_notebook(tmp_path, body)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(body, outputs=[nbformat.v4.new_output("stream", name="stderr", text="".join(bare))])
    ]
    assert tf_log_lines(nb), "TensorFlow printed nothing: this test no longer proves the filter"
    quiet = _run_notebook(tmp_path, "import scintilab\n" + body)
    assert sorted("".join(quiet).split()) == sorted("kept native error kept".split())
