"""The validation protocol: which synthetic seeds may tune, train, report or feed the tests.

``validation/cohorts.yaml`` registers every seed of the project's own generator that
tuned a constant, trained weights, reported a figure or backs a test, with its variety
(``narrow``, ``clinic``). A figure measured on a seed that tuned or trained something is a
tuning figure, not a result; a seed that reported may never tune or train. The benchmark
scripts call :func:`require` before any work, so a run that would fool itself stops
with one sentence naming the seed, its registered purpose and the file.

* tuning or training on a reporting seed, or on a seed the file does not register for
  tuning or training: refused. Tuning and training seeds are development seeds and may
  serve each other, since either makes the figures on it non-results;
* reporting on a seed the file does not register: refused (register it first);
* reporting on a development seed: refused unless ``allow_tuning_figure=True``, and then the
  record says ``"tuning figure"``.

``benchmarks/cohorts.md`` is generated from the file (``python -m scintilab.protocol``).
This module reads YAML and nothing of the package, so benchmarks and the validation code
of every layer can read it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: The repository root (the protocol governs this repository's benchmarks).
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Where the protocol lives, relative to the repository root.
PROTOCOL_FILE = "validation/cohorts.yaml"
#: The generated human-readable table.
COHORTS_MD = "benchmarks/cohorts.md"
#: What a seed may be registered for.
PURPOSES = ("tuning", "training", "reporting", "tests")
#: Purposes whose figures are not results.
DEVELOPMENT = frozenset({"tuning", "training"})
#: The purpose a record carries when a development seed was reported on by request.
TUNING_FIGURE = "tuning figure"
#: The variety of every cohort written before issue 23.
DEFAULT_VARIETY = "narrow"

_FIELDS = ("name", "purpose", "variety", "seeds", "patients", "visits", "matrix", "what", "script")


class ProtocolError(ValueError):
    """A seed used against the protocol, or a protocol file that does not hold together."""


@dataclass(frozen=True)
class Cohort:
    """One registered group of seeds: same purpose, variety, size and matrix."""

    name: str
    purpose: str
    variety: str
    seeds: tuple[int, ...]
    patients: str
    visits: str
    matrix: str
    what: str
    script: str
    reserved: bool = False


@dataclass(frozen=True)
class Protocol:
    """The parsed protocol file."""

    path: Path
    cohorts: tuple[Cohort, ...]
    varieties: dict[str, dict[str, Any]]
    purposes: dict[str, str]

    @property
    def file(self) -> str:
        """The file as the messages name it: relative to the repository when inside it."""
        return display_path(self.path)

    def entries(self, seed: int, variety: str = DEFAULT_VARIETY) -> list[Cohort]:
        """The registered cohorts holding ``seed`` of ``variety``."""
        return [c for c in self.cohorts if c.variety == variety and int(seed) in c.seeds]

    def purposes_of(self, seed: int, variety: str = DEFAULT_VARIETY) -> frozenset[str]:
        """Every purpose ``seed`` of ``variety`` is registered for (empty when it is not)."""
        return frozenset(c.purpose for c in self.entries(seed, variety))

    def seeds(self, purpose: str | None = None, variety: str | None = None) -> set[int]:
        """The seeds registered for ``purpose`` (any when None) of ``variety`` (any when None)."""
        return {
            s
            for c in self.cohorts
            if (purpose is None or c.purpose == purpose) and (variety is None or c.variety == variety)
            for s in c.seeds
        }


def display_path(path: str | Path) -> str:
    """``path`` relative to the repository root when it lies inside it (as messages name it)."""
    p = Path(path).resolve()
    try:
        return p.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(p)


def parse_seeds(items: Iterable[int | str], where: str = "") -> tuple[int, ...]:
    """Seeds written as integers or ``"a-b"`` ranges (both ends included), in order.

    Raises:
        ProtocolError: an item that is neither.
    """
    out: list[int] = []
    for item in items:
        if isinstance(item, bool):
            raise ProtocolError(f"{where}: seed {item!r} is not an integer")
        if isinstance(item, int):
            out.append(item)
            continue
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", str(item))
        if not m or int(m.group(1)) > int(m.group(2)):
            raise ProtocolError(f"{where}: {item!r} is not a seed or a range a-b")
        out.extend(range(int(m.group(1)), int(m.group(2)) + 1))
    return tuple(out)


def format_seeds(seeds: Sequence[int]) -> str:
    """``1, 3, 20-59``: runs of three or more consecutive seeds as ranges."""
    ordered = sorted(set(seeds))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{ordered[i]}-{ordered[j]}")
        else:
            parts.extend(str(s) for s in ordered[i : j + 1])
        i = j + 1
    return ", ".join(parts)


def conflicts(protocol: Protocol) -> list[str]:
    """Seeds registered both for reporting and for tuning or training, one sentence each.

    Checked across varieties too: a clinic cohort and a narrow cohort of one seed draw their
    patients from the same random streams, so they may share draws.
    """
    reporting = protocol.seeds("reporting")
    out = []
    for c in protocol.cohorts:
        if c.purpose in DEVELOPMENT:
            for s in sorted(reporting.intersection(c.seeds)):
                out.append(f"seed {s} is registered for {c.purpose} ({c.name}) and for reporting")
    return out


def load_protocol(path: str | Path | None = None) -> Protocol:
    """Read and check the protocol (default: ``validation/cohorts.yaml`` of this repository).

    Raises:
        ProtocolError: the file is missing or malformed, or registers a seed both for
            reporting and for tuning or training.
    """
    p = Path(path) if path is not None else REPO_ROOT / PROTOCOL_FILE
    shown = display_path(p)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProtocolError(f"no validation protocol at {shown}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ProtocolError(f"{shown} is not a readable protocol ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cohorts"), list):
        raise ProtocolError(f"{shown} holds no list of cohorts")
    varieties = doc.get("varieties") or {}
    cohorts = []
    for i, entry in enumerate(doc["cohorts"]):
        where = f"{shown}, cohort {i + 1}"
        if not isinstance(entry, dict) or any(k not in entry for k in _FIELDS):
            raise ProtocolError(f"{where}: each cohort has the fields {', '.join(_FIELDS)}")
        where = f"{shown}, cohort {entry['name']!r}"
        if entry["purpose"] not in PURPOSES:
            raise ProtocolError(f"{where}: purpose {entry['purpose']!r} is not one of {', '.join(PURPOSES)}")
        if entry["variety"] not in varieties:
            raise ProtocolError(f"{where}: variety {entry['variety']!r} is not described under varieties")
        if not isinstance(entry["seeds"], list) or not entry["seeds"]:
            raise ProtocolError(f"{where}: seeds is a list of integers or ranges a-b")
        cohorts.append(
            Cohort(
                name=str(entry["name"]),
                purpose=entry["purpose"],
                variety=entry["variety"],
                seeds=parse_seeds(entry["seeds"], where),
                patients=str(entry["patients"]),
                visits=str(entry["visits"]),
                matrix=str(entry["matrix"]),
                what=" ".join(str(entry["what"]).split()),
                script=str(entry["script"]),
                reserved=bool(entry.get("reserved", False)),
            )
        )
    protocol = Protocol(path=p, cohorts=tuple(cohorts), varieties=dict(varieties), purposes=doc.get("purposes") or {})
    bad = conflicts(protocol)
    if bad:
        raise ProtocolError(f"{shown} does not hold together: {'; '.join(bad)}")
    return protocol


def cohort_seed(folder: str | Path, default: int | None = None) -> tuple[int | None, str]:
    """(seed, variety) of the generator's cohort in ``folder``, as its ``cohort.json`` records them.

    A folder the generator has not written yet (no ``cohort.json``) will be written with
    ``default``; a ``cohort.json`` without a variety predates the varieties (narrow).

    Raises:
        ProtocolError: ``cohort.json`` is unreadable or records no seed.
    """
    meta_path = Path(folder) / "cohort.json"
    if not meta_path.exists():
        return default, DEFAULT_VARIETY
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return int(meta["seed"]), str(meta.get("variety", DEFAULT_VARIETY))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"{meta_path} records no generator seed ({exc})") from None


def _protocol(protocol: Protocol | str | Path | None) -> Protocol:
    return protocol if isinstance(protocol, Protocol) else load_protocol(protocol)


def purpose_of(seed: int, variety: str = DEFAULT_VARIETY, protocol: Protocol | str | Path | None = None) -> str | None:
    """The purpose ``seed`` of ``variety`` is registered for, or None.

    A seed registered for several purposes (seed 1 tuned the rules and trained the learned
    hot-spot model) gives the first of reporting, tuning, training, tests.
    """
    found = _protocol(protocol).purposes_of(seed, variety)
    return next((p for p in ("reporting", "tuning", "training", "tests") if p in found), None)


def require(
    seed: int,
    purpose: str,
    variety: str = DEFAULT_VARIETY,
    what: str = "",
    *,
    allow_tuning_figure: bool = False,
    protocol: Protocol | str | Path | None = None,
) -> dict[str, Any]:
    """Check that ``seed`` of ``variety`` may be used for ``purpose``; the record of that use.

    Args:
        seed: the generator's cohort seed.
        purpose: ``tuning``, ``training``, ``reporting`` or ``tests``.
        variety: the generator's variety of the cohort.
        what: what the seed is used for, named in the message.
        allow_tuning_figure: report on a tuning or training seed anyway; the record's purpose
            is then ``"tuning figure"``.
        protocol: a loaded protocol or its path (default: ``validation/cohorts.yaml``).

    Returns:
        ``{"seed", "variety", "purpose", "file", "registered_as"}``, JSON-ready, for the
        output of the run; ``purpose`` is ``"tuning figure"`` for a development seed
        reported on by request.

    Raises:
        ProtocolError: the use is against the protocol (one sentence naming the seed, its
            registered purpose and the file), or ``purpose`` is unknown.
    """
    if purpose not in PURPOSES:
        raise ProtocolError(f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    proto = _protocol(protocol)
    seed = int(seed)
    found = proto.purposes_of(seed, variety)
    names = [p for p in PURPOSES if p in found]
    registered = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    use = f"{purpose} ({what})" if what else purpose
    head = f"seed {seed} ({variety})"
    record = {
        "seed": seed,
        "variety": variety,
        "purpose": purpose,
        "file": proto.file,
        "registered_as": names,
    }
    if purpose in DEVELOPMENT:
        if "reporting" in found:
            raise ProtocolError(
                f"{head} is registered for reporting in {proto.file}, so it may not be used for {use}: "
                "pick a tuning or training seed registered there"
            )
        if not found & DEVELOPMENT:
            state = f"registered only for {registered} in" if found else "not registered in"
            raise ProtocolError(
                f"{head} is {state} {proto.file}, so it may not be used for {use}: register it there "
                "as a tuning or training seed first"
            )
        return record
    if purpose == "reporting":
        if "reporting" in found:
            return record
        if found & DEVELOPMENT:
            if allow_tuning_figure:
                return {**record, "purpose": TUNING_FIGURE}
            raise ProtocolError(
                f"{head} is registered for {registered} in {proto.file}, so a figure on it{f' ({what})' if what else ''} is "
                "a tuning figure, not a result: report on a reporting seed, or ask for a tuning figure "
                "(allow_tuning_figure, a script's --tuning-figure)"
            )
        state = f"registered only for {registered} in" if found else "not registered in"
        raise ProtocolError(
            f"{head} is {state} {proto.file}, so it may not be used for {use}: add it there as a reporting seed first"
        )
    if "tests" not in found:
        state = f"registered for {registered}, not tests, in" if found else "not registered in"
        raise ProtocolError(f"{head} is {state} {proto.file}: add it there as a tests seed first")
    return record


def require_cohort(
    folder: str | Path,
    seed: int | None,
    purpose: str,
    variety: str = DEFAULT_VARIETY,
    what: str = "",
    *,
    allow_tuning_figure: bool = False,
    protocol: Protocol | str | Path | None = None,
) -> tuple[dict[str, Any], str]:
    """:func:`require` for a cohort folder: its own seed and variety when the generator
    wrote it (``cohort.json``), else ``seed`` and ``variety``, which it will be written with.

    Returns:
        ``(record, variety)``: :func:`require`'s record and the cohort's variety.

    Raises:
        ProtocolError: as :func:`require`, or an unreadable ``cohort.json``.
    """
    found, recorded = cohort_seed(folder, seed)
    if not (Path(folder) / "cohort.json").exists():
        recorded = variety
    if found is None:
        raise ProtocolError(f"{display_path(folder)}: no cohort.json and no seed to write one with")
    record = require(found, purpose, recorded, what, allow_tuning_figure=allow_tuning_figure, protocol=protocol)
    return record, recorded


def render_markdown(protocol: Protocol | None = None) -> str:
    """``benchmarks/cohorts.md``: the protocol as a table, generated, never edited by hand."""
    proto = protocol or load_protocol()
    lines = [
        "# Which synthetic cohorts tuned what, and which may report",
        "",
        f"Generated from [`{PROTOCOL_FILE}`](../{PROTOCOL_FILE}) by `python -m scintilab.protocol`:",
        "edit the YAML, then regenerate this file (`tests/test_protocol.py` checks that they agree).",
        "",
        "A figure measured on a cohort that tuned a constant, chose a threshold or trained weights is",
        "a tuning figure, not a result. Every script that tunes, trains or reports checks its seeds",
        "against the protocol before any work (`scintilab.protocol.require`); a new figure takes a",
        "seed registered there for reporting, which no tuning or training ever used.",
        "",
        "All of these come from the project's own generator (`scintilab.synth`). A held-out seed of",
        "the same generator shows that nothing was fitted to one draw; it does not show that the",
        "method works on anatomy drawn by someone else (issue 23: an outside cohort found 38 % of",
        "the lesions the README's own cohorts report at 94 %).",
        "",
        "| Purpose | Seeds | Variety | Patients x visits | Matrix | What | Script |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in proto.cohorts:
        seeds = format_seeds(c.seeds) + (" (reserved)" if c.reserved else "")
        scripts = ", ".join(f"`{s.strip()}`" for s in c.script.split(","))
        lines.append(
            f"| {c.purpose} | {seeds} | {c.variety} | {c.patients} x {c.visits} | {c.matrix} | {c.what} | {scripts} |"
        )
    lines += ["", "## Varieties", ""]
    for name, info in proto.varieties.items():
        lines.append(f"- **{name}**: {' '.join(str(info.get('description', '')).split())}")
        families = info.get("families") or {}
        for fam, text in families.items():
            lines.append(f"  - `{fam}`: {text}")
        for key, label in (("per_family_reporting", "Reported per family"), ("leave_one_family_out", "Left out")):
            if info.get(key):
                extra = " one family at a time (tuned on the others)" if key == "leave_one_family_out" else ""
                lines.append(f"  - {label}{extra}: {', '.join(f'`{f}`' for f in info[key])}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``benchmarks/cohorts.md`` from the protocol (``--check``: only compare)."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--check", action="store_true", help="exit 1 when the file differs; write nothing")
    args = ap.parse_args(argv)
    target = REPO_ROOT / COHORTS_MD
    text = render_markdown()
    if args.check:
        same = target.exists() and target.read_text(encoding="utf-8") == text
        print(f"{COHORTS_MD} {'agrees with' if same else 'differs from'} {PROTOCOL_FILE}")
        return 0 if same else 1
    target.write_text(text, encoding="utf-8")
    print(f"wrote {COHORTS_MD} from {PROTOCOL_FILE}")
    return 0


__all__ = [
    "COHORTS_MD",
    "DEFAULT_VARIETY",
    "DEVELOPMENT",
    "PROTOCOL_FILE",
    "PURPOSES",
    "TUNING_FIGURE",
    "Cohort",
    "Protocol",
    "ProtocolError",
    "cohort_seed",
    "conflicts",
    "display_path",
    "format_seeds",
    "load_protocol",
    "parse_seeds",
    "purpose_of",
    "render_markdown",
    "require",
    "require_cohort",
]

if __name__ == "__main__":
    sys.exit(main())
