"""The audit's vocabulary: finding kinds, their order and words, and the table columns."""

from __future__ import annotations

FLAG_COLUMNS = ["kind", "study_a", "study_b", "score", "detail"]
REVIEW_COLUMNS = ["kind", "study_a", "study_b", "decision", "note"]
#: Pair findings that tie two studies to one patient (they must share a split side).
PAIR_KINDS: tuple[str, ...] = ("exact_duplicate", "near_duplicate", "same_patient")
#: Display order of kinds (the table is sorted by it, then by score).
KIND_ORDER: tuple[str, ...] = (
    "split_leak",
    "exact_duplicate",
    "near_duplicate",
    "same_patient",
    "swapped_views",
    "mirrored_view",
    "head_down",
    "partial_sweep",
    "spot_view",
    "empty_frame",
    "saturation",
    "counts_outlier",
    "lossy_compressed",
    "unreadable",
    "ingest_skipped",
    "ingest_flag",
)
KIND_WORDS: dict[str, str] = {
    "split_leak": "pair across the split",
    "exact_duplicate": "exact duplicate (same pixels, other id)",
    "near_duplicate": "near duplicate (same acquisition, altered copy)",
    "same_patient": "same patient under two ids (suspect, review)",
    "swapped_views": "ANT/POST labelled the wrong way round",
    "mirrored_view": "a view stored mirrored",
    "head_down": "head-down image",
    "partial_sweep": "partial sweep (body cut off)",
    "spot_view": "spot view among whole-body studies",
    "empty_frame": "empty frame",
    "saturation": "saturated counts",
    "counts_outlier": "counts far outside the cohort's range",
    "lossy_compressed": "lossy compressed copy (counts are not raw)",
    "unreadable": "study could not be read",
    "ingest_skipped": "file skipped by ingest",
    "ingest_flag": "ingest flag",
}
