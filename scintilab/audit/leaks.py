"""Leak-proof split groups and the check that a split keeps them whole.

A patient and every study a pair finding ties to it (a duplicate, a same-patient suspect)
form one group, so no copy of a scan sits on both sides of a train/test split; dismissed
findings do not tie. :func:`check_split` names each pair that straddles a given split and
:func:`refuse_leaky_split` raises :class:`LeakageError` on one (training calls it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from scintilab.audit.kinds import PAIR_KINDS
from scintilab.audit.result import AuditResult
from scintilab.audit.review import dismissed_ids, pair_id, read_review
from scintilab.errors import InputError
from scintilab.study import Study

log = logging.getLogger(__name__)


def flags_table(flags: Any) -> pd.DataFrame:
    if isinstance(flags, AuditResult):
        return flags.flags
    if isinstance(flags, pd.DataFrame):
        df = flags
    else:
        p = Path(flags)
        if not p.is_file():
            raise InputError(p, "flags table not found")
        df = pd.read_csv(p, keep_default_na=False, dtype={"study_a": str, "study_b": str})
    df = df.copy()
    df["study_b"] = df["study_b"].fillna("").astype(str)
    return df


# ------------------------------------------------------------------ split groups / leaks


def split_groups(manifest_or_cohort: Any, flags_df: Any, review: Any = None) -> pd.Series:
    """Leak-proof split groups: a patient plus every study tied to it by a pair finding.

    Union-find over studies: studies of one patient key, exact and near duplicates and
    same-patient suspects are merged (transitively), unless a review dismissed the pair.
    Give the result to ``scintilab.splits.patient_split(..., groups=)`` / ``kfold_splits``.

    Args:
        manifest_or_cohort: manifest path or DataFrame (``study_key, patient_key``), a
            list of :class:`Study`, or an :class:`AuditResult`.
        flags_df: the audit's flags (DataFrame, path to flags.csv, or AuditResult).
        review: review CSV/DataFrame; dismissed pairs are not merged.

    Returns:
        Series indexed by study key (manifest order) with a group id ``G-...`` per study.
    """
    if isinstance(manifest_or_cohort, AuditResult):
        man = manifest_or_cohort.manifest
    elif (
        isinstance(manifest_or_cohort, (list, tuple))
        and manifest_or_cohort
        and isinstance(manifest_or_cohort[0], Study)
    ):
        man = pd.DataFrame(
            {
                "study_key": [s.study_key for s in manifest_or_cohort],
                "patient_key": [s.patient_key for s in manifest_or_cohort],
            }
        )
    elif isinstance(manifest_or_cohort, pd.DataFrame):
        man = manifest_or_cohort
    else:
        man = pd.read_csv(manifest_or_cohort, keep_default_na=False)
    keys = [str(k) for k in man["study_key"]]
    pats = [str(p) for p in man["patient_key"]] if "patient_key" in man else keys
    parent = {k: k for k in keys}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: dict[str, str] = {}
    for k, p in zip(keys, pats):
        if p in first:
            union(first[p], k)
        else:
            first[p] = k
    flags = flags_table(flags_df)
    gone = dismissed_ids(read_review(review))
    for _, r in flags[flags["kind"].isin(PAIR_KINDS)].iterrows():
        a, b = str(r["study_a"]), str(r["study_b"])
        if a in parent and b in parent and pair_id(r["kind"], a, b) not in gone:
            union(a, b)
    # Name a group after the smallest patient key in it: stable and pseudonymous.
    members: dict[str, list[str]] = {}
    for k, p in zip(keys, pats):
        members.setdefault(find(k), []).append(p)
    name = {root: "G-" + min(ps).split("-", 1)[-1] for root, ps in members.items()}
    return pd.Series([name[find(k)] for k in keys], index=pd.Index(keys, name="study_key"), name="group")


def merged_groups(groups: pd.Series) -> pd.DataFrame:
    """The split groups holding more than one study: ``group, studies, n_studies``."""
    sizes = groups.groupby(groups).size()
    big = sizes[sizes > 1].index
    rows = [
        {"group": g, "studies": ", ".join(sorted(groups.index[groups == g])), "n_studies": int(sizes[g])} for g in big
    ]
    return (
        pd.DataFrame(rows, columns=["group", "studies", "n_studies"])
        .sort_values(["n_studies", "group"], ascending=[False, True])
        .reset_index(drop=True)
    )


class StraddlingPair(NamedTuple):
    """A duplicate or same-patient pair whose studies lie on different sides of a split."""

    kind: str
    study_a: str
    study_b: str
    side_a: str
    side_b: str
    score: float

    def __str__(self) -> str:
        return f"{self.kind}: {self.study_a} ({self.side_a}) and {self.study_b} ({self.side_b})"


def _split_sides(split_df: Any) -> dict[str, str]:
    if isinstance(split_df, (str, Path)):
        p = Path(split_df)
        if not p.is_file():
            raise InputError(p, "split CSV not found")
        split_df = pd.read_csv(p, keep_default_na=False, dtype=str)
        if "study_key" not in split_df.columns:
            raise InputError(p, "split CSV lacks a study_key column")
    if isinstance(split_df, pd.Series):
        return {str(k): str(v) for k, v in split_df.items()}
    col = next((c for c in ("split", "subset", "side", "fold") if c in split_df.columns), None)
    if col is None or "study_key" not in split_df.columns:
        raise ValueError("a split table needs columns study_key and split (or subset/fold)")
    sides: dict[str, str] = {}
    for k, s in zip(split_df["study_key"].astype(str), split_df[col].astype(str)):
        sides.setdefault(k, s)  # augmented copies share their study's side; keep the first
    return sides


def check_split(split_df: Any, flags_df: Any, review: Any = None) -> list[StraddlingPair]:
    """Every duplicate or same-patient pair whose two studies are on different sides.

    Args:
        split_df: DataFrame with ``study_key`` and ``split`` (or ``subset``/``fold``),
            a Series study_key -> side, or a path to such a CSV. Studies missing from
            the split are ignored (they are in neither side).
        flags_df: the audit's flags (DataFrame, flags.csv path, or AuditResult).
        review: review CSV/DataFrame; dismissed pairs are not reported.

    Returns:
        The straddling pairs (empty when the split cannot leak through known pairs).
    """
    sides = _split_sides(split_df)
    flags = flags_table(flags_df)
    gone = dismissed_ids(read_review(review))
    out: list[StraddlingPair] = []
    for _, r in flags[flags["kind"].isin(PAIR_KINDS)].iterrows():
        a, b = str(r["study_a"]), str(r["study_b"])
        if a in sides and b in sides and sides[a] != sides[b] and pair_id(r["kind"], a, b) not in gone:
            out.append(StraddlingPair(str(r["kind"]), a, b, sides[a], sides[b], float(r["score"])))
    return out


class LeakageError(ValueError):
    """A split puts a duplicate or same-patient pair on both sides."""


def refuse_leaky_split(
    split_df: Any, flags_df: Any, *, go_on: bool = False, review: Any = None
) -> list[StraddlingPair]:
    """Raise :class:`LeakageError` naming the pairs across a split, unless ``go_on``.

    Training calls this before fitting. With ``go_on=True`` the pairs are logged as a
    warning and returned instead.
    """
    pairs = check_split(split_df, flags_df, review)
    if pairs and not go_on:
        names = "; ".join(str(p) for p in pairs[:10]) + (f"; and {len(pairs) - 10} more" if len(pairs) > 10 else "")
        raise LeakageError(
            f"{len(pairs)} duplicate/same-patient pair(s) straddle the split: {names}. "
            "Regroup with scintilab.audit.split_groups, dismiss false flags in the review "
            "CSV, or pass the option to go on anyway."
        )
    for p in pairs:
        log.warning("split leak accepted: %s", p)
    return pairs
