"""What an audit found: the findings table, the dismissed findings and the features."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scintilab.audit.signature import StudyFeatures


@dataclass
class AuditResult:
    """What :func:`audit` found.

    Attributes:
        flags: the findings table (:data:`FLAG_COLUMNS`), dismissed findings removed.
        dismissed: findings a review dismissed (same columns plus ``note``).
        manifest: the manifest audited (or one built from the studies given).
        features: per-study features (for the data card and figures).
        out: the output folder, when written.
    """

    flags: pd.DataFrame
    dismissed: pd.DataFrame
    manifest: pd.DataFrame
    features: list[StudyFeatures] = field(default_factory=list, repr=False)
    out: Path | None = None

    def kinds(self) -> pd.Series:
        """Number of findings per kind."""
        return self.flags["kind"].value_counts()

    def flagged_studies(self) -> set[str]:
        """Every study key named in a finding."""
        keys = set(self.flags["study_a"]) | set(self.flags["study_b"])
        keys.discard("")
        return keys
