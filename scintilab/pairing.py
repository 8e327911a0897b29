"""One way to pair regions: candidate pairs taken best first, each item at most once.

Hot spots of the two views (:mod:`scintilab.hotspots`), annotated outlines of the two views
(:mod:`scintilab.lesions`) and hot spots of a baseline and a follow-up
(:mod:`scintilab.followup`) are all paired this way; each caller says which pairs are
candidates and how good each is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def greedy_pairs(pairs: Sequence[tuple[Any, int, int]]) -> list[tuple[int, int]]:
    """One-to-one matching: take candidate ``(cost, i, j)`` pairs lowest cost first.

    ``cost`` is anything that sorts (a distance, or a tuple such as ``(-overlap, distance)``);
    ties go to the lower ``i``, then the lower ``j``.

    Returns:
        The ``(i, j)`` pairs taken, in the order they were taken.
    """
    used_i: set[int] = set()
    used_j: set[int] = set()
    out: list[tuple[int, int]] = []
    for _, i, j in sorted(pairs):
        if i in used_i or j in used_j:
            continue
        used_i.add(i)
        used_j.add(j)
        out.append((i, j))
    return out
