"""Keep TensorFlow's native log lines out of notebooks and the reports made from them.

TensorFlow 2.21 writes its C++ logs through absl before absl is initialised, so
``TF_CPP_MIN_LOG_LEVEL`` no longer silences them ("WARNING: All log messages before
absl::InitializeLog() ...", "I0000 ... oneDNN custom operations are on", "E0000 ...
NodeDef mentions attribute ..."). A Jupyter kernel forwards the process' file descriptor
2 into the notebook, so every executed notebook and every HTML report shared from it
carried them. :func:`filter_kernel_stderr` drops those lines from what the kernel shows;
nothing else on stderr is touched (tracebacks, warnings from our own code, progress bars).

It acts only inside an IPython kernel (``import scintilab`` calls it); a command-line run
keeps TensorFlow's stderr as it is, because there it may be the only clue to a crash.
"""

from __future__ import annotations

import re
import sys
from typing import Any

# Errors are kept unless they are known, harmless start-up notices.
_HARMLESS_ERRORS = (
    "NodeDef mentions attribute",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
)
NOISE = re.compile(
    r"^(?:WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rf"|[IW]\d{{4}} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\].*"
    rf"|E\d{{4}} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\].*(?:{'|'.join(map(re.escape, _HARMLESS_ERRORS))}).*"
    r"|WARNING:tensorflow:.*"
    # the second line of cpu_feature_guard's notice, on CPUs with instructions the wheel was not built for
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\."
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] (?:tensorflow|external)/.*)$"
)
"""One line of TensorFlow/absl log noise (info and warning lines, and harmless errors)."""


def drop_noise(text: str) -> str:
    """``text`` without its TensorFlow/absl noise lines (see :data:`NOISE`); other text unchanged."""
    if "]" not in text and "WARNING" not in text and "rebuild TensorFlow" not in text:  # the common case
        return text
    return "".join(line for line in text.splitlines(keepends=True) if not NOISE.match(line.rstrip("\r\n")))


def filter_kernel_stderr(stream: Any = None) -> bool:
    """Drop TensorFlow's log noise from what a Jupyter kernel shows.

    TensorFlow's C++ code writes to file descriptor 2, which the kernel reads and forwards
    into the notebook. A pipe is put in front of it: a daemon thread reads what is written
    to fd 2, drops the noise lines (:func:`drop_noise`) and passes the rest on to the
    kernel's descriptor unchanged. Native libraries write each log line in one call, so a
    read holds whole lines. TensorFlow's Python-side logger is set to errors only. (Wrapping
    the kernel's ``sys.stderr`` does not work: IPython's output tee keeps its own reference
    to the original ``write``.)

    Args:
        stream: the kernel's stderr stream (default ``sys.stderr``); when it is not
            ipykernel's, nothing is changed.

    Returns:
        True when the filter is (now or already) in place.
    """
    global _PUMP
    stream = sys.stderr if stream is None else stream
    if not type(stream).__module__.startswith("ipykernel"):
        return False
    if _PUMP is not None:
        return True
    import logging
    import os
    import threading

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    read_end, write_end = os.pipe()
    target = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        while chunk := os.read(read_end, 65536):
            kept = drop_noise(chunk.decode(errors="replace"))
            if kept:
                os.write(target, kept.encode())

    _PUMP = threading.Thread(target=pump, name="scintilab-stderr-filter", daemon=True)
    _PUMP.start()
    return True


_PUMP: Any = None


__all__ = ["NOISE", "drop_noise", "filter_kernel_stderr"]
