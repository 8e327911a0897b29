"""One output policy for every command: refuse, lock, write atomically, record.

Every ``scintilab`` command that writes goes through :class:`OutputFolder` (a folder of
outputs: quantify, audit, datasets, ...) or :class:`OutputFile` (one file: ingest's
manifest, the lesion table). The rules, documented in the README ("When things go wrong"):

* ``--out`` naming a file where a folder is expected (or the reverse), or a place that
  cannot be written, is an :class:`~scintilab.errors.InputError`: one sentence naming the
  path and the problem.
* A folder (or file) already holding an earlier run's outputs is refused unless
  ``overwrite``; with it, only what the command owns is cleared first, so a rerun never
  leaves reports of studies that are gone.
* Each table and report is written to a temporary name and renamed into place
  (:func:`atomic_write`), so an interruption never leaves a half-written file that looks whole.
* A small lock file is held while the command runs: a second run into the same place is
  refused with a sentence.
* A record (:data:`RECORD_FILE` in a folder, ``<file>.record.json`` beside a file) names the
  command, the package versions, the inputs' fingerprints and a hash of each output, which
  ties side files (ingest's ``skipped.csv``) to the output they belong with.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from scintilab.errors import InputError
from scintilab.provenance import manifest_fingerprint, package_versions

#: The record of the run that wrote a folder.
RECORD_FILE = "scintilab_run.json"
#: Held while a command writes into a folder (or beside a file).
LOCK_SUFFIX = ".scintilab.lock"


def file_sha(path: str | Path) -> str:
    """First 16 hex characters of the SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def input_fingerprint(path: str | Path) -> str:
    """A fingerprint of one input: a manifest by its content, a folder by its file list.

    Manifests use :func:`scintilab.provenance.manifest_fingerprint` (the one training records),
    other files their bytes, folders their relative file names and sizes (cheap: the
    pixels are not read twice).
    """
    p = Path(path)
    try:
        if p.is_dir():
            h = hashlib.sha256()
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames.sort()
                for name in sorted(filenames):
                    f = Path(dirpath) / name
                    try:
                        size = f.stat().st_size
                    except OSError:
                        size = -1
                    h.update(f"{os.fsencode(f.relative_to(p))!r}|{size}\n".encode())
            return "dir:" + h.hexdigest()[:16]
        if p.suffix.lower() == ".csv":
            with contextlib.suppress(InputError):
                return "manifest:" + manifest_fingerprint(p)
        return "file:" + file_sha(p)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc.__class__.__name__})"


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it into place.

    Args:
        path: the final file.
        write: writes the whole file to the path it is given (e.g. ``df.to_csv``).

    Returns:
        ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def write_csv(df: Any, path: str | Path, **kwargs: Any) -> Path:
    """``df.to_csv(path, index=False)``, atomically."""
    kwargs.setdefault("index", False)
    return atomic_write(path, lambda tmp: df.to_csv(tmp, **kwargs))


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file (UTF-8), atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _check_writable_dir(folder: Path, what: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, f"is a file, not a folder: {what}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise InputError(folder, f"a file stands where a folder is needed ({what})") from exc
    except OSError as exc:
        raise InputError(folder, f"cannot create the folder ({exc.strerror or exc}): {what}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(folder, f"folder is not writable: {what}")


class RunLock:
    """An exclusive lock file (created with O_EXCL; removed on release)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False

    def _stale(self) -> bool:
        """The lock names a process of this machine that no longer runs (killed, crashed)."""
        try:
            words = self.path.read_text(encoding="utf-8").split()
            pid = int(words[1]) if len(words) > 1 and words[0] == "pid" else 0
        except (OSError, ValueError):
            return False
        if pid <= 0 or pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # it exists, owned by someone else
            return False
        return False

    def acquire(self) -> None:
        if self.path.exists() and self._stale():  # a run that died without releasing it
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError as exc:
            try:
                holder = self.path.read_text(encoding="utf-8").strip()
            except OSError:
                holder = ""
            raise InputError(
                self.path.parent,
                "another scintilab run is writing here "
                f"({holder or 'lock file ' + self.path.name}); wait for it to finish, "
                f"or delete {self.path.name} if that run is gone",
            ) from exc
        except OSError as exc:
            raise InputError(self.path.parent, f"cannot write here ({exc.strerror or exc})") from exc
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"pid {os.getpid()} since {_dt.datetime.now().isoformat(timespec='seconds')}\n")
        self.held = True

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.held = False


def _record(command: str, inputs: dict[str, Any], argv: list[str] | None) -> dict[str, Any]:
    return {
        "command": command,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "versions": package_versions(),
        "inputs": {
            k: (None if v is None else {"path": str(v), "fingerprint": input_fingerprint(v)}) for k, v in inputs.items()
        },
        "status": "running",
    }


def read_record(path: str | Path) -> dict[str, Any] | None:
    """A folder's :data:`RECORD_FILE` (or a file record), or None when absent or unreadable."""
    p = Path(path)
    p = p / RECORD_FILE if p.is_dir() else p
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class OutputFolder:
    """A command's output folder, used as a context manager.

    Args:
        path: the folder (created when missing).
        command: the command's name (``"quantify"``), written into the record.
        owned: file names and glob patterns (relative to the folder) the command writes;
            these are what ``overwrite`` clears, and their presence means "an earlier run".
        overwrite: replace an earlier run's outputs (else refuse them).
        inputs: ``{name: path}`` of the inputs, fingerprinted into the record.
        argv: the command line recorded (default ``sys.argv[1:]``).

    Raises:
        InputError: on entering: the path is a file or unwritable, another run holds the
            lock, or the folder holds an earlier run's outputs and ``overwrite`` is False.
    """

    def __init__(
        self,
        path: str | Path,
        command: str,
        owned: Iterable[str],
        *,
        overwrite: bool = False,
        inputs: dict[str, Any] | None = None,
        argv: list[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.command = command
        self.owned = list(owned)
        self.overwrite = overwrite
        self.inputs = dict(inputs or {})
        self.argv = argv
        self.record: dict[str, Any] = {}
        self._lock = RunLock(self.path / ("." + command + LOCK_SUFFIX))

    def existing(self) -> list[Path]:
        """Earlier outputs of this command in the folder (files and folders it owns)."""
        found: set[Path] = set()
        for pattern in [*self.owned, RECORD_FILE]:
            found.update(self.path.glob(pattern))
        return sorted(found)

    def __enter__(self) -> OutputFolder:
        _check_writable_dir(self.path, f"--out of scintilab {self.command} must be a folder")
        self._lock.acquire()
        try:
            old = self.existing()
            if old and not self.overwrite:
                names = ", ".join(p.name for p in old[:4]) + (" ..." if len(old) > 4 else "")
                raise InputError(
                    self.path,
                    f"already holds outputs of an earlier run ({names}); "
                    "pass --overwrite to replace them, or choose another --out folder",
                )
            for p in old:  # only what this command owns: the user's other files stay
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            self.record = _record(self.command, self.inputs, self.argv)
            write_text(self.path / RECORD_FILE, json.dumps(self.record, indent=1))
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            status = "complete" if exc_type is None else ("interrupted" if exc_type is KeyboardInterrupt else "failed")
            outputs = {
                p.relative_to(self.path).as_posix(): file_sha(p)
                for p in self.existing()
                if p.is_file() and p.name != RECORD_FILE
            }
            _close_record(self.record, status, outputs, self.path / RECORD_FILE)
        finally:
            self._lock.release()


def _close_record(record: dict[str, Any], status: str, outputs: dict[str, str], where: Path) -> None:
    """Finish a run record (status, end time, output hashes) and write it; a failed write is not fatal."""
    record["status"] = status
    record["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    record["outputs"] = outputs
    with contextlib.suppress(OSError):
        write_text(where, json.dumps(record, indent=1))


def file_record_path(path: str | Path) -> Path:
    """The record beside a single-file output: ``<name>.record.json``."""
    p = Path(path)
    return p.with_name(p.name + ".record.json")


class OutputFile:
    """A command's single output file (with side files), used as a context manager.

    Args:
        path: the file to write.
        command: the command's name, written into the record.
        overwrite: replace an existing file (else refuse it).
        side: names of side files written beside it (e.g. ``skipped.csv``); recorded with
            their hashes, so a reader can tell whether a side file belongs to this output.
        inputs / argv: as for :class:`OutputFolder`.

    Raises:
        InputError: on entering: the path is a folder, its folder cannot be written, another
            run holds the lock, or the file exists and ``overwrite`` is False.
    """

    def __init__(
        self,
        path: str | Path,
        command: str,
        *,
        overwrite: bool = False,
        side: Iterable[str] = (),
        inputs: dict[str, Any] | None = None,
        argv: list[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.command = command
        self.overwrite = overwrite
        self.side = list(side)
        self.inputs = dict(inputs or {})
        self.argv = argv
        self.record: dict[str, Any] = {}
        self._lock = RunLock(self.path.with_name("." + self.path.name + LOCK_SUFFIX))

    def __enter__(self) -> OutputFile:
        if self.path.is_dir():
            raise InputError(self.path, f"is a folder; --out of scintilab {self.command} names a file to write")
        _check_writable_dir(self.path.parent, f"folder of {self.path.name}")
        self._lock.acquire()
        try:
            if self.path.exists() and not self.overwrite:
                raise InputError(self.path, "already exists; pass --overwrite to replace it, or choose another --out")
            self.record = _record(self.command, self.inputs, self.argv)
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and self.path.is_file():
                outs = [self.path] + [self.path.parent / s for s in self.side]
                _close_record(
                    self.record,
                    "complete",
                    {p.name: file_sha(p) for p in outs if p.is_file()},
                    file_record_path(self.path),
                )
        finally:
            self._lock.release()


def side_file_belongs(output: str | Path, side: str | Path) -> bool | None:
    """Whether ``side`` (e.g. ``skipped.csv``) was written with ``output`` (e.g. a manifest).

    Returns:
        True when ``output``'s record lists both files with their current hashes; False when
        a record exists and they do not match (the side file is another run's); None when
        ``output`` has no record (written by an older version, or by hand).
    """
    out, side = Path(output), Path(side)
    rec = read_record(file_record_path(out))
    if rec is None:
        return None
    listed = rec.get("outputs") or {}
    try:
        return listed.get(out.name) == file_sha(out) and listed.get(side.name) == file_sha(side)
    except OSError:
        return False


__all__ = [
    "LOCK_SUFFIX",
    "RECORD_FILE",
    "OutputFile",
    "OutputFolder",
    "RunLock",
    "atomic_write",
    "file_record_path",
    "file_sha",
    "input_fingerprint",
    "read_record",
    "side_file_belongs",
    "write_csv",
    "write_text",
]
