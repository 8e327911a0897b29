"""Arms that lie otherwise at a follow-up than at baseline, and the findings that move with them.

The phantom of a patient is drawn once; a follow-up whose arms moved draws it again with the
visit's angles (:func:`moved_anatomy`). A finding on an arm bone keeps its place *on the bone*:
:func:`follow_arms` writes its centre as a position along and across its arm segment
(shoulder-elbow for the humerus, elbow-wrist for the forearm, wrist-carpus for the hand) at
baseline and rebuilds it on the same segment of the moved arm. Everything else stays put.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from scintilab.synth.lesions import Finding
from scintilab.synth.phantom import Anatomy, Phantom
from scintilab.synth.variety import VisitVariety

#: Arm bone -> the landmarks (start, end) of the segment it lies on.
ARM_SEGMENTS: dict[str, tuple[str, str]] = {
    "humeri": ("shoulder", "elbow"),
    "forearms": ("elbow", "wrist"),
    "hands": ("wrist", "hand"),
}


def moved_anatomy(an: Anatomy, vv: VisitVariety) -> Anatomy:
    """The patient's anatomy with the visit's arm angles (an upper arm stays off the trunk)."""
    abd = []
    for i, d in enumerate(vv.abduction_change_deg):
        new = an.arm_abduction_deg[i] + d
        abd.append(new if an.arms[i] == "raised" else max(new, 2.0))
    fore = [an.forearm_deg[i] + d for i, d in enumerate(vv.forearm_change_deg)]
    return replace(an, arm_abduction_deg=(abd[0], abd[1]), forearm_deg=(fore[0], fore[1]))


def _segment(ph: Phantom, bone: str, side: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = ARM_SEGMENTS[bone]
    sr, sc = ph.spacing
    scale = np.array([sr, sc])
    return np.asarray(ph.landmarks[f"{a}_{side}"]) * scale, np.asarray(ph.landmarks[f"{b}_{side}"]) * scale


def follow_arms(findings: list[Finding], before: Phantom, after: Phantom) -> list[Finding]:
    """The findings as they lie once the arms moved from ``before`` to ``after``.

    Args:
        findings: a patient's findings, centres in the ``before`` phantom's pixels.
        before / after: the phantom at baseline and at the visit (same matrix and spacing).

    Returns:
        New findings (the inputs are not changed): those on an arm bone moved and turned
        with their segment, the others as they were.
    """
    sr, sc = before.spacing
    out: list[Finding] = []
    for f in findings:
        if f.bone not in ARM_SEGMENTS:
            out.append(f)
            continue
        p = np.array([f.center_rc[0] * sr, f.center_rc[1] * sc])
        best = None
        for side in ("R", "L"):
            s0, e0 = _segment(before, f.bone, side)
            seg = e0 - s0
            length = float(np.hypot(*seg))
            if length < 1.0:  # a missing arm has no segment
                continue
            t = float(np.dot(p - s0, seg) / length**2)
            normal = np.array([-seg[1], seg[0]]) / length
            off = float(np.dot(p - s0, normal))
            dist = float(np.hypot(*(p - (s0 + np.clip(t, 0, 1) * seg))))
            if best is None or dist < best[0]:
                best = (dist, side, t, off, seg)
        if best is None:
            out.append(f)
            continue
        _, side, t, off, seg0 = best
        s1, e1 = _segment(after, f.bone, side)
        seg1 = e1 - s1
        length1 = float(np.hypot(*seg1)) or 1.0
        q = s1 + t * seg1 + off * np.array([-seg1[1], seg1[0]]) / length1
        turn = math.atan2(seg1[0], seg1[1]) - math.atan2(seg0[0], seg0[1])
        out.append(replace(f, center_rc=(float(q[0] / sr), float(q[1] / sc)), angle=f.angle + turn))
    return out


__all__ = ["ARM_SEGMENTS", "follow_arms", "moved_anatomy"]
