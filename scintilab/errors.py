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


#: Exit codes every ``scintilab`` command uses (README, "When things go wrong").
EXIT_OK = 0  # all good
EXIT_FAILED = 1  # nothing usable came out (every item failed), or a check asked for failed
EXIT_USAGE = 2  # a user error: a bad path, a bad option, an input that cannot be read
EXIT_PARTIAL = 3  # done, but some items were skipped or failed: the count and the file listing them are printed
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


def partial_exit(command: str, count: int, what: str, listing: str | Path | None) -> int:
    """Print the one line a partial run ends with and return its exit code.

    Args:
        command: the command's name (``"ingest"``).
        count: items skipped or failed (0: nothing printed, :data:`EXIT_OK`).
        what: what they are, plural (``"file(s) skipped"``).
        listing: the file listing them, if one was written.

    Returns:
        :data:`EXIT_PARTIAL` when ``count`` > 0, else :data:`EXIT_OK`.
    """
    if count <= 0:
        return EXIT_OK
    where = f": see {listing}" if listing is not None else ""
    print(f"scintilab {command}: {count} {what}{where} (exit code {EXIT_PARTIAL})")
    return EXIT_PARTIAL
