"""Pseudonymous identifiers: a keyed hash, stable across runs, never reversible.

Real patient names and IDs must never reach an output (manifest, notebook, report).
Every identifier that is shown is ``pseudonymize(raw_id)``. The key comes from the
``SCINTILAB_PSEUDONYM_KEY`` environment variable, or an explicit argument, and falls
back to a fixed project default so that a synthetic cohort gives the same ids everywhere.
Use your own secret key for real data: with the default key anybody can test a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import os

DEFAULT_KEY = "scintilab-default-pseudonym-key"
ENV_KEY = "SCINTILAB_PSEUDONYM_KEY"


def pseudonym_key(key: str | None = None) -> bytes:
    """Return the key in effect: the argument, else the environment, else the default."""
    if key is None:
        key = os.environ.get(ENV_KEY) or DEFAULT_KEY
    return key.encode("utf-8")


def pseudonymize(raw_id: str, prefix: str = "P", key: str | None = None, length: int = 10) -> str:
    """Return a pseudonymous id ``PREFIX-xxxxxxxxxx`` for ``raw_id``.

    Args:
        raw_id: the identifier to hide (PatientID, StudyInstanceUID, ...).
        prefix: a short tag for the kind of id (``P`` patient, ``S`` study).
        key: the secret key; see :func:`pseudonym_key`.
        length: number of hex characters kept from the HMAC-SHA256 digest.

    Returns:
        The same string for the same ``raw_id`` and key, in every run.
    """
    digest = hmac.new(pseudonym_key(key), str(raw_id).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{prefix}-{digest[:length]}"


def patient_key(patient_id: str, key: str | None = None) -> str:
    """Pseudonymous patient key (``P-...``)."""
    return pseudonymize(patient_id, "P", key)


def study_key(study_uid: str, key: str | None = None) -> str:
    """Pseudonymous study key (``S-...``) from a StudyInstanceUID or other study id."""
    return pseudonymize(study_uid, "S", key)
