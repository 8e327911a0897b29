"""Bone Scan Index: arithmetic, agreement statistics, and against the generator's truth."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from scintilab.anatomy import BONE_MASS_FRACTION, BONES
from scintilab.bsi import bland_altman, compute_bsi, lesion_extent, repeatability
from scintilab.hotspots import detect_hotspots
from scintilab.study import Study
from scintilab.synth.phantom import spacing_for
from scintilab.synth.scan import generate_patient, render_study

MATRIX = (512, 128)


def _quant(label: str, seed: int):
    pat = generate_patient(np.random.default_rng([seed, 1]), label, index=1, matrix=MATRIX, seed=seed)
    st = render_study(pat, np.random.default_rng([seed, 2]))
    study = Study(study_key=f"S-{seed}", patient_key="P-1", anterior=st.anterior, posterior=st.posterior,
                  pixel_spacing=spacing_for(MATRIX))
    det = detect_hotspots(study)
    return det, compute_bsi(det), st


def test_bsi_is_the_mass_weighted_sum_of_involved_fractions() -> None:
    det, res, _ = _quant("ADMet", 3)
    total = sum(100 * res.per_bone[b]["involved_fraction"] * BONE_MASS_FRACTION[b] for b in BONES)
    assert res.bsi == pytest.approx(total)
    assert res.bsi == pytest.approx(sum(res.per_bone[b]["bsi"] for b in BONES))
    assert res.hotspots_total == len(det.hotspots)
    assert res.hotspots_metastatic == sum(res.per_bone[b]["hotspots_metastatic"] for b in BONES) + sum(
        1 for h in det.hotspots if h.bone is None and h.metastatic)
    row = res.row()
    assert {f"bsi_{b}" for b in BONES} <= set(row) and {f"hotspots_{b}" for b in BONES} <= set(row)
    # by default the classifier's own cuts: involvement from its endpoint cut, the
    # metastatic counts at its calling threshold (the rules: two different cuts)
    assert res.threshold == det.endpoint_threshold and res.call_threshold == det.threshold
    assert res.bsi == pytest.approx(compute_bsi(det, threshold=det.endpoint_threshold).bsi)
    assert res.hotspots_metastatic == len(det.metastatic())
    # raising the cut can only lower the BSI, given or set on the detection
    assert compute_bsi(det, threshold=0.99).bsi <= res.bsi
    det.set_threshold(0.99)
    assert compute_bsi(det).bsi == pytest.approx(compute_bsi(det, threshold=0.99).bsi)


def test_bsi_tracks_the_true_bsi() -> None:
    """Metastatic patients score above patients without metastases, near their true BSI."""
    pairs = [(_quant(lab, s)[1].bsi, _quant(lab, s)[2].true_bsi) for lab, s in
             (("ADMet", 3), ("nADMet", 7), ("NoMet", 5), ("ADMet", 11))]
    meas = np.array([p[0] for p in pairs])
    true = np.array([p[1] for p in pairs])
    assert meas[2] < min(meas[0], meas[1], meas[3])
    assert np.all(np.abs(meas - true) < np.maximum(1.0, 0.6 * true))


def test_bland_altman_and_repeatability_statistics() -> None:
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    out = bland_altman(t + 0.5, t)
    assert out["bias"] == pytest.approx(0.5) and out["sd"] == pytest.approx(0.0) and out["pearson_r"] == pytest.approx(1)
    noisy = bland_altman(t + np.array([0.1, -0.1, 0.2, -0.2, 0.0]), t)
    assert noisy["loa_low"] < noisy["bias"] < noisy["loa_high"]
    rep = repeatability([1.0, 1.2, 0.8])
    assert rep["sd"] == pytest.approx(0.2) and rep["mean"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        bland_altman([1, 2], [1, 2])


def test_bsi_extent_is_the_hot_spot_around_its_peak() -> None:
    """Each metastatic hot spot's BSI extent holds its peak, stays near its mask, and a
    higher level (a tighter extent) can only shrink it."""
    det, res, _ = _quant("ADMet", 3)
    called = [h for h in det.hotspots if h.metastatic and h.bone is not None]
    assert called
    for h in called:
        ext = lesion_extent(det, h)
        assert ext[h.peak_rc]
        near = ndi.binary_dilation(h.full_mask(det.shape), iterations=3)
        assert not (ext & ~near).any()
        tight = lesion_extent(det, h, level=0.8)
        assert tight.sum() <= ext.sum() and not (tight & ~ext).any()
    assert res.bsi > 0


def test_skull_denominator_is_its_whole_template() -> None:
    """The skull's BSI denominator is the atlas template's skull area (the skeleton mask
    misses the dim calvarium), so a skull involvement fraction is not inflated."""
    from scintilab.bsi import TEMPLATE_DENOMINATOR

    det, res, _ = _quant("ADMet", 3)
    bmap = det.bone_map()
    assert "skull" in TEMPLATE_DENOMINATOR
    skull_id = BONES.index("skull") + 1
    assert res.per_bone["skull"]["bone_px"] >= int((bmap == skull_id).sum())
    skel_only = int((bmap[det.skeleton_union()] == skull_id).sum())
    assert res.per_bone["skull"]["bone_px"] > skel_only, "skeleton mask covered the whole skull template"


def test_depth_partners_count_their_full_projection() -> None:
    """The thoracic spine reads the posterior drawing order (in front of the sternum
    there), the sternum the anterior one, so neither loses the pixels they share."""
    from scintilab.bsi import depth_maps, front_view

    assert front_view("thoracic_spine") == "POST" and front_view("sternum") == "ANT"
    assert front_view("femora") == "ANT"
    det, res, _ = _quant("ADMet", 3)
    maps = depth_maps(det)
    skel = det.skeleton_union()
    t = BONES.index("thoracic_spine") + 1
    behind = int((skel & (maps["POST"] == t)).sum())
    assert res.per_bone["thoracic_spine"]["bone_px"] >= behind > int((skel & (maps["ANT"] == t)).sum())


def test_scapula_denominator_includes_the_part_the_ribs_hide() -> None:
    """The ribs are drawn over the scapulae in the exclusive bone map; the scapulae's
    denominator is their whole projection on bone, so it holds the hidden part too."""
    from scintilab.bsi import FULL_PROJECTION_DENOMINATOR, depth_maps, full_projection, involvement_by_view

    assert "scapulae" in FULL_PROJECTION_DENOMINATOR
    det, res, _ = _quant("ADMet", 3)
    s = BONES.index("scapulae") + 1
    full = full_projection(det.atlas["ANT"], "scapulae")
    exclusive = depth_maps(det)["ANT"] == s
    assert not (exclusive & ~full).any(), "the exclusive scapula pixels lie outside its full projection"
    bv = involvement_by_view(det)
    bone = det.skeleton_union() | bv["ANT"] | bv["POST"]
    assert res.per_bone["scapulae"]["bone_px"] == int((full & bone).sum())
    assert res.per_bone["scapulae"]["bone_px"] > 1.5 * int((exclusive & bone).sum()), "ribs hid little of the scapulae"


def test_healthy_reference_leaves_hot_spots_out() -> None:
    """The extent's reference is the bone's level away from hot spots: never above the
    detection's median of all skeleton pixels, and below it on some involved bone."""
    from scintilab.bsi import healthy_references
    from scintilab.hotspots import reference_image

    det, _, _ = _quant("ADMet", 3)
    healthy = healthy_references(det)
    assert set(healthy) == set(det.smoothed)
    lower = False
    for v, ref in healthy.items():
        full = reference_image(det.references[v], det.atlas[v].bone_map())
        assert np.all(ref <= full + 1e-6)
        for h in det.hotspots:
            if h.metastatic and h.best_view == v:
                lower |= bool(ref[h.peak_rc] < full[h.peak_rc] - 1e-6)
    assert lower
