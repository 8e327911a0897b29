"""Errors about input files: every message names the file and what is wrong."""
from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """A bad input file. ``str(err)`` reads ``"<path>: <problem>"``.

    Batch work catches this per item, skips the item and reports it; it never aborts.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)
