"""Head up or down: the model, the rules, and ingest turning a feet-first export head-up
(pixels, LabelMe shapes, the manifest, the audit's head-down check)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scintilab.audit import audit
from scintilab.ingest import ingest, load_cohort
from scintilab.lesions import shape_mask
from scintilab.orientation import (
    CONFIDENCE,
    TURNED_FLAG,
    OrientationCall,
    decide,
    default_model,
    rotate,
    rotate_points,
    turn,
    turn_points,
)
from scintilab.study import Shape
from tests.conftest import make_cohort, store_head_down, store_rotated

#: Held out from the model's training (benchmarks/cohorts.md).
SEED = 4002


def test_turning_twice_is_the_identity_and_points_follow_pixels() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 100, (40, 12))
    assert np.array_equal(turn(turn(img)), img)
    assert np.array_equal(turn(img), np.rot90(img, 2))
    poly = Shape("lesion", np.array([[2.0, 3.0], [7.0, 4.0], [5.0, 11.0]]), "polygon")
    turned = Shape("lesion", turn_points(poly.points, img.shape), "polygon")
    assert np.array_equal(shape_mask(turned, img.shape), turn(shape_mask(poly, img.shape)))
    for k in (1, 2, 3, -1):
        out = rotate(img, k)
        assert np.array_equal(out, np.rot90(img, k))
        moved = Shape("lesion", rotate_points(poly.points, img.shape, k), "polygon")
        assert np.array_equal(shape_mask(moved, out.shape), rotate(shape_mask(poly, img.shape), k))


@pytest.fixture(scope="module")
def held_out_views() -> list[tuple[np.ndarray, tuple[float, float]]]:
    from scintilab.synth.phantom import spacing_for
    from scintilab.synth.scan import generate_patient, render_study

    out = []
    for i, label in enumerate(("NoMet", "ADMet", "nADMet", "NoMet")):
        pat = generate_patient(np.random.default_rng([SEED, i]), label, index=i + 1, matrix=(512, 128), seed=SEED)
        st = render_study(pat, np.random.default_rng([SEED, i, 1]))
        out += [(st.anterior, spacing_for((512, 128))), (st.posterior, spacing_for((512, 128)))]
    return out


def test_the_model_tells_head_up_from_turned_on_held_out_views(held_out_views) -> None:
    model = default_model()
    for img, sp in held_out_views:
        up, down = model.call([img], sp), model.call([turn(img)], sp)
        assert up.head_up and up.confident, up
        assert not down.head_up and down.confident, down
        assert abs(up.p - down.p) < 1e-9  # turning an image turns the call exactly
        # a cut field of view (legs missing) still reads head-up
        legs_cut = img[: int(img.shape[0] * 0.6)]
        assert model.call([legs_cut], sp).head_up


SURE_UP, SURE_DOWN, UNSURE = OrientationCall(True, 0.99), OrientationCall(False, 0.99), OrientationCall(False, 0.6)


@pytest.mark.parametrize(
    "call, position, turned, words",
    [
        (SURE_DOWN, "", True, f"{TURNED_FLAG}: the image shows the head at the bottom (p 0.99)"),
        (SURE_DOWN, "FFS", True, "PatientPosition FFS agrees"),
        (SURE_UP, "HFS", False, ""),
        (SURE_UP, "FFS", False, "PatientPosition FFS (feet first), but the image is head-up (p 0.99): kept as stored"),
        (UNSURE, "FFP", True, f"{TURNED_FLAG}: PatientPosition FFP (feet first); the image cannot tell (p 0.60)"),
        (UNSURE, "HFS", False, ""),
        (UNSURE, "", False, "orientation unsure: the image cannot tell head from feet (p 0.60 head-down)"),
        (None, "FFS", True, f"{TURNED_FLAG}: PatientPosition FFS (feet first)"),
        (None, "", False, ""),
        (OrientationCall(False, 0.99, typical=False), "", False, "unlike the training views"),
    ],
)
def test_the_image_decides_when_sure_else_the_header(call, position, turned, words) -> None:
    assert CONFIDENCE <= 0.99
    do, flag = decide(call, position)
    assert do is turned
    assert (words in flag) if words else flag == ""


@pytest.fixture(scope="module")
def feet_first(tmp_path_factory):
    """Two cohorts of the same patients: as stored head-up, and as a feet-first camera
    stores them (turned 180°, PatientPosition FFS, shapes drawn on the stored images)."""
    roots = {}
    for kind in ("upright", "feet first"):
        root = make_cohort(
            tmp_path_factory.mktemp("orient"), 3, labels=["ADMet", "nADMet", "ADMet"], layout="pair", seed=7
        )
        if kind == "feet first":
            store_head_down(root)
        ingest(root / "dicom", root / "labels.csv", root / "annotations", root / "manifest.csv", progress=False)
        roots[kind] = root
    return roots


def test_ingest_turns_a_feet_first_export_head_up(feet_first) -> None:
    up = pd.read_csv(feet_first["upright"] / "manifest.csv", dtype=str, keep_default_na=False)
    down = pd.read_csv(feet_first["feet first"] / "manifest.csv", dtype=str, keep_default_na=False)
    assert (up["turned"] == "").all() and (down["turned"] == "ANT 180, POST 180").all()
    assert all(TURNED_FLAG in f and "PatientPosition FFS" in f for f in down["flags"])
    assert list(up["counts_ant"]) == list(down["counts_ant"])
    a, b = load_cohort(feet_first["upright"] / "manifest.csv"), load_cohort(feet_first["feet first"] / "manifest.csv")
    for s_up, s_down in zip(a, b):
        np.testing.assert_array_equal(s_up.anterior, s_down.anterior)
        np.testing.assert_array_equal(s_up.posterior, s_down.posterior)
        assert s_down.meta["quarter_turns"] == {"ANT": 2, "POST": 2} and s_up.meta["quarter_turns"] == {}
        # the shapes drawn on the stored (head-down) images land where the upright ones do
        masks_up = [shape_mask(s, s_up.anterior.shape) for s in s_up.shapes]
        masks_down = [shape_mask(s, s_down.anterior.shape) for s in s_down.shapes]
        assert len(masks_up) == len(masks_down) > 0
        for m1, m2 in zip(masks_up, masks_down):
            assert np.array_equal(m1, m2)


def test_the_audit_head_down_check_agrees_with_ingest(feet_first, tmp_path) -> None:
    res_down = audit(feet_first["feet first"] / "manifest.csv", out=tmp_path / "down", progress=False)
    res_up = audit(feet_first["upright"] / "manifest.csv", out=tmp_path / "up", progress=False)
    man = res_down.manifest
    head_down = res_down.flags[res_down.flags["kind"] == "head_down"]
    assert set(head_down["study_a"]) == set(man["study_key"])  # one finding per turned study, no more
    assert len(head_down) == len(man)
    assert all("stored head-down; ingest turned them upright" in d for d in head_down["detail"])
    assert (res_up.flags["kind"] == "head_down").sum() == 0


def test_an_upside_down_export_without_a_header_is_turned_by_the_image(tmp_path) -> None:
    root = make_cohort(tmp_path / "c", 2, labels=["NoMet", "ADMet"], layout="multiframe", seed=8)
    store_head_down(root, patient_position=None)  # the header keeps HFS: only the image can tell
    result = ingest(root / "dicom", root / "labels.csv", root / "annotations", root / "manifest.csv", progress=False)
    man = result.manifest
    assert list(man["turned"]) == ["ANT 180, POST 180"] * 2
    assert "turned head-up (stored head down): 2" in result.summary()
    assert all("the image shows the head at the bottom" in f for f in man["flags"])


@pytest.mark.parametrize("stored_turns, manifest_turned", [(3, "ANT 90, POST 90"), (1, "ANT 270, POST 270")])
def test_a_view_stored_sideways_is_turned_upright(stored_turns, manifest_turned, tmp_path) -> None:
    """256 rows x 1024 columns: turned 90° upright, then head-up if it came out head-down;
    pixel spacing, annotations and the matrix follow."""
    upright = make_cohort(tmp_path / "up", 2, labels=["ADMet", "nADMet"], layout="pair", shape=(256, 64), seed=9)
    side = make_cohort(tmp_path / "side", 2, labels=["ADMet", "nADMet"], layout="pair", shape=(256, 64), seed=9)
    store_rotated(side, stored_turns)
    for root in (upright, side):
        ingest(root / "dicom", root / "labels.csv", root / "annotations", root / "manifest.csv", progress=False)
    man = pd.read_csv(side / "manifest.csv", keep_default_na=False)
    assert list(man["turned"]) == [manifest_turned] * 2
    assert (man["rows"] == 256).all() and (man["cols"] == 64).all()
    assert all("stored sideways (64x256, wider than tall): turned upright" in f for f in man["flags"])
    for a, b in zip(load_cohort(upright / "manifest.csv"), load_cohort(side / "manifest.csv")):
        np.testing.assert_array_equal(a.anterior, b.anterior)
        np.testing.assert_array_equal(a.posterior, b.posterior)
        assert [shape_mask(s, a.anterior.shape).sum() for s in a.shapes] == [
            shape_mask(s, b.anterior.shape).sum() for s in b.shapes
        ]
        for sa, sb in zip(a.shapes, b.shapes):
            assert np.array_equal(shape_mask(sa, a.anterior.shape), shape_mask(sb, b.anterior.shape))
