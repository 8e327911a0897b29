"""Cohort audit: duplicates, same-patient suspects, mislabelled views, unusable scans,
and the leak-proof split groups built from them.

Public API::

    audit(manifest, *, split=None, out=None, review=None) -> AuditResult
    split_groups(manifest_or_cohort, flags_df, review=None) -> pd.Series  # study_key -> group
    check_split(split_df, flags_df, review=None) -> list[StraddlingPair]
    refuse_leaky_split(split_df, flags_df, *, go_on=False, review=None)
    record_decision(review_csv, kind, study_a, study_b, decision, note="")
    cli_main(argv)  # scintilab audit MANIFEST [--split CSV] [--review CSV] --out DIR
"""

from __future__ import annotations

from scintilab.audit.core import audit, cli_main, ingest_findings, write_outputs
from scintilab.audit.kinds import FLAG_COLUMNS, KIND_ORDER, KIND_WORDS, PAIR_KINDS, REVIEW_COLUMNS
from scintilab.audit.leaks import (
    LeakageError,
    StraddlingPair,
    check_split,
    merged_groups,
    refuse_leaky_split,
    split_groups,
)
from scintilab.audit.result import AuditResult
from scintilab.audit.review import dismissed_ids, read_review, record_decision

__all__ = [
    "FLAG_COLUMNS",
    "KIND_ORDER",
    "KIND_WORDS",
    "PAIR_KINDS",
    "REVIEW_COLUMNS",
    "AuditResult",
    "LeakageError",
    "StraddlingPair",
    "audit",
    "check_split",
    "cli_main",
    "dismissed_ids",
    "ingest_findings",
    "merged_groups",
    "read_review",
    "record_decision",
    "refuse_leaky_split",
    "split_groups",
    "write_outputs",
]
