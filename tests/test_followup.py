"""Follow-up: registration, lesion matching, new-lesion counts and the PCWG3 2+2 rule."""

from __future__ import annotations

import datetime as dt

import numpy as np

from scintilab import quant_params as qp
from scintilab.followup import compare, follow_patient, pcwg3_statuses, register
from scintilab.hotspots import Detection, Hotspot, detect_hotspots
from scintilab.study import Study
from scintilab.synth.phantom import spacing_for
from scintilab.synth.scan import generate_patient, render_study

MATRIX = (512, 128)


def test_pcwg3_two_plus_two() -> None:
    # 2 new at the first follow-up, 2 more six weeks later: confirmed
    assert pcwg3_statuses([60, 120], [2, 4], [None, 2]) == ["unconfirmed", "confirmed"]
    # 2 new at the first follow-up, none more: a flare, not progression
    assert pcwg3_statuses([60, 120], [2, 2], [None, 0]) == ["unconfirmed", "none"]
    # confirmation too early (< 6 weeks)
    assert pcwg3_statuses([60, 90], [3, 6], [None, 3]) == ["unconfirmed", "none"]
    # nothing at the first follow-up, 2 new later versus the first follow-up
    assert pcwg3_statuses([60, 120, 180], [0, 2, 2], [None, 2, 2]) == ["none", "confirmed", "confirmed"]
    assert pcwg3_statuses([60], [1], [None]) == ["none"]


def test_register_recovers_a_translation() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((256, 64))
    img[40:200, 20:44] = 10
    img[100:110, 25:30] = 80
    img = rng.poisson(img).astype(float)
    moved = np.roll(np.roll(img, 5, axis=0), -3, axis=1)
    dr, dc = register(img, moved)
    assert (round(dr), round(dc)) == (-5, 3)


def test_new_lesions_of_a_progressing_patient_are_counted() -> None:
    """Find a progressor in the generator and check new-lesion counts against its truth."""
    for seed in range(20, 60):
        pat = generate_patient(np.random.default_rng([seed, 1]), "ADMet", index=1, matrix=MATRIX, visits=2, seed=seed)
        new = [f for f in pat.lesions if f.first_visit == 1 and f.uptake >= 70]
        if len(new) >= 2 and all(f.first_visit == 0 or f.uptake >= 50 for f in pat.lesions):
            break
    else:  # pragma: no cover - the generator always has progressors
        raise AssertionError("no progressing patient found")
    dets, dates = [], []
    for v in range(2):
        st = render_study(pat, np.random.default_rng([seed, v, 9]), visit=v)
        study = Study(
            study_key=f"S-v{v}",
            patient_key="P-1",
            anterior=st.anterior,
            posterior=st.posterior,
            pixel_spacing=spacing_for(MATRIX),
            study_date=pat.visit_dates[v],
        )
        dets.append(detect_hotspots(study))
        dates.append(pat.visit_dates[v])
    comp = compare(dets[0], dets[1])
    true_new = sum(1 for f in pat.lesions if f.first_visit == 1)
    bright_new = sum(1 for f in pat.lesions if f.first_visit == 1 and f.uptake >= 70)
    assert bright_new - 1 <= len(comp.new) <= true_new + 1, (len(comp.new), bright_new, true_new)
    fu = follow_patient(dets, dates, [1.0, 2.0])
    row = fu.rows[0]
    assert row["days"] == (dates[1] - dates[0]).days and row["bsi_change"] == 1.0
    assert row["pcwg3"] == ("unconfirmed" if len(comp.new) >= 2 else "none")
    # a study compared with itself has nothing new and nothing resolved
    same = compare(dets[0], dets[0])
    assert not same.new and not same.resolved and same.shift == (0.0, 0.0)


def test_single_study_has_no_followup() -> None:
    pat = generate_patient(np.random.default_rng(1), "NoMet", index=1, matrix=MATRIX)
    st = render_study(pat, 2)
    det = detect_hotspots(Study("S-a", "P-a", st.anterior, st.posterior, spacing_for(MATRIX)))
    assert follow_patient([det], [dt.date(2020, 1, 1)], [0.0]).rows == []


def _det(key: str, spots: list[Hotspot]) -> Detection:
    """A detection holding only hand-made hot spots (compared with a given shift)."""
    return Detection(
        study_key=key,
        patient_key="P-1",
        frame="ANT",
        images={"ANT": np.zeros((64, 32), np.float32)},
        atlas={},
        skeleton={},
        references={},
        hotspots=spots,
    )


def _hs(r: float, c: float, p: float, nu: float, area: int = 20) -> Hotspot:
    return Hotspot(
        id=0,
        view="ANT+POST",
        row=r,
        col=c,
        bone="ribs",
        area_px=area,
        peak_counts=10 * nu,
        mean_counts=8 * nu,
        normalized_uptake=nu,
        ap_ratio=1.0,
        p_metastatic=p,
    )


def test_new_means_nothing_there_before_or_a_lesion_appearing_on_faint_uptake() -> None:
    base = _det("S-0", [_hs(10, 10, 0.1, 1.5), _hs(30, 10, 0.3, 2.0), _hs(50, 20, 0.9, 5.0)])
    fu = _det(
        "S-1",
        [
            _hs(10.5, 10, 0.9, 5.0),  # appeared on faint uptake (excess 0.5 -> 4.0): new
            _hs(30, 10.5, 0.7, 2.6),  # a sub-threshold lesion brightening (flare, excess x1.6): not new
            _hs(50, 20, 0.95, 6.0),  # the known lesion: matched, not new
            _hs(20, 25, 0.8, 4.0),  # nothing there at baseline: new
        ],
    )
    comp = compare(base, fu, shift=(0.0, 0.0))
    assert sorted((h.row, h.col) for h in comp.new) == [(10.5, 10), (20, 25)]
    assert not comp.resolved
    # a shift that moves the follow-up away from everything makes every call new
    far = compare(base, fu, shift=(0.0, 200.0))
    assert len(far.new) == 4 and len(far.resolved) == 1


def test_new_and_resolved_are_counted_at_each_detections_own_threshold() -> None:
    """The follow-up counts follow each detection's own endpoint cut unless one is given."""
    base = _det("S-0", [_hs(50, 20, 0.3, 3.0)])
    fu = _det("S-1", [_hs(20, 25, 0.3, 4.0), _hs(50, 20, 0.35, 3.2)])
    assert compare(base, fu, shift=(0.0, 0.0)).new == []  # both below the default 0.5
    for d in (base, fu):
        d.threshold = 0.25  # a lower calling threshold alone does not change the counts
    assert compare(base, fu, shift=(0.0, 0.0)).new == []
    for d in (base, fu):
        d.set_threshold(0.25)  # the endpoint cut does
    low = compare(base, fu, shift=(0.0, 0.0))
    assert [(h.row, h.col) for h in low.new] == [(20, 25)]
    assert compare(base, fu, shift=(0.0, 200.0)).resolved == base.hotspots
    # an explicit threshold overrides the detections' own
    assert compare(base, fu, shift=(0.0, 0.0), threshold=0.5).new == []


def _quiet_det(
    key: str, spots: list[Hotspot], level: float = 10.0, bright: list[tuple[int, int, float]] = ()
) -> Detection:
    """A detection with a flat smoothed image at ``level`` (bone reference ``level``: quiet
    bone reads a normalised uptake of 1) and the given (row, col, normalised uptake) bumps."""
    sm = np.full((64, 32), level, np.float32)
    for r, c, nu in bright:
        sm[r - 1 : r + 2, c - 1 : c + 2] = nu * level
    return Detection(
        study_key=key,
        patient_key="P-1",
        frame="ANT",
        images={"ANT": sm.copy()},
        atlas={},
        skeleton={},
        references={"ANT": {"ribs": level}},
        hotspots=spots,
        smoothed={"ANT": sm},
    )


def _spot(r: int, c: int, p: float, nu: float, kind: str = "", area: int = 9) -> Hotspot:
    return Hotspot(
        id=0,
        view="ANT+POST",
        row=float(r),
        col=float(c),
        bone="ribs",
        area_px=area,
        peak_counts=10 * nu,
        mean_counts=8 * nu,
        normalized_uptake=nu,
        ap_ratio=1.0,
        p_metastatic=p,
        kind=kind,
        bbox=(r - 1, c - 1),
        mask=np.ones((3, 3), bool),
        peak_rc=(r, c),
    )


def test_a_focus_emerging_on_quiet_bone_is_new_even_below_the_endpoint_cut() -> None:
    """Below the endpoint cut, a follow-up focus counts as new when the earlier study showed
    quiet bone there (and it reaches followup.emerged_min_uptake), not when the place was already
    bright, and never when a rule explains it as no bone at all (an injection site)."""

    base = _quiet_det("S-0", [], bright=[(40, 20, 2.4)])
    emerged = _spot(10, 10, 0.2, 3.0)  # quiet bone before (1.0): new
    faint = _spot(20, 10, 0.2, qp.active().followup.emerged_min_uptake - 0.3)  # emerged but too faint to count
    was_there = _spot(40, 20, 0.2, 3.0)  # 2.4 before: excess x1.4, not new
    injection = _spot(55, 25, 0.05, 8.0, kind="injection_site")
    fu = _quiet_det("S-1", [emerged, faint, was_there, injection])
    comp = compare(base, fu, shift=(0.0, 0.0))
    assert [h.row for h in comp.new] == [10.0]
    assert comp.new_lesions == 1
    # the same focus at a place the baseline showed bright is not new
    base_bright = _quiet_det("S-0", [], bright=[(10, 10, 2.6), (40, 20, 2.4)])
    assert compare(base_bright, fu, shift=(0.0, 0.0)).new == []


def test_new_hot_spots_close_on_one_bone_are_one_lesion() -> None:
    """A mottled lesion breaks into several hot spots: new hot spots on one bone within
    followup.same_lesion_mm of each other count once; apart or on another bone they count apart."""
    from scintilab.followup import count_lesions

    gap = qp.active().followup.same_lesion_mm / 2.3
    a, b = _spot(10, 10, 0.9, 5.0), _spot(10, 10 + 2 + int(gap), 0.9, 5.0)  # extents ~gap apart
    far = _spot(40, 10, 0.9, 5.0)
    other_bone = _spot(10, 10 + 2 + int(gap), 0.9, 5.0)
    other_bone.bone = "sternum"
    assert count_lesions([a, b], (64, 32), gap) == 1
    assert count_lesions([a, b, far], (64, 32), gap) == 2
    assert count_lesions([a, other_bone], (64, 32), gap) == 2
    assert count_lesions([a, b], (64, 32), 0.0) == 2
    fu = _quiet_det("S-1", [a, b, far])
    comp = compare(_quiet_det("S-0", []), fu, shift=(0.0, 0.0))
    assert len(comp.new) == 3 and comp.new_lesions == 2


def test_a_new_lesion_merged_with_an_old_one_is_counted() -> None:
    """A new lesion next to an old one can join it in one follow-up hot spot that matches
    the old one; its own peak, far from the old peak on bone that was quiet, makes it new."""
    old = _spot(20, 12, 0.9, 5.0)
    base = _quiet_det("S-0", [old], bright=[(20, 12, 5.0)])
    merged = Hotspot(
        id=0,
        view="ANT+POST",
        row=24.0,
        col=12.0,
        bone="ribs",
        area_px=40,
        peak_counts=50.0,
        mean_counts=40.0,
        normalized_uptake=5.0,
        ap_ratio=1.0,
        p_metastatic=0.95,
        bbox=(18, 10),
        mask=np.ones((14, 5), bool),
        peak_rc=(20, 12),
    )
    fu = _quiet_det("S-1", [merged], bright=[(20, 12, 5.2), (29, 12, 4.0)])
    comp = compare(base, fu, shift=(0.0, 0.0))
    assert comp.matched and comp.new_lesions == 1
    # the same hot spot with only the old lesion in it: matched, nothing new
    fu_old = _quiet_det("S-1", [merged], bright=[(20, 12, 5.2)])
    assert compare(base, fu_old, shift=(0.0, 0.0)).new_lesions == 0


def test_what_was_there_before_is_read_at_the_new_peak_not_over_the_whole_new_spot() -> None:
    """The earlier study is read within followup.place_radius_px of the new peak (the registration's
    uncertainty): a large new lesion beside a bright old one is new, though its own radius
    reaches the old one's uptake; a focus where the earlier study was bright is not."""

    old = _spot(20, 16, 0.9, 5.0)
    area = 150  # radius ~7 px: a box that wide around the new peak holds the old lesion
    big = Hotspot(
        id=0,
        view="ANT+POST",
        row=27.0,
        col=16.0,
        bone="ribs",
        area_px=area,
        peak_counts=40.0,
        mean_counts=32.0,
        normalized_uptake=4.0,
        ap_ratio=1.0,
        p_metastatic=0.9,
        bbox=(21, 10),
        mask=np.ones((12, 12), bool),
        peak_rc=(27, 16),
    )
    assert 27 - 20 > qp.active().followup.place_radius_px + 1 and 27 - 20 <= int(round(np.sqrt(area / np.pi)))
    base = _quiet_det("S-0", [old], bright=[(20, 16, 5.0)])
    fu = _quiet_det("S-1", [_spot(20, 16, 0.9, 5.0), big], bright=[(20, 16, 5.0), (27, 16, 4.0)])
    comp = compare(base, fu, shift=(0.0, 0.0))
    assert [h.row for h in comp.new] == [27.0] and comp.new_lesions == 1
    # bright before within the registration's reach of the peak: not new
    base_there = _quiet_det("S-0", [old], bright=[(20, 16, 5.0), (27 - qp.active().followup.place_radius_px, 16, 3.0)])
    assert compare(base_there, fu, shift=(0.0, 0.0)).new == []
