"""The view frame: one alignment, and images, masks and points mapped both ways alike."""

from __future__ import annotations

import numpy as np
import pytest

from scintilab.errors import InputError
from scintilab.fusion import align_views
from scintilab.hotspots import detect_hotspots
from scintilab.lesions import study_lesions
from scintilab.prepared import prepare_study
from scintilab.study import Study
from scintilab.synth.pairs import synthetic_pair
from scintilab.synth.phantom import spacing_for
from scintilab.synth.scan import generate_patient, render_study
from scintilab.view_frame import ViewFrame

SHAPE = (256, 64)


def _disc(shape: tuple[int, int], row: float, col: float, radius: float) -> np.ndarray:
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (rr - row) ** 2 + (cc - col) ** 2 <= radius**2


def test_mask_mirrors_and_shifts_as_documented() -> None:
    h, w = 40, 20
    m = np.zeros((h, w), bool)
    m[10, 3] = True
    frame = ViewFrame(shape=(h, w), shift=(2.0, -1.0))
    post = frame.map_mask(m, "ANT", "POST")
    # ANT (r, c) -> mirrored posterior (r - dr, c - dc) -> stored posterior column W-1-(c-dc)
    assert np.argwhere(post).tolist() == [[10 - 2, w - 1 - (3 + 1)]]
    assert np.array_equal(frame.map_mask(post, "POST", "ANT"), m)
    assert np.array_equal(frame.mask_to_frame(post, "POST"), m)
    assert np.array_equal(frame.mask_from_frame(m, "POST"), post)


@pytest.mark.parametrize("shift", [(0, 0), (6, -3), (-4, 5)])
def test_of_views_recovers_a_known_shift_and_puts_the_posterior_where_align_views_does(shift) -> None:
    ant, post = synthetic_pair(SHAPE, shift=shift, rng=3, noise=False)
    frame = ViewFrame.of_views(ant, post)
    res = align_views(ant, post)
    assert frame.shift == pytest.approx(res.shift)
    # synthetic_pair's shift moves the stored posterior: the alignment undoes it (within a pixel)
    assert abs(frame.shift[0] + shift[0]) <= 1 and abs(frame.shift[1] + shift[1]) <= 1
    assert np.array_equal(frame.to_frame(post, "POST"), res.posterior_flipped_aligned)
    assert np.array_equal(frame.to_frame(ant, "ANT"), res.anterior)


def test_points_land_where_masks_land() -> None:
    frame = ViewFrame(shape=SHAPE, shift=(5.0, -2.0))
    # a disc drawn on the stored posterior around LabelMe point (x=40, y=100)
    stored = _disc(SHAPE, 100, 40, 4)
    moved = frame.points_to_frame(np.array([[40.0, 100.0]]), "POST")[0]
    assert np.array_equal(frame.mask_to_frame(stored, "POST"), _disc(SHAPE, moved[1], moved[0], 4))
    back = frame.points_from_frame(moved[None], "POST")[0]
    assert back == pytest.approx([40.0, 100.0])
    assert frame.points_to_frame(np.array([[7.0, 9.0]]), "ANT").tolist() == [[7.0, 9.0]]


def test_images_go_back_and_forth_inside_the_field() -> None:
    rng = np.random.default_rng(0)
    img = rng.poisson(30, SHAPE).astype(np.float32)
    frame = ViewFrame(shape=SHAPE, shift=(3.0, 2.0))
    back = frame.from_frame(frame.to_frame(img, "POST"), "POST")
    inner = (slice(3, SHAPE[0] - 3), slice(2, SHAPE[1] - 2))
    assert np.array_equal(back[inner], img[inner])  # the rim moved out of the field is lost
    other = frame.other_view(img, "ANT", "POST")
    assert np.array_equal(frame.to_frame(other, "POST")[inner], img[inner])


def test_a_posterior_only_frame_is_the_mirror_and_has_no_anterior() -> None:
    post = np.arange(12, dtype=np.float32).reshape(3, 4)
    frame = ViewFrame.of_views(None, post)
    assert frame.name == "POST" and frame.views == ("POST",) and frame.shift == (0.0, 0.0)
    assert np.array_equal(frame.to_frame(post, "POST"), post[:, ::-1])
    with pytest.raises(ValueError, match="no anterior"):
        frame.to_frame(post, "ANT")
    with pytest.raises(ValueError, match="no shift"):
        ViewFrame(shape=(3, 4), shift=(1.0, 0.0), name="POST")


def test_errors_name_the_study() -> None:
    with pytest.raises(InputError, match="S-none"):
        ViewFrame.of_study(Study("S-none", "P-x", None, None))
    with pytest.raises(InputError, match="S-odd.*differ in matrix size"):
        ViewFrame.of_study(Study("S-odd", "P-x", np.ones((8, 4)), np.ones((8, 6))))


@pytest.fixture(scope="module")
def annotated() -> Study:
    matrix = (512, 128)
    pat = generate_patient(np.random.default_rng([5, 1]), "ADMet", index=1, matrix=matrix, visits=1, seed=5)
    st = render_study(pat, np.random.default_rng([5, 2, 0]), visit=0)
    return Study(
        study_key="S-prep",
        patient_key="P-prep",
        anterior=st.anterior,
        posterior=st.posterior,
        label="ADMet",
        pixel_spacing=spacing_for(matrix),
        shapes=st.shapes,
    )


def test_a_prepared_study_gives_the_same_detection_and_lesions(annotated: Study) -> None:
    prep = prepare_study(annotated)
    assert prep.frame == ViewFrame.of_study(annotated)
    alone = detect_hotspots(annotated)
    reused = detect_hotspots(annotated, prepared=prep)
    assert alone.hotspots, "the generator gave this patient no hot spot; pick another seed"
    assert [h.as_row() for h in alone.hotspots] == [h.as_row() for h in reused.hotspots]
    assert reused.view_frame == prep.frame
    rows, _ = study_lesions(annotated)
    again, _ = study_lesions(annotated, prepared=prep)
    assert rows, "no annotated lesion on this patient"
    assert [r["bone_atlas"] for r in rows] == [r["bone_atlas"] for r in again]
    np.testing.assert_allclose([r["uptake"] for r in rows], [r["uptake"] for r in again])
    with pytest.raises(ValueError, match="smooth_mm"):
        detect_hotspots(annotated, prepared=prep, smooth_mm=4.0)
