"""Every figure the README quotes is in a committed result of a reporting cohort.

README.md marks a quoted block with ``<!-- quotes: validation/results/NAME.json -->`` ...
``<!-- /quotes -->``. Every number written inside it must equal, at the precision written,
a number of that JSON (walked recursively; numeric strings count), or 100 times one (a
fraction quoted as a percentage: 0.906 as 90.6 %). Each JSON under ``validation/results/``
must record ``"protocol"`` with purpose ``reporting`` for a seed the protocol registers for
reporting: a figure from a tuning cohort is not a result. The README holds no marked block
until its figures are re-measured into such files; the checks then pass vacuously.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from scintilab.protocol import ProtocolError, require

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "validation/results"

_OPEN = re.compile(r"<!--\s*quotes:\s*(\S+?)\s*-->")
_CLOSE = re.compile(r"<!--\s*/quotes\s*-->")
# A sign belongs to a number only where no letter or digit comes before it ("-0.66..+0.49"
# holds two signed numbers, "0.919-0.961" a range of two unsigned ones).
_NUMBER = re.compile(r"(?:(?<!\w)([-+−])|(?<![\w.]))(\d+(?:,\d{3})*(?:\.\d+)?)")


def numbers_in(text: str) -> list[Decimal]:
    """The numbers written in ``text``, with their written precision (thousands commas dropped)."""
    out = []
    for sign, digits in _NUMBER.findall(text):
        value = Decimal(digits.replace(",", ""))
        out.append(-value if sign in ("-", "−") else value)
    return out


def json_numbers(doc: Any) -> list[float]:
    """Every number in a JSON document, at any depth (numeric strings too: ``default=str`` writes some)."""
    if isinstance(doc, bool) or doc is None:
        return []
    if isinstance(doc, (int, float)):
        return [float(doc)]
    if isinstance(doc, str):
        try:
            return [float(doc)]
        except ValueError:
            return []
    if isinstance(doc, dict):
        return [x for v in doc.values() for x in json_numbers(v)]
    if isinstance(doc, list):
        return [x for v in doc for x in json_numbers(v)]
    return []


def quoted(written: Decimal, values: list[float]) -> bool:
    """Whether some value, or 100 times one, rounds to ``written`` at its written precision."""
    exponent = written.as_tuple().exponent
    half = 0.5 * 10.0 ** (exponent if isinstance(exponent, int) else 0)
    w = float(written)
    tol = half * (1 + 1e-9) + 1e-12
    return any(abs(x - w) <= tol or abs(100 * x - w) <= tol for x in values)


def result_problems(path: Path, root: Path) -> list[str]:
    """What is wrong with one result file: unreadable, or no reporting protocol record."""
    shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{shown}: not a readable JSON ({exc})"]
    proto = doc.get("protocol") if isinstance(doc, dict) else None
    if not isinstance(proto, dict) or proto.get("purpose") != "reporting":
        return [f'{shown}: records no "protocol" with purpose reporting (a tuning figure is not a result)']
    try:  # one cohort ("seed") or a summary of several ("seeds"): every one a reporting seed
        seeds = proto["seeds"] if "seeds" in proto else [proto["seed"]]
        for seed in seeds:
            require(int(seed), "reporting", str(proto.get("variety", "narrow")))
    except (KeyError, TypeError, ValueError, ProtocolError) as exc:
        return [f"{shown}: {exc}"]
    return []


def readme_problems(readme: Path, root: Path) -> list[str]:
    """Every marked block's numbers against its JSON; one line per problem."""
    text = readme.read_text(encoding="utf-8")
    problems: list[str] = []
    pos = 0
    while (m := _OPEN.search(text, pos)) is not None:
        line = text.count("\n", 0, m.start()) + 1
        end = _CLOSE.search(text, m.end())
        if end is None:
            return [*problems, f"{readme.name} line {line}: quotes block never closed"]
        body = text[m.end() : end.start()]
        if _OPEN.search(body):
            return [*problems, f"{readme.name} line {line}: quotes block opened inside another"]
        pos = end.end()
        name = m.group(1)
        path = root / name
        if not name.startswith(f"{RESULTS}/") or not name.endswith(".json"):
            problems.append(f"{readme.name} line {line}: {name} is not a JSON under {RESULTS}/")
            continue
        if not path.exists():
            problems.append(f"{readme.name} line {line}: {name} does not exist")
            continue
        bad = result_problems(path, root)
        if bad:
            problems.extend(f"{readme.name} line {line}: {b}" for b in bad)
            continue
        values = json_numbers(json.loads(path.read_text(encoding="utf-8")))
        for written in numbers_in(body):
            if not quoted(written, values):
                problems.append(f"{readme.name} line {line}: {written} is not in {name}")
    stray = _CLOSE.findall(text[pos:])
    if stray:
        problems.append(f"{readme.name}: {len(stray)} quotes block end(s) without a start")
    return problems


# ---- the real README and results -----------------------------------------------------------


def test_the_readme_quotes_only_committed_reporting_results() -> None:
    assert readme_problems(ROOT / "README.md", ROOT) == []


def test_every_committed_result_is_a_reporting_figure() -> None:
    folder = ROOT / RESULTS
    files = sorted(folder.glob("**/*.json")) if folder.is_dir() else []
    assert [p for f in files for p in result_problems(f, ROOT)] == []


# ---- the checker on a README and results written here --------------------------------------

_REPORTING = {"seed": 67, "variety": "narrow", "purpose": "reporting", "file": "validation/cohorts.yaml"}


def _setup(tmp_path: Path, block: str, doc: dict[str, Any], name: str = "seed67.json") -> Path:
    (tmp_path / RESULTS).mkdir(parents=True, exist_ok=True)
    (tmp_path / RESULTS / name).write_text(json.dumps(doc))
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\nSeed 2026 outside a block is not checked.\n\n{block}\n\nAfter: 0.123.\n")
    return readme


_FIGURES = {
    "protocol": _REPORTING,
    "sensitivity": 0.93912,
    "range": [0.9191, 0.961],
    "fp_per_scan": 0.3449,
    "new_count_exact": 0.90625,
    "bsi": {"bias": -0.0851, "loa": ["-0.66", 0.49]},
    "studies": 1380,
    "patients": 40,
}


def test_a_block_whose_numbers_are_all_in_its_json_passes(tmp_path: Path) -> None:
    block = (
        "<!-- quotes: validation/results/seed67.json -->\n"
        "- seed 67, 40 patients (1,380 studies): sensitivity 0.939 (0.919-0.961; 0.94 to two places)\n"
        "  at 0.34 false positives per scan; new-lesion count exact on 90.6 % of pairs;\n"
        "  BSI bias -0.085, limits -0.66..+0.49\n"
        "<!-- /quotes -->"
    )
    assert readme_problems(_setup(tmp_path, block, _FIGURES), tmp_path) == []


@pytest.mark.parametrize(
    ("body", "doc", "expected"),
    [
        ("sensitivity 0.940", _FIGURES, "0.940 is not in"),  # one place off at the written precision
        ("BSI bias +0.085", _FIGURES, "0.085 is not in"),  # the wrong sign
        ("new lesions 90.7 %", _FIGURES, "90.7 is not in"),
        ("seed 71", _FIGURES, "71 is not in"),
        ("0.939", {k: v for k, v in _FIGURES.items() if k != "protocol"}, 'no "protocol" with purpose reporting'),
        ("0.939", {**_FIGURES, "protocol": {**_REPORTING, "purpose": "tuning figure"}}, "purpose reporting"),
        ("0.939", {**_FIGURES, "protocol": {**_REPORTING, "seed": 1}}, "seed 1 (narrow) is registered for tuning"),
    ],
)
def test_a_block_with_a_number_not_in_its_json_fails(
    tmp_path: Path, body: str, doc: dict[str, Any], expected: str
) -> None:
    block = f"<!-- quotes: validation/results/seed67.json -->\n{body}\n<!-- /quotes -->"
    problems = readme_problems(_setup(tmp_path, block, doc), tmp_path)
    assert len(problems) == 1 and expected in problems[0], problems
    assert problems[0].startswith("README.md line 5:")


def test_a_block_naming_a_missing_file_or_left_open_fails(tmp_path: Path) -> None:
    missing = "<!-- quotes: validation/results/absent.json -->\n0.939\n<!-- /quotes -->"
    assert readme_problems(_setup(tmp_path, missing, _FIGURES), tmp_path) == [
        "README.md line 5: validation/results/absent.json does not exist"
    ]
    outside = "<!-- quotes: data/vq_seed67.json -->\n0.939\n<!-- /quotes -->"
    assert (
        "is not a JSON under validation/results/" in readme_problems(_setup(tmp_path, outside, _FIGURES), tmp_path)[0]
    )
    left_open = "<!-- quotes: validation/results/seed67.json -->\n0.939\n"
    assert readme_problems(_setup(tmp_path, left_open, _FIGURES), tmp_path) == [
        "README.md line 5: quotes block never closed"
    ]


def test_numbers_are_read_as_written() -> None:
    assert numbers_in("-0.66..+0.49, 0.919-0.961, 1,380 studies, D3 at 256x64") == [
        Decimal("-0.66"),
        Decimal("0.49"),
        Decimal("0.919"),
        Decimal("0.961"),
        Decimal("1380"),
        Decimal("256"),
    ]


def test_a_summary_of_several_cohorts_needs_every_seed_reporting(tmp_path: Path) -> None:
    many = {**_FIGURES, "protocol": {**_REPORTING, "seeds": [67, 71]}}
    many["protocol"].pop("seed")
    readme = _setup(tmp_path, "<!-- quotes: validation/results/seed67.json -->\n0.939\n<!-- /quotes -->", many)
    assert readme_problems(readme, tmp_path) == []
    many["protocol"]["seeds"] = [67, 1]
    readme = _setup(tmp_path, "<!-- quotes: validation/results/seed67.json -->\n0.939\n<!-- /quotes -->", many)
    assert any("seed 1" in p for p in readme_problems(readme, tmp_path))
