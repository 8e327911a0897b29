"""Summarise several cohorts' validation figures against the bars of issue 13.

Reads the JSON files that ``benchmarks/validate_quantification.py --json`` writes (one per
cohort, e.g. one per seed) and prints one row per cohort, then the mean, the range and how
many cohorts meet each bar (:func:`scintilab.synth.validation_figures.validation_summary_text`,
then the figures without a bar: the trivial answers, the NoMet BSI, ...). This is
how the README's quantification figures are put together::

    for s in 67 71 79 83 89 97 103 107; do
        .venv/bin/python benchmarks/validate_quantification.py --cohort data/vq_seed$s \\
            --seed $s --json data/vq_seed$s.json
    done
    .venv/bin/python benchmarks/summarise_validation.py data/vq_seed*.json [--classifier learned]

A file written with a hot-spot model holds both classifiers; ``--classifier`` picks one
(default: ``rules``). ``--family NAME`` summarises one family's figures (cohorts whose
truth names families, e.g. ``obese`` or ``cut_fov``; default ``all``); a cohort without
that family, or with fewer than 5 cases behind a figure, shows n/a.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scintilab.synth.validation_figures import summarise_validations, validation_summary_text  # noqa: E402


def load(paths: list[Path], classifier: str) -> dict[str, dict]:
    """cohort name (the file's stem) -> that classifier's figures; files without it are named and skipped."""
    runs: dict[str, dict] = {}
    for p in paths:
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"{p}: not a validation JSON ({err}); skipped", file=sys.stderr)
            continue
        # A rules-only run writes its figures at the top level; a run with a model nests them.
        fig = (
            data.get(classifier) if classifier in data else (data if classifier == "rules" and "bsi" in data else None)
        )
        if fig is None:
            print(f"{p}: holds no '{classifier}' figures; skipped", file=sys.stderr)
            continue
        # Kept, as before, but said: a summary of tuning figures is not a result.
        proto = data.get("protocol") or {}
        if proto.get("purpose") != "reporting":
            what = f"a {proto['purpose']} (seed {proto.get('seed')})" if proto else "written without a protocol check"
            print(f"{p}: {what}, not a reporting figure (validation/cohorts.yaml)", file=sys.stderr)
        if "metastatic_definition" not in fig:
            # written before issue 23: its "bsi" is over every study, NoMet ones included
            print(
                f"{p}: an older validation; its BSI figures are over every study, not metastatic ones", file=sys.stderr
            )
        runs[p.stem] = fig
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", type=Path, help="validate_quantification.py --json outputs")
    ap.add_argument("--classifier", default="rules", choices=("rules", "learned"))
    ap.add_argument("--family", default="all", help="summarise this family's figures (default: all)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the summary, every family, as a small JSON (e.g. validation/results/NAME.json, "
        "which the README may quote); refused unless every cohort is a reporting cohort",
    )
    args = ap.parse_args(argv)
    runs = load(args.json, args.classifier)
    if not runs:
        print("no figures to summarise", file=sys.stderr)
        return 1
    print(f"{args.classifier}: {len(runs)} cohorts")
    print(validation_summary_text(runs, args.family))
    if args.out is not None:
        try:
            doc = result_document(args.json, runs, args.classifier)
        except ValueError as exc:
            print(f"summarise_validation: {exc}", file=sys.stderr)
            return 2
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


def _round(v: float) -> float | None:
    return None if v != v else round(float(v), 4)  # NaN (not measured) -> null


def result_document(paths: list[Path], runs: dict[str, dict], classifier: str) -> dict:
    """The small, committable summary of reporting cohorts: per family, each figure's mean,
    range and the cohorts behind it, with the protocol records of every cohort.

    Raises:
        ValueError: a cohort whose JSON records no reporting protocol check.
    """
    protos = []
    for p in paths:
        data = json.loads(p.read_text())
        proto = data.get("protocol") or {}
        if proto.get("purpose") != "reporting":
            raise ValueError(f"{p}: not a reporting cohort ({proto.get('purpose', 'no protocol record')})")
        protos.append(proto)
    varieties = sorted({str(pr.get("variety", "narrow")) for pr in protos})
    families = sorted({f for fig in runs.values() for f in (fig.get("families") or {})})
    figures = {}
    for fam in ["all", *families]:
        summ = summarise_validations(runs, fam)
        figures[fam] = {
            key: {
                "mean": _round(v["mean"]),
                "min": _round(v["min"]),
                "max": _round(v["max"]),
                "cohorts": len(v["values"]) - len(v["not_measured"]),
                **({"bar": v["bar"], "meets": v["meets"]} if v["bar"] == v["bar"] else {}),
            }
            for key, v in summ.items()
        }
        figures[fam]["scans"] = int(
            sum((fig if fam == "all" else fig["families"].get(fam, {})).get("scans") or 0 for fig in runs.values())
        )
    first = next(iter(runs.values()))
    return {
        "protocol": {
            "purpose": "reporting",
            "seeds": sorted(int(pr["seed"]) for pr in protos),
            "variety": varieties[0] if len(varieties) == 1 else varieties,
            "file": protos[0].get("file", "validation/cohorts.yaml"),
        },
        "classifier": classifier,
        "cohorts": len(runs),
        "patients_per_cohort": sorted({int(f.get("patients") or 0) for f in runs.values()}),
        "scans_per_cohort": sorted({int(f.get("scans") or 0) for f in runs.values()}),
        "operating_threshold": first.get("operating_threshold"),
        "endpoint_threshold": first.get("endpoint_threshold"),
        "figures": figures,
    }


if __name__ == "__main__":
    sys.exit(main())
