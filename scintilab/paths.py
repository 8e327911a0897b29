"""Where things live: the repo root, the default data directory, run folders."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the cohort folder the notebooks use by default.
DATA_ENV = "SCINTILAB_DATA"
DEFAULT_DATA = "data/synthetic_small"


def repo_root() -> Path:
    """The project root (the folder holding pyproject.toml), found from this file."""
    here = Path(__file__).resolve().parent
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").exists():
            return candidate
    return Path.cwd()


def repo_path(path: str | os.PathLike[str]) -> Path:
    """Resolve ``path``: absolute paths unchanged, relative ones against the repo root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


def default_data_dir() -> Path:
    """``$SCINTILAB_DATA`` if set, else ``data/synthetic_small`` under the repo root."""
    return repo_path(os.environ.get(DATA_ENV) or DEFAULT_DATA)
