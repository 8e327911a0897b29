"""The built-in synthetic cohort: whole-body bone scans written as a hospital export.

``write_cohort`` (and ``scintilab synth``) writes DICOM, LabelMe, labels and demographics
plus ground truth; ``generate_patient`` / ``render_study`` give the same in memory.
"""

from __future__ import annotations

from scintilab.synth.cohort import (
    CLASS_SHARES,
    SIZES,
    CohortInfo,
    class_plan,
    cli_main,
    ensure_cohort,
    write_cohort,
)
from scintilab.synth.lesions import CLASS_MODELS, Finding
from scintilab.synth.phantom import BONE_IDS, MU_PER_CM, Anatomy, random_anatomy, render_phantom, spacing_for
from scintilab.synth.scan import SynthPatient, SynthStudy, generate_patient, render_study

__all__ = [
    "Anatomy",
    "BONE_IDS",
    "CLASS_MODELS",
    "CLASS_SHARES",
    "CohortInfo",
    "Finding",
    "MU_PER_CM",
    "SIZES",
    "SynthPatient",
    "SynthStudy",
    "class_plan",
    "cli_main",
    "ensure_cohort",
    "generate_patient",
    "random_anatomy",
    "render_phantom",
    "render_study",
    "spacing_for",
    "write_cohort",
]
