"""Tests for scintilab.atlas: landmarks, maps, views, and region agreement with synthetic truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scintilab.anatomy import BONES, REGIONS, region_of
from scintilab.atlas import TEMPLATE, fit_atlas, template_agreement

MATRIX = (512, 128)  # reduced matrix: same field of view, larger pixels, quick to write


@pytest.fixture(scope="module")
def synth_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generator's tiny cohort at 512x128, ingested (manifest.csv beside it)."""
    from scintilab.ingest import ingest
    from scintilab.synth.cohort import write_cohort

    root = tmp_path_factory.mktemp("synth") / "tiny"
    write_cohort(root, size="tiny", seed=0, matrix=MATRIX, progress=False)
    ingest(root / "dicom", root / "labels.csv", root / "annotations", root / "manifest.csv", progress=False)
    return root


@pytest.fixture(scope="module")
def one_study(synth_cohort: Path):
    """(study, truth record, truth maps) of the first metastatic study."""
    from scintilab.ingest import load_cohort
    from scintilab.pseudonym import study_key

    cohort = load_cohort(synth_cohort / "manifest.csv")
    keys = set(cohort.manifest["study_key"])
    for f in sorted((synth_cohort / "truth").glob("*.json")):
        rec = json.loads(f.read_text())
        if rec["label"] != "NoMet" and study_key(rec["study_uid"]) in keys and not rec.get("missing_view"):
            maps = np.load(f.with_name(f.stem + "_maps.npz"))
            return cohort.by_key(study_key(rec["study_uid"])), rec, {k: maps[k] for k in maps.files}
    pytest.fail("no metastatic study in the tiny cohort")


def test_region_assignment_agrees_with_generator_truth(synth_cohort: Path):
    """The issue's bar: >= 90 % of lesions get the generator's region."""
    from scintilab import lesions as L
    from scintilab.ingest import load_cohort

    table = L.lesion_table(load_cohort(synth_cohort / "manifest.csv"))
    table = L.attach_truth(table, L.load_truth(synth_cohort / "truth"))
    agreement, n, confusion = L.region_agreement(table)
    assert n >= 10 and n >= 0.9 * len(table)  # nearly every lesion found its truth record
    assert agreement >= 0.90, confusion
    assert confusion.to_numpy().sum() == n


def test_landmarks_match_the_phantom(one_study):
    study, rec, maps = one_study
    atlas = fit_atlas(study.anterior, spacing=study.pixel_spacing)
    lm = atlas.landmarks
    height = lm.sole - lm.top
    body_rows = np.flatnonzero(maps["body"].any(axis=1))
    assert lm.top == pytest.approx(body_rows[0], abs=0.02 * height)
    assert lm.sole == pytest.approx(body_rows[-1], abs=0.02 * height)
    # the truth bone map tells where the pelvis and the knees are
    pelvis_rows = np.flatnonzero((maps["bone"] == BONES.index("pelvis") + 1).any(axis=1))
    assert pelvis_rows[0] < lm.bladder < pelvis_rows[-1] + 0.02 * height
    femur = np.flatnonzero((maps["bone"] == BONES.index("femora") + 1).any(axis=1))
    assert lm.knee == pytest.approx(femur[-1], abs=0.03 * height)
    assert all(lm.found[k] for k in ("neck", "shoulder", "bladder", "knee"))
    # midline: the spine's truth pixels sit around it
    spine = np.argwhere(maps["bone"] == BONES.index("thoracic_spine") + 1)
    assert np.median(spine[:, 1] - lm.midline(spine[:, 0])) == pytest.approx(0, abs=0.06 * lm.half_width)


def test_a_small_very_bright_spot_does_not_move_the_knees_or_the_bladder(one_study):
    """Urine on the skin between the thighs, far brighter than any bone, in the knee search
    window: the knees and the bladder stay where the phantom has them."""
    study, rec, maps = one_study
    img = np.asarray(study.anterior, float).copy()
    clean = fit_atlas(img, spacing=study.pixel_spacing).landmarks
    height = clean.sole - clean.top
    r = int(round(clean.top + 0.64 * height))
    c = int(round(float(clean.midline(r))))
    rr, cc = np.ogrid[: img.shape[0], : img.shape[1]]
    spot = (rr - r) ** 2 + (cc - c) ** 2 <= 3**2
    img[spot] = 40 * np.percentile(img[maps["body"] > 0], 99)
    lm = fit_atlas(img, spacing=study.pixel_spacing).landmarks
    femur = np.flatnonzero((maps["bone"] == BONES.index("femora") + 1).any(axis=1))
    assert lm.knee == pytest.approx(femur[-1], abs=0.03 * height)
    assert lm.knee == pytest.approx(clean.knee, abs=0.01 * height)
    assert lm.found["bladder"] and lm.bladder == pytest.approx(clean.bladder, abs=0.01 * height)
    assert (np.asarray(study.anterior) != img).any()  # the study's own image is untouched


def test_bone_and_region_maps_overlap_the_truth(one_study):
    study, _, maps = one_study
    atlas = fit_atlas(study.anterior, spacing=study.pixel_spacing)
    agree = template_agreement(atlas, maps["bone"])
    assert agree["region"] >= 0.8 and agree["bone"] >= 0.75
    bmap, rmap = atlas.bone_map(), atlas.region_map()
    assert bmap.shape == rmap.shape == study.anterior.shape
    assert set(np.unique(rmap)) - {0} <= set(range(1, len(REGIONS) + 1))
    # the coarse map is the fine map seen through region_of
    i = np.flatnonzero(bmap.ravel())[::97]
    for b, r in zip(bmap.ravel()[i], rmap.ravel()[i]):
        assert REGIONS[r - 1] == region_of(BONES[b - 1])
    # lookups agree with the maps
    r, c = np.argwhere(bmap == BONES.index("skull") + 1)[0]
    assert atlas.bone_at(r, c) == "skull" and atlas.region_at(r, c) == "skull"
    assert atlas.bone_at(-5, 3) is None


def test_any_matrix_size(one_study):
    """The same body at a quarter of the pixels gives the same landmarks in relative terms."""
    study, _, _ = one_study
    big = study.anterior.astype(float)
    small = big.reshape(big.shape[0] // 2, 2, big.shape[1] // 2, 2).sum(axis=(1, 3))
    sp = study.pixel_spacing
    a_big = fit_atlas(big, spacing=sp)
    a_small = fit_atlas(small, spacing=(sp[0] * 2, sp[1] * 2))
    for key in ("neck", "shoulder", "bladder", "knee", "sole"):
        assert getattr(a_small.landmarks, key) * 2 == pytest.approx(
            getattr(a_big.landmarks, key), abs=0.02 * big.shape[0]
        )
    # rescaled maps: the small atlas's map, blown up, agrees with the big one
    up = np.kron(a_small.region_map(), np.ones((2, 2), int))
    both = (up > 0) | (a_big.region_map() > 0)
    assert np.mean(up[both] == a_big.region_map()[both]) > 0.85
    assert a_big.region_map((small.shape[0], small.shape[1])).shape == small.shape


def test_posterior_view_is_mirrored(one_study):
    study, _, _ = one_study
    ant = study.anterior
    a = fit_atlas(ant, view="ANT", spacing=study.pixel_spacing)
    p = fit_atlas(ant[:, ::-1], view="POST", spacing=study.pixel_spacing)
    assert p.mirrored and not a.mirrored and p.view == "POST"
    ra, rp = a.region_map(), p.region_map()[:, ::-1]
    both = (ra > 0) | (rp > 0)
    same = np.mean(ra[both] == rp[both])
    assert same > 0.93
    # where they differ, it is the sternum/thoracic-spine overlap ordered by the camera
    diff = both & (ra != rp)
    names = {REGIONS[i - 1] for i in np.unique(np.concatenate([ra[diff], rp[diff]])) if i}
    assert names <= {"sternum", "thoracic_spine"} or same > 0.97


def test_depth_cue_separates_sternum_from_spine(one_study):
    study, _, _ = one_study
    atlas = fit_atlas(study.anterior, spacing=study.pixel_spacing)
    lm = atlas.landmarks
    h = lm.sole - lm.top
    r = int(round(lm.top + 0.22 * h))  # mid-sternum height in the template
    c = int(round(float(lm.spine(r))))
    mask = np.zeros(study.anterior.shape, bool)
    mask[r - 1 : r + 2, c - 1 : c + 2] = True
    assert {"sternum", "thoracic_spine"} <= set(atlas.bone_candidates(r, c))
    assert atlas.assign_bone(mask, ap_ratio=4.0) == "sternum"
    assert atlas.assign_bone(mask, ap_ratio=0.25) == "thoracic_spine"
    assert atlas.assign_bone(mask, ap_ratio=None) == "thoracic_spine"
    # a lesion off every bone still gets the nearest one
    far = np.zeros_like(mask)
    far[int(lm.top + 0.3 * h), 0] = True
    assert atlas.assign_bone(far) in BONES


def test_skeleton_mask_holds_bone_not_bladder(one_study):
    study, _, maps = one_study
    atlas = fit_atlas(study.anterior, spacing=study.pixel_spacing)
    skel = atlas.skeleton_mask(study.anterior)
    assert skel.dtype == bool and skel.any()
    assert not (skel & ~atlas.body).any()
    from scipy.ndimage import binary_dilation

    near_bone = binary_dilation(maps["bone"] > 0, iterations=2)
    assert np.mean(near_bone[skel]) > 0.9  # what it calls skeleton is (near) bone
    assert np.mean(skel[maps["bone"] > 0]) > 0.3  # and it finds a fair share of the bone
    bladder = atlas.bladder_mask(study.anterior)
    assert bladder.any() and not (skel & bladder).any()


def test_template_names_and_errors():
    assert set(TEMPLATE) == set(BONES)
    with pytest.raises(ValueError, match="no body"):
        fit_atlas(np.zeros((64, 16)))
    with pytest.raises(ValueError, match="2-D"):
        fit_atlas(np.zeros((4, 64, 16)))
    with pytest.raises(ValueError, match="view"):
        fit_atlas(np.ones((64, 16)), view="LAT")


def test_draw_atlas_figure(one_study):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scintilab.atlas import draw_atlas

    study, _, _ = one_study
    atlas = fit_atlas(study.anterior, spacing=study.pixel_spacing)
    fig = draw_atlas(study.anterior, atlas)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"skull", "ribs", "pelvis", "thoracic_spine"} <= set(labels)
    assert len(ax.images) == 2
    assert study.patient_key not in ax.get_title()
    fig2 = draw_atlas(study.anterior, atlas, level="bone")
    assert "femora" in [t.get_text() for t in fig2.axes[0].get_legend().get_texts()]
    plt.close("all")


def test_cli_reports_agreement_with_truth(synth_cohort: Path, tmp_path: Path, capsys):
    import pandas as pd

    from scintilab.cli import main

    out = tmp_path / "lesions.csv"
    assert (
        main(["lesions", str(synth_cohort / "manifest.csv"), "--out", str(out), "--truth", str(synth_cohort / "truth")])
        == 0
    )
    printed = capsys.readouterr().out
    assert "region agreement with truth" in printed
    df = pd.read_csv(out)
    assert {"region_truth", "uptake_truth", "region_atlas"} <= set(df.columns)
    assert (df["region_truth"] == df["region_atlas"]).mean() >= 0.9
