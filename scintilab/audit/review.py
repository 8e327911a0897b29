"""A reviewer's decisions on the audit's findings (``review.csv``).

A finding dismissed there (a pair that is not a duplicate, a scan that is fine) leaves the
next audit's table and no longer ties two studies into one split group; a kept finding
stays. Decisions are keyed by kind and the pair of study keys, in either order.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scintilab.audit.kinds import REVIEW_COLUMNS
from scintilab.errors import InputError

# --------------------------------------------------------------------------- review


def read_review(review: str | Path | pd.DataFrame | None) -> pd.DataFrame:
    """A review table (:data:`REVIEW_COLUMNS`); empty when ``review`` is None or missing."""
    if review is None:
        return pd.DataFrame(columns=REVIEW_COLUMNS)
    if isinstance(review, pd.DataFrame):
        df = review.copy()
    else:
        p = Path(review)
        if not p.is_file():
            return pd.DataFrame(columns=REVIEW_COLUMNS)
        df = pd.read_csv(p, keep_default_na=False, dtype=str)
        missing = {"kind", "study_a", "decision"} - set(df.columns)
        if missing:
            raise InputError(p, f"review CSV lacks columns {sorted(missing)}")
    for c in REVIEW_COLUMNS:
        if c not in df.columns:
            df[c] = ""
    return df[REVIEW_COLUMNS].fillna("").astype(str)


def pair_id(kind: str, a: str, b: str) -> tuple[str, str, str]:
    a, b = str(a or ""), str(b or "")
    return (kind, *sorted((a, b))) if b else (kind, a, "")


def dismissed_ids(review: pd.DataFrame) -> set[tuple[str, str, str]]:
    """The findings a review dismissed (the latest decision per finding wins)."""
    latest: dict[tuple[str, str, str], str] = {}
    for _, r in review.iterrows():
        latest[pair_id(r["kind"], r["study_a"], r["study_b"])] = str(r["decision"]).strip().lower()
    return {k for k, d in latest.items() if d in {"dismiss", "dismissed", "reject", "no"}}


def record_decision(
    review_csv: str | Path, kind: str, study_a: str, study_b: str, decision: str, note: str = ""
) -> pd.DataFrame:
    """Append one decision (``accept`` or ``dismiss``) to a review CSV; returns the table."""
    decision = decision.strip().lower()
    if decision not in {"accept", "dismiss"}:
        raise ValueError(f"decision must be 'accept' or 'dismiss', not {decision!r}")
    p = Path(review_csv)
    df = read_review(p)
    df = pd.concat(
        [
            df,
            pd.DataFrame(
                [{"kind": kind, "study_a": study_a, "study_b": study_b or "", "decision": decision, "note": note}]
            ),
        ],
        ignore_index=True,
    )
    p.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(p, index=False)
    return df
