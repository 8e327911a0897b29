"""Provenance of outputs: the package versions, the manifest fingerprint, JSON-ready values.

One list of what shaped a run's numbers, used by every record a command writes
(:mod:`scintilab.outputs`, a training run's ``config.json``).
"""

from __future__ import annotations

import hashlib
import math
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from scintilab.errors import InputError


def package_versions() -> dict[str, str]:
    """Versions of what shaped a run's numbers (recorded in ``config.json``)."""
    import pandas as pd

    import scintilab

    out = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "scintilab": scintilab.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
    for mod in ("keras", "tensorflow", "jax", "torch", "sklearn", "pydicom"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    if "keras" in sys.modules:
        out["keras_backend"] = sys.modules["keras"].backend.backend()
    return out


def manifest_fingerprint(manifest: str | Path) -> str:
    """Hash of a manifest's content that matters to training (keys, labels, counts, shapes).

    Paths and the study date are left out, so copying the cohort elsewhere keeps the hash.

    Raises:
        InputError: the manifest cannot be read.
    """
    import pandas as pd

    path = Path(manifest)
    try:
        df = pd.read_csv(path, dtype=str).fillna("")
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read manifest ({exc})") from exc
    cols = [
        c
        for c in (
            "study_key",
            "patient_key",
            "label",
            "views",
            "rows",
            "cols",
            "counts_ant",
            "counts_post",
            "lesion_count",
            "status",
        )
        if c in df.columns
    ]
    if not cols:
        raise InputError(path, "not a scintilab manifest (no study_key/label columns)")
    table = df[cols].sort_values(cols).to_csv(index=False)
    return hashlib.sha256(table.encode("utf-8")).hexdigest()[:16]


def jsonable(obj: Any) -> Any:
    """NaN -> None and NumPy scalars -> Python, so json.dumps writes valid JSON."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    return obj
