"""Hot-spot detection on the synthetic generator's studies, checked against its truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from scintilab import hotspot_rules as rmod
from scintilab import quant_params as qp
from scintilab.anatomy import BONES
from scintilab.errors import InputError
from scintilab.hotspots import (
    METASTATIC_P,
    Hotspot,
    HotspotModel,
    annotation_labels,
    choose_threshold,
    detect_hotspots,
    rule_kind,
    train_hotspot_model,
    uptake_probability,
)
from scintilab.study import Study
from scintilab.synth.phantom import spacing_for
from scintilab.synth.scan import generate_patient, render_study

MATRIX = (512, 128)


def _study(label: str, seed: int, scale: float = 1.0, visits: int = 1, visit: int = 0):
    pat = generate_patient(np.random.default_rng([seed, 1]), label, index=1, matrix=MATRIX, visits=visits, seed=seed)
    st = render_study(pat, np.random.default_rng([seed, 2, visit]), visit=visit)
    ant = st.anterior.astype(float) * scale
    post = st.posterior.astype(float) * scale
    study = Study(
        study_key=f"S-test{seed}",
        patient_key="P-test",
        anterior=ant.astype(np.uint16),
        posterior=post.astype(np.uint16),
        pixel_spacing=spacing_for(MATRIX),
        shapes=st.shapes,
    )
    return study, st


@pytest.fixture(scope="module")
def metastatic():
    return _study("ADMet", 3)


def test_bright_lesions_are_found_and_called(metastatic) -> None:
    study, truth = metastatic
    det = detect_hotspots(study)
    assert det.hotspots, "no hot spots at all"
    found = 0
    big = [les for les in truth.lesions if les["uptake"] >= 60 and les["pixels"] >= 4]
    assert big, "the generator gave this patient no bright lesion; pick another seed"
    for les in big:
        zone = ndi.binary_dilation(truth.lesion_maps == int(les["id"][1:]), iterations=2)
        if any((h.full_mask(det.shape) & zone).any() and h.metastatic for h in det.hotspots):
            found += 1
    assert found / len(big) >= 0.75, f"only {found}/{len(big)} bright lesions called metastatic"
    for h in det.hotspots:
        assert 0 <= h.row < det.shape[0] and 0 <= h.col < det.shape[1]
        assert 0.0 <= h.p_metastatic <= 1.0
        assert h.view in ("ANT", "POST", "ANT+POST")


def test_uptake_is_normalised_to_the_patients_own_bone(metastatic) -> None:
    """A dim scan (a third of the counts) reads the same normalised uptake."""
    study, _ = metastatic
    bright = detect_hotspots(study)
    dim_study = Study(
        study_key="S-dim",
        patient_key="P-test",
        anterior=np.random.default_rng(0).binomial(study.anterior, 1 / 3).astype(np.uint16),
        posterior=np.random.default_rng(1).binomial(study.posterior, 1 / 3).astype(np.uint16),
        pixel_spacing=study.pixel_spacing,
    )
    dim = detect_hotspots(dim_study)
    top = [h for h in bright.hotspots if h.metastatic][:3]
    assert top
    for h in top:
        near = min(dim.hotspots, key=lambda d: np.hypot(d.row - h.row, d.col - h.col))
        assert np.hypot(near.row - h.row, near.col - h.col) < 6
        assert near.peak_counts < 0.5 * h.peak_counts  # counts really are lower
        assert abs(np.log(near.normalized_uptake / h.normalized_uptake)) < np.log(1.35)


def test_default_rules_damp_benign_confounders() -> None:
    """Injection site and bladder come out with a low probability, by rule."""
    study, truth = _study("NoMet", 5)
    det = detect_hotspots(study)
    inj = next(b for b in truth.benign if b["shape"] == "injection_site")
    r, c = inj["center_rc"]
    near = [h for h in det.hotspots if np.hypot(h.row - r, h.col - c) < 8]
    assert near, "the injection site was not detected at all"
    assert all(h.p_metastatic < 0.5 for h in near)
    assert any(h.kind in ("injection_site", "soft_tissue") for h in near)
    kinds = {rule_kind(det, h) for h in det.hotspots}
    assert "bladder" in kinds or det.bladder is None or not det.bladder.any()
    called = [h for h in det.hotspots if h.metastatic]
    assert len(called) <= 3, f"{len(called)} metastatic calls on a patient without metastases"


def test_uptake_probability_is_monotone() -> None:
    values = [uptake_probability(x) for x in (1.0, 1.5, 2.0, 3.0, 6.0)]
    assert values == sorted(values) and values[0] < 0.2 and values[-1] > 0.9


def test_learned_model_trains_saves_loads_and_replaces_rules(tmp_path, metastatic) -> None:
    dets, labs = [], []
    for seed, label in ((3, "ADMet"), (7, "nADMet"), (5, "NoMet")):
        study, _ = metastatic if seed == 3 else _study(label, seed)
        det = detect_hotspots(study)
        dets.append(det)
        labs.append(annotation_labels(det, study))
    assert sum(map(sum, labs)) > 0, "no hot spot matched an annotated lesion"
    model = train_hotspot_model(dets, labs)
    path = model.save(tmp_path / "hs.json")
    back = HotspotModel.load(path)
    p = back.predict([h.features for h in dets[0].hotspots])
    assert np.allclose(p, model.predict([h.features for h in dets[0].hotspots]))
    # on its own training data the model ranks annotated lesions above the rest
    y = np.concatenate([np.array(lab) for lab in labs])
    pp = np.concatenate([back.predict([h.features for h in d.hotspots]) for d in dets])
    assert pp[y == 1].mean() > pp[y == 0].mean() + 0.2
    det2 = detect_hotspots(metastatic[0], model=back)
    assert np.allclose([h.p_metastatic for h in det2.hotspots], back.predict([h.features for h in det2.hotspots]))
    # the operating threshold belongs to the active classifier: the rules' own cut, the
    # model's (folded into its intercept, so 0.5 on its outputs), and every call follows it
    assert (
        dets[0].threshold == qp.active().rules.metastatic_p
        and dets[0].endpoint_threshold == qp.active().rules.endpoint_p
    )
    assert back.threshold == METASTATIC_P and det2.threshold == det2.endpoint_threshold == back.threshold
    for d in (dets[0], det2):
        assert [h.metastatic for h in d.hotspots] == [h.p_metastatic >= d.threshold for h in d.hotspots]
        assert d.metastatic() == [h for h in d.hotspots if h.metastatic]
        assert all(r["metastatic"] == int(h.metastatic) for r, h in zip(d.table(), d.hotspots))


def test_operating_threshold_is_chosen_out_of_fold_and_folded_into_the_model(metastatic) -> None:
    # choose_threshold: the lowest cut whose false positives per scan stay in the budget
    p = np.array([0.9, 0.8, 0.35, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 1, 0, 0, 1])
    t, fp, called = choose_threshold(p, y, n_scans=2, max_fp_per_scan=0.5)
    assert t == pytest.approx(0.21) and fp == 0.5 and called == pytest.approx(0.75)
    t, fp, _ = choose_threshold(p, y, n_scans=2, max_fp_per_scan=0.0)
    assert t == pytest.approx(0.31) and fp == 0.0
    # three patients: folds by patient, threshold chosen on them and shifted into the intercept
    dets, labs = [], []
    for seed, label in ((3, "ADMet"), (7, "nADMet"), (5, "ADMet")):
        study, _ = metastatic if seed == 3 else _study(label, seed)
        study.patient_key = f"P-{seed}"
        det = detect_hotspots(study)
        det.patient_key = study.patient_key
        dets.append(det)
        labs.append(annotation_labels(det, study))
    model = train_hotspot_model(dets, labs, folds=3)
    info = model.info
    assert info["folds"] == 3 and info["patients"] == 3 and 0 < info["raw_threshold"] < 1
    # the saved intercept is the fitted one minus logit(threshold): p >= 0.5 <=> raw p >= threshold
    t = info["raw_threshold"]
    feats = [h.features for h in dets[0].hotspots]
    x = np.array([[f.get(k, 0.0) for k in model.features] for f in feats])
    z = ((x - np.array(model.mean)) / np.array(model.scale)) @ np.array(model.coef) + model.intercept
    raw = 1 / (1 + np.exp(-(z + np.log(t / (1 - t)))))
    assert np.array_equal(model.predict(feats) >= 0.5, raw >= t - 1e-12)


def test_bad_model_file_and_empty_study_are_input_errors(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "something else"}')
    with pytest.raises(InputError, match="bad.json"):
        HotspotModel.load(bad)
    empty = Study(study_key="S-empty", patient_key="P-x", anterior=np.zeros((256, 64), np.uint16), posterior=None)
    with pytest.raises(InputError, match="S-empty"):
        detect_hotspots(empty)


def test_single_view_study_is_quantified(metastatic) -> None:
    study, _ = metastatic
    ant_only = Study(
        study_key="S-ant",
        patient_key="P-test",
        anterior=study.anterior,
        posterior=None,
        pixel_spacing=study.pixel_spacing,
    )
    det = detect_hotspots(ant_only)
    assert det.frame == "ANT" and det.hotspots
    assert all(h.view == "ANT" and not np.isfinite(h.ap_ratio) for h in det.hotspots)


def _spot(r: int, c: int, nu: float) -> Hotspot:
    """A small hand-made rib hot spot (2 x 5 pixels) for the rule tests."""
    return Hotspot(
        id=0,
        view="ANT+POST",
        row=float(r),
        col=float(c),
        bone="ribs",
        area_px=10,
        peak_counts=100.0,
        mean_counts=80.0,
        normalized_uptake=nu,
        ap_ratio=1.0,
        bbox=(r - 1, c - 2),
        mask=np.ones((2, 5), bool),
        contrast=float("nan"),
        peak_rc=(r, c),
    )


def test_rib_rules_need_a_partner_of_similar_intensity(metastatic) -> None:
    """Mirror-image or lined-up rib foci are benign only when they share their intensity:
    a focus three times brighter than its partner is a lesion, not normal anatomy."""
    det = detect_hotspots(metastatic[0])
    lm = det.atlas["ANT"].landmarks
    bmap = det.bone_map()
    rib = BONES.index("ribs") + 1
    found = None
    for r, c in zip(*np.nonzero(bmap == rib)):
        mid = float(lm.midline(r))
        mc = int(round(2 * mid - c))
        if c < mid - 25 and 0 <= mc < bmap.shape[1] and bmap[r, mc] == rib and r + 12 < bmap.shape[0]:
            found = (int(r), int(c), mc)
            break
    assert found is not None, "the atlas drew no ribs on both sides"
    r, c, mc = found
    a, mirror = _spot(r, c, 3.0), _spot(r, mc, 3.3)
    det.hotspots = [a, mirror]
    assert rule_kind(det, a) == "symmetric_anatomy"
    mirror.normalized_uptake = 12.0
    assert rule_kind(det, a) == ""
    # mirror-image foci both far hotter than normal anatomy gets: bilateral lesions
    a.normalized_uptake, mirror.normalized_uptake = 6.0, 6.5
    assert rule_kind(det, a) == ""
    a.normalized_uptake = 3.0
    below = _spot(r + 10, c, 3.2)
    det.hotspots = [a, below]
    assert rule_kind(det, a) == "rib_fracture_line"
    below.normalized_uptake = 12.0
    assert rule_kind(det, a) == ""


def test_second_focal_hand_spot_and_elongated_lumbar_spot_are_not_explained_away(metastatic) -> None:
    """One injection per scan: a second, focal forearm/hand hot spot (e.g. a femoral lesion
    the atlas gives to the hand lying beside it) is judged like bone; a lumbar focus at the
    column's edge is an osteophyte only when small and round, not when elongated."""
    det = detect_hotspots(metastatic[0])
    bmap = det.bone_map()
    lm = det.atlas["ANT"].landmarks
    hands = [rc for rc in np.argwhere(bmap == BONES.index("hands") + 1) if 3 <= rc[1] < bmap.shape[1] - 6]
    (r1, c1), (r2, c2) = hands[0], hands[-1]
    inj, other = _spot(int(r1), int(c1), 30.0), _spot(int(r2), int(c2), 5.0)
    inj.bone, other.bone, inj.peak_counts, other.peak_counts = "hands", "hands", 900.0, 120.0
    det.hotspots = [inj, other]
    inj.contrast, other.contrast = 8.0, 6.0
    assert rule_kind(det, inj) == "injection_site"
    assert rule_kind(det, other) == ""
    other.contrast = 1.2  # like the wrist on the other side: normal arm uptake
    assert rule_kind(det, other) == "injection_site"
    spine_half = 0.095 * lm.half_width
    lumbar = [
        (int(r), int(c))
        for r, c in np.argwhere(bmap == BONES.index("lumbar_spine") + 1)
        if abs(c - float(lm.midline(r))) > 0.8 * spine_half
    ]
    assert lumbar, "the atlas drew no lumbar column"
    r, c = lumbar[len(lumbar) // 2]
    # at this matrix (4.6 mm pixels) the 40-pixel bound at 2.3 mm is 10 pixels
    round_spot = Hotspot(
        id=0,
        view="ANT+POST",
        row=float(r),
        col=float(c),
        bone="lumbar_spine",
        area_px=9,
        peak_counts=100.0,
        mean_counts=80.0,
        normalized_uptake=3.0,
        ap_ratio=0.4,
        bbox=(r - 1, c - 1),
        mask=np.ones((3, 3), bool),
        contrast=3.0,
        peak_rc=(r, c),
    )
    det.hotspots = [round_spot]
    assert rule_kind(det, round_spot) == "lumbar_facet"
    long_spot = Hotspot(
        id=0,
        view="ANT+POST",
        row=float(r),
        col=float(c),
        bone="lumbar_spine",
        area_px=9,
        peak_counts=100.0,
        mean_counts=80.0,
        normalized_uptake=3.0,
        ap_ratio=0.4,
        bbox=(r - 4, c),
        mask=np.ones((9, 1), bool),
        contrast=3.0,
        peak_rc=(r, c),
    )
    det.hotspots = [long_spot]
    assert rule_kind(det, long_spot) == ""


def _on(det, bone: str, area: int, nu: float, ap: float) -> Hotspot:
    """A hand-made round hot spot centred on a pixel of ``bone`` in the atlas."""
    bmap = det.bone_map()
    pts = [
        rc
        for rc in np.argwhere(bmap == BONES.index(bone) + 1)
        if 3 <= rc[0] < bmap.shape[0] - 3 and 3 <= rc[1] < bmap.shape[1] - 3
    ]
    r, c = (int(v) for v in pts[len(pts) // 2])
    return Hotspot(
        id=0,
        view="ANT+POST",
        row=float(r),
        col=float(c),
        bone=bone,
        area_px=area,
        peak_counts=100.0,
        mean_counts=80.0,
        normalized_uptake=nu,
        ap_ratio=ap,
        bbox=(r - 1, c - 1),
        mask=np.ones((3, 3), bool),
        contrast=float("nan"),
        peak_rc=(r, c),
    )


def test_depth_and_size_rules_for_face_thigh_and_pelvis(metastatic) -> None:
    """Front-heavy moderate skull / femur foci and large moderate pelvic areas are normal
    anatomy; the same places read as lesions when mid-depth, small or much hotter."""
    det = detect_hotspots(metastatic[0])
    scale = 2.3**2 / (det.spacing[0] * det.spacing[1])
    face, skull_lesion = _on(det, "skull", 40, 2.5, 2.2), _on(det, "skull", 40, 2.5, 1.0)
    thigh, femur_lesion = _on(det, "femora", 20, 2.8, 1.8), _on(det, "femora", 20, 2.8, 1.0)
    big = int(200 * scale) + 1
    sij, pelvic_lesion = _on(det, "pelvis", big, 3.0, 0.4), _on(det, "pelvis", big, 6.0, 0.4)
    for h in (face, skull_lesion, thigh, femur_lesion, sij, pelvic_lesion):
        det.hotspots = [h]
        h.contrast = 3.0
        kind = rule_kind(det, h)
        expected = {id(face): "facial_bones", id(thigh): "anterior_thigh", id(sij): "pelvic_anatomy"}.get(id(h), "")
        assert kind == expected, (h.bone, h.ap_ratio, h.normalized_uptake, kind)


def test_skull_focus_seen_in_both_views_reads_the_calvarium_gain(metastatic) -> None:
    """A skull focus seen from front and back is on the calvarium, whose en-face level lies
    below the rim-set skull reference: its uptake term reads rules.skull_both_views_gain times
    its normalised uptake. Seen in one view only (the face), or explained by a rule, it
    does not."""
    import scintilab.hotspots as hmod

    det = detect_hotspots(metastatic[0])
    both, front = _on(det, "skull", 40, 2.1, 1.0), _on(det, "skull", 40, 2.1, 1.0)
    front.view = "ANT"
    face = _on(det, "skull", 40, 2.1, 2.2)  # front-heavy: facial_bones
    det.hotspots = [both, front, face]
    p_both, kind = hmod.rule_probability(det, both)
    assert kind == "" and p_both == pytest.approx(uptake_probability(qp.active().rules.skull_both_views_gain * 2.1))
    p_front, _ = hmod.rule_probability(det, front)
    assert p_front == pytest.approx(uptake_probability(2.1))
    assert p_front < qp.active().rules.endpoint_p <= p_both
    p_face, kind = hmod.rule_probability(det, face)
    assert kind == "facial_bones" and p_face == pytest.approx(uptake_probability(2.1) * hmod.RULES[kind][0])


def test_spine_uptake_term_uses_the_neighbouring_vertebrae(metastatic) -> None:
    """On the spine a focus brighter than the vertebrae above and below than its (possibly
    tumour-raised) bone median reads the neighbours' contrast, capped at rules.neighbour_max_gain
    times its normalised uptake; off the spine the normalised uptake alone is the term."""
    import scintilab.hotspots as hmod

    det = detect_hotspots(metastatic[0])
    spine, pelvis = _on(det, "thoracic_spine", 20, 1.0, 0.4), _on(det, "pelvis", 20, 1.0, 0.8)
    det.hotspots = [spine, pelvis]
    con = hmod.local_contrast(det, spine)
    assert np.isfinite(con) and con > 0
    nu = con / 1.3  # the neighbours say the focus is brighter than its bone median does
    spine.normalized_uptake = pelvis.normalized_uptake = nu
    p_spine, kind = hmod.rule_probability(det, spine)
    assert kind == ""
    assert p_spine == pytest.approx(
        uptake_probability(min(con, qp.active().rules.neighbour_max_gain * nu)) * hmod.contrast_probability(con)
    )
    assert p_spine > uptake_probability(nu) * hmod.contrast_probability(con)
    p_pelvis, _ = hmod.rule_probability(det, pelvis)
    assert p_pelvis == pytest.approx(
        uptake_probability(nu)
        * hmod.contrast_probability(pelvis.contrast)
        * (hmod.RULES[pelvis.kind][0] if pelvis.kind else 1.0)
    )


def test_spine_neighbours_leave_out_rows_of_other_bright_hot_spots(metastatic) -> None:
    """The vertebrae above and below stand for normal bone: rows that another hot spot at
    least rules.uptake_midpoint times its bone crosses (a second piece of the same lesion, the
    next lesion) are left out of the neighbours; a fainter hot spot there stays in."""
    import scintilab.hotspots as hmod

    det = detect_hotspots(metastatic[0])
    spot = _on(det, "lumbar_spine", 20, 3.0, 1.0)
    view = spot.best_view
    r, c = spot.peak_rc
    near, far = int(round(30.0 / det.spacing[0])), int(round(90.0 / det.spacing[0]))
    wc = max(2, int(round(10.0 / det.spacing[1])))
    c_lo, c_hi = max(c - wc, 0), c + wc + 1
    sm = det.smoothed[view].copy()
    below = np.arange(r + near, r + far)  # the whole lower band: a lesion three times as bright
    sm[below, c_lo:c_hi] *= 3.0
    det.smoothed = {**det.smoothed, view: sm}
    neighbour = _on(det, "lumbar_spine", int(below.size * (c_hi - c_lo)), qp.active().rules.uptake_midpoint, 1.0)
    neighbour.bbox, neighbour.mask = (int(below[0]), c_lo), np.ones((below.size, c_hi - c_lo), bool)
    above = np.arange(r - far, r - near)
    only_above = float(sm[r, c]) / float(np.median(sm[above, c_lo:c_hi].max(axis=1)))
    both = float(sm[r, c]) / float(np.median(sm[np.r_[above, below], c_lo:c_hi].max(axis=1)))
    assert both < only_above
    det.hotspots = [spot, neighbour]
    assert hmod.local_contrast(det, spot) == pytest.approx(only_above)
    neighbour.normalized_uptake = qp.active().rules.uptake_midpoint - 0.1  # faint: may be normal bone
    assert hmod.local_contrast(det, spot) == pytest.approx(both)


def test_lesions_on_both_femoral_shafts_at_one_height_are_focal(metastatic) -> None:
    """On a femoral shaft whose mirror image holds a bright hot spot, focality is also read
    along the bone: two lesions at one height are each focal, though each matches its
    mirror. A faint mirror hot spot, or the same pair at the knee, keeps the mirror contrast."""
    import scintilab.hotspots as hmod

    det = detect_hotspots(metastatic[0])
    atlas = det.atlas["ANT"]
    lm = atlas.landmarks
    lo = float(lm.bladder) + 0.25 * (lm.knee - lm.bladder)
    hi = float(lm.knee) - 0.25 * (lm.knee - lm.bladder)
    r = int(round(0.5 * (lo + hi)))
    fem = np.flatnonzero(det.bone_map()[r] == BONES.index("femora") + 1)
    mid = rmod._row_midline(atlas.body, r)
    left = fem[fem < mid]
    c = int(left[np.argmax(det.smoothed["ANT"][r, left])])  # the shaft: the row's brightest femur pixel
    mc = int(round(2 * mid - c))
    sm = det.smoothed["ANT"].copy()
    for cc in (c, mc):
        sm[r - 2 : r + 3, cc - 2 : cc + 3] += 3.0 * float(sm[r, cc])
    det.smoothed = {**det.smoothed, "ANT": sm}
    spot, partner = _on(det, "femora", 20, 3.0, 1.0), _on(det, "femora", 20, 3.0, 1.0)
    for h, cc in ((spot, c), (partner, mc)):
        h.row, h.col, h.peak_rc, h.bbox, h.view = float(r), float(cc), (r, cc), (r - 1, cc - 1), "ANT"
    det.hotspots = [spot, partner]
    assert rmod._on_shaft(det, spot) and rmod._mirror_partner(det, spot, *hmod.atlas_uv(det, spot), min_uptake=3.0)
    wr = max(2, int(round(10.0 / det.spacing[0])))
    wc = max(2, int(round(10.0 / det.spacing[1])))
    mirror = float(sm[r, c]) / float(sm[r - wr : r + wr + 1, mc - wc : mc + wc + 1].max())
    assert mirror < 1.5  # each lesion matches its mirror
    focal = hmod.local_contrast(det, spot)
    assert focal > 2.5 and focal == pytest.approx(hmod.local_contrast(det, partner), rel=0.3)
    p, kind = hmod.rule_probability(det, spot)
    assert kind == "" and p >= qp.active().rules.metastatic_p
    partner.normalized_uptake = qp.active().rules.uptake_midpoint - 0.2  # a faint mirror may be normal bone
    assert hmod.local_contrast(det, spot) == pytest.approx(mirror)
    partner.normalized_uptake = 3.0
    knee = int(round(lm.knee))
    for h in (spot, partner):  # the same pair at the knee: joint disease's place
        h.row = float(knee)
    assert not rmod._on_shaft(det, spot)


def test_a_very_bright_focus_is_not_explained_away_by_its_mirror_image(metastatic, monkeypatch) -> None:
    """The focality term stands for normal symmetric anatomy, which stays moderate: from
    rules.focality_waiver_uptake it damps at most to rules.focality_waiver_floor, below it fully."""
    import scintilab.hotspots as hmod

    det = detect_hotspots(metastatic[0])
    spot = _on(det, "pelvis", 20, qp.active().rules.focality_waiver_uptake + 2.0, 0.8)
    det.hotspots = [spot]
    monkeypatch.setattr(rmod, "local_contrast", lambda d, h: 1.0)  # a mirror image as bright
    p_bright, kind = hmod.rule_probability(det, spot)
    assert kind == ""
    assert p_bright == pytest.approx(
        uptake_probability(spot.normalized_uptake) * qp.active().rules.focality_waiver_floor
    )
    assert p_bright >= qp.active().rules.metastatic_p
    spot.normalized_uptake = qp.active().rules.focality_waiver_uptake - 0.5
    p_moderate, _ = hmod.rule_probability(det, spot)
    assert p_moderate == pytest.approx(uptake_probability(spot.normalized_uptake) * hmod.contrast_probability(1.0))
    assert p_moderate < qp.active().rules.metastatic_p


def test_mirror_image_stays_on_the_body_when_one_hand_lies_further_out(metastatic) -> None:
    """A hand lying further out on one side skews the row's outline; where the mirror image
    of a hot spot then falls off the body, the atlas's midline gives the mirror place."""
    import scintilab.hotspots as hmod

    det = detect_hotspots(metastatic[0])
    atlas = det.atlas["ANT"]
    spot = _on(det, "femora", 20, 3.0, 1.0)
    r, c = spot.peak_rc
    mid = float(atlas.landmarks.midline(r))
    if c < mid:  # put the spot right of the midline, the far hand on the left edge
        c = int(round(2 * mid - c))
        spot.peak_rc, spot.col = (r, c), float(c)
    body = atlas.body.copy()
    body[max(r - 8, 0) : r + 9, 0:2] = True  # the far hand, at the image edge
    atlas.body = body
    det.hotspots = [spot]
    skewed = rmod._row_midline(body, r)
    assert skewed is not None and not body[r, int(round(2 * skewed - c))], "the test needs the mirror off the body"
    sm = det.smoothed["ANT"]
    wr = max(2, int(round(10.0 / det.spacing[0])))
    wc = max(2, int(round(10.0 / det.spacing[1])))
    mc = int(round(2 * mid - c))
    expected = float(sm[r, c]) / float(sm[max(r - wr, 0) : r + wr + 1, max(mc - wc, 0) : mc + wc + 1].max())
    assert hmod.local_contrast(det, spot) == pytest.approx(expected)


def test_an_area_holding_two_hot_spots_gives_two() -> None:
    """A lesion joined to a far brighter area (the bladder, another lesion) by a bridge of
    uptake is one area above the detection threshold; once the bright hot spot is taken
    out, the lesion is a hot spot of its own, while the shoulder of a single bright blob
    (the brightest pixel left lies next to it) is not."""
    import scintilab.hotspots as hmod

    rr, cc = np.mgrid[0:80, 0:60]
    ref = np.full((80, 60), 10.0)
    pair = ref.copy()
    pair[(rr - 40) ** 2 + (cc - 20) ** 2 <= 25] = 200.0  # 20x its bone
    pair[(rr - 40) ** 2 + (cc - 40) ** 2 <= 9] = 50.0  # 5x
    pair[40, 20:40] = np.maximum(pair[40, 20:40], 20.0)  # a bridge at 2x
    assert ndi.label(pair / ref >= 1.6)[1] == 1
    two = hmod._segment("ANT", pair, pair, ref, 1.6, 3)
    assert len(two) == 2 and sorted(round(r["norm"]) for r in two) == [5, 20]
    lesion = min(two, key=lambda r: r["norm"])
    assert abs(lesion["row"] - 40) < 1 and abs(lesion["col"] - 40) < 1
    with qp.using(qp.QuantParams().replace({"detection.split_peaks": False})):
        assert len(hmod._segment("ANT", pair, pair, ref, 1.6, 3)) == 1
    blob = ref + 200.0 * np.exp(-((rr - 40) ** 2 + (cc - 30) ** 2) / 32.0)
    assert len(hmod._segment("ANT", blob, blob, ref, 1.6, 3)) == 1
    # nor does Poisson noise on it
    rng = np.random.default_rng(0)
    noisy = ndi.gaussian_filter(rng.poisson(blob * 3.0) / 3.0, 1.0)
    assert len(hmod._segment("ANT", noisy, noisy, ref, 1.6, 3)) == 1
