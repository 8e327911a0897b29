"""The label sheet: reading it and joining its labels to studies.

:func:`read_labels` reads a CSV keyed by patient and/or study id (the hospital layout) or
by image name (public datasets); :func:`normalize_label` maps a cell to ``NoMet`` /
``ADMet`` / ``nADMet``; :func:`join_labels` gives each study its label, reporting rows
that match nothing or carry a bad label and flagging studies whose rows disagree.

Raw patient and study ids stay in memory: messages name them by their pseudonymous keys.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab.errors import InputError
from scintilab.pseudonym import patient_key as _patient_key
from scintilab.pseudonym import study_key as _study_key
from scintilab.study import CLASSES

# Label cells are matched case-insensitively, with the other spellings sheets use.
_LABEL_ALIASES = {c.lower(): c for c in CLASSES}
_LABEL_ALIASES.update({"no_met": "NoMet", "no met": "NoMet", "ad_met": "ADMet", "nad_met": "nADMet"})


def read_labels(path: Path) -> pd.DataFrame:
    """Read a label sheet into columns ``row, patient_id, study_id, label`` (strings).

    Accepts the hospital layout ``patient_id, study_id, label`` and the public-dataset
    layout keyed by image name (column ``image``, ``filename`` or ``name``, read as a study
    id); column names are matched case-insensitively.

    Raises:
        InputError: the sheet cannot be read or has no label column / id column.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise InputError(path, "label sheet not found") from exc
    except Exception as exc:  # noqa: BLE001 - pandas raises several parser errors
        raise InputError(path, f"unreadable label sheet: {exc}") from exc
    cols = {c.strip().lower(): c for c in raw.columns}
    label_col = next((cols[c] for c in ("label", "class", "diagnosis", "category") if c in cols), None)
    if label_col is None:
        raise InputError(path, f"no label column (expected 'label'); columns: {list(raw.columns)}")
    pid = next((cols[c] for c in ("patient_id", "patientid", "patient", "patient_name") if c in cols), None)
    sid = next(
        (
            cols[c]
            for c in ("study_id", "studyid", "study", "study_uid", "image", "filename", "file", "image_name", "name")
            if c in cols
        ),
        None,
    )
    if pid is None and sid is None:
        raise InputError(path, "no id column (expected patient_id and/or study_id)")
    return pd.DataFrame(
        {
            "row": np.arange(2, len(raw) + 2),  # spreadsheet row numbers (header is row 1)
            "patient_id": raw[pid].str.strip() if pid else "",
            "study_id": raw[sid].str.strip() if sid else "",
            "label": raw[label_col].str.strip(),
        }
    )


def normalize_label(value: str) -> str | None:
    """``NoMet``/``ADMet``/``nADMet`` from a label cell (case-insensitive), else None."""
    return _LABEL_ALIASES.get(str(value).strip().lower())


def join_labels(
    sheet: pd.DataFrame,
    studies: dict[str, dict[str, Any]],
    sheet_name: str,
    key: str | None,
    skipped: list[tuple[str, str]],
) -> dict[str, str | None]:
    """Label per study group; rows that match nothing or carry a bad label are reported.

    A study's own row beats its patient's row; a study whose rows disagree is flagged (and
    left unlabelled when its labels conflict).

    Args:
        sheet: the sheet as :func:`read_labels` returns it.
        studies: per study group its ``study_ids``, ``patient_id`` and ``flags`` (appended to).
        sheet_name: the sheet's file name, for messages.
        key: pseudonym key for the ids messages name (see :mod:`scintilab.pseudonym`).
        skipped: ``(where, reason)`` is appended for each row not used.

    Returns:
        The label of every study group, None where it has none.
    """
    by_study: dict[str, set[str]] = defaultdict(set)
    by_patient: dict[str, set[str]] = defaultdict(set)
    for group, info in studies.items():
        for sid in info["study_ids"]:
            by_study[sid.lower()].add(group)
        by_patient[info["patient_id"].lower()].add(group)
    study_labels: dict[str, set[str]] = defaultdict(set)
    patient_labels: dict[str, set[str]] = defaultdict(set)
    for row in sheet.itertuples():
        where = f"{sheet_name} row {row.row}"
        label = normalize_label(row.label)
        if label is None:
            skipped.append((where, f"label {row.label!r} is not one of {', '.join(CLASSES)}"))
            continue
        if row.study_id:
            groups = by_study.get(row.study_id.lower()) or by_study.get(Path(row.study_id).stem.lower())
            if not groups:
                skipped.append(
                    (
                        where,
                        f"names a study that is not in the folder ({_study_key(row.study_id, key)}): label not used",
                    )
                )
                continue
            if row.patient_id:
                # StudyID is often unique only per patient: keep the studies of this patient.
                groups = {g for g in groups if studies[g]["patient_id"].lower() == row.patient_id.lower()}
                if not groups:
                    skipped.append((where, "study id and patient id do not belong together: label not used"))
                    continue
            for g in groups:
                study_labels[g].add(label)
        elif row.patient_id:
            groups = by_patient.get(row.patient_id.lower())
            if not groups:
                skipped.append(
                    (
                        where,
                        f"names a patient that is not in the folder "
                        f"({_patient_key(row.patient_id, key)}): label not used",
                    )
                )
                continue
            for g in groups:
                patient_labels[g].add(label)
        else:
            skipped.append((where, "no patient or study id"))
    out: dict[str, str | None] = {}
    for group in studies:
        # A study-level label beats a patient-level one: patients change class over time.
        found = study_labels.get(group) or patient_labels.get(group) or set()
        by_pat = patient_labels.get(group) or set()
        if study_labels.get(group) and by_pat and by_pat != study_labels[group]:
            studies[group]["flags"].append(
                f"label sheet: the study's row says {'/'.join(sorted(study_labels[group]))}, the patient's row "
                f"says {'/'.join(sorted(by_pat))}: the study's row is used"
            )
        if len(found) > 1:
            studies[group]["flags"].append(
                f"conflicting labels in the label sheet ({'/'.join(sorted(found))}): left unlabelled"
            )
            out[group] = None
        else:
            out[group] = next(iter(found), None)
    return out
