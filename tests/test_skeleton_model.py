"""The learned skeleton model: Dice, the millimetre grid, real (tiny) training, save/load, errors, protocol."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from scintilab.anatomy import BONES
from scintilab.errors import InputError
from scintilab.ingest import ingest, load_cohort
from scintilab.protocol import PROTOCOL_FILE
from scintilab.skeleton_model import (
    BONE_IDS,
    N_CLASSES,
    SkeletonConfig,
    dice_per_group,
    image_to_grid,
    labels_from_grid,
    labels_to_grid,
    load_skeleton_model,
    normalise,
    predict_bone_map,
    save_skeleton_model,
    train_skeleton_model,
    training_arrays,
)
from scintilab.synth.cohort import write_cohort
from scintilab.synth.phantom import BONE_IDS as GENERATOR_BONE_IDS

ROOT = Path(__file__).resolve().parents[1]
#: A grid four times coarser than the default keeps the tiny training fast.
TINY = SkeletonConfig(base_width=4, levels=3, grid_shape=(128, 32), grid_mm=18.0, learning_rate=1e-2)


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("skel") / "cohort"
    write_cohort(root, n_patients=4, seed=4304, visits=1, variety="clinic", matrix=(256, 64), progress=False)
    ingest(root / "dicom", root / "labels.csv", root / "annotations", root / "manifest.csv", progress=False)
    return root


# ---- Dice ------------------------------------------------------------------------------------


def test_dice_by_hand() -> None:
    truth = np.zeros((4, 4), np.uint8)
    pred = np.zeros((4, 4), np.uint8)
    truth[0, :] = BONE_IDS["skull"]  # 4 px
    pred[0, :2] = BONE_IDS["skull"]  # 2 of them ...
    pred[1, :2] = BONE_IDS["skull"]  # ... and 2 others: 2 * 2 / (4 + 4)
    truth[3, 3] = pred[3, 3] = BONE_IDS["feet"]
    pred[2, 0] = BONE_IDS["ribs"]  # predicted only: 0
    d = dice_per_group(pred, truth)
    assert d["skull"] == pytest.approx(0.5)
    assert d["feet"] == 1.0 and d["ribs"] == 0.0
    assert np.isnan(d["pelvis"])  # in neither map
    assert list(d) == list(BONES)


def test_dice_matches_a_numpy_reference() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, N_CLASSES, (60, 20)).astype(np.uint8)
    pred = np.where(rng.random((60, 20)) < 0.7, truth, rng.integers(0, N_CLASSES, (60, 20))).astype(np.uint8)
    d = dice_per_group(pred, truth)
    for name, i in BONE_IDS.items():
        p, t = pred == i, truth == i
        assert d[name] == pytest.approx(2 * np.sum(p & t) / (p.sum() + t.sum()))
    with pytest.raises(ValueError, match="differ in shape"):
        dice_per_group(pred, truth[:-1])


def test_ids_are_the_generators() -> None:
    assert BONE_IDS == GENERATOR_BONE_IDS


# ---- the millimetre grid --------------------------------------------------------------------


def _blocks(shape: tuple[int, int], spacing: float) -> np.ndarray:
    """A label map drawn in millimetres from the field's centre (blocks >= 40 mm), so every
    matrix holds the same picture (the grid centres each field)."""
    rows_mm = (np.arange(shape[0]) + 0.5 - shape[0] / 2) * spacing
    cols_mm = (np.arange(shape[1]) + 0.5 - shape[1] / 2) * spacing
    r, c = np.meshgrid(rows_mm, cols_mm, indexing="ij")
    out = np.zeros(shape, np.uint8)
    for k in range(len(BONES)):
        r0, c0 = -1070 + 120 * k, -230 + (k % 4) * 110
        out[(r >= r0) & (r < r0 + 100) & (c >= c0) & (c < c0 + 40 + 10 * (k % 3))] = k + 1
    return out


MATRICES = (((1024, 256), 2.26), ((2048, 512), 1.13), ((512, 128), 4.5))


@pytest.mark.parametrize(("shape", "spacing"), MATRICES)
def test_every_matrix_maps_to_the_same_grid_and_back(shape: tuple[int, int], spacing: float) -> None:
    cfg = SkeletonConfig()
    ref = labels_to_grid(_blocks(*MATRICES[2]), (4.5, 4.5), cfg)
    lab = _blocks(shape, spacing)
    grid = labels_to_grid(lab, (spacing, spacing), cfg)
    assert grid.shape == cfg.grid_shape
    # the same picture whatever the matrix, up to one grid pixel where a 4.5 mm pixel straddles an edge
    assert np.mean(grid == ref) > 0.98
    assert min(dice_per_group(grid, ref).values()) > 0.9
    back = labels_from_grid(grid, shape, (spacing, spacing), cfg)
    assert back.shape == shape and back.dtype == np.uint8
    d = dice_per_group(back, lab)
    assert min(d.values()) > 0.9, d
    if spacing == 4.5:
        assert np.array_equal(back, lab)  # the grid's own spacing: nothing moves


def test_intensity_does_not_depend_on_total_counts() -> None:
    rng = np.random.default_rng(0)
    img = rng.poisson(5.0, (1024, 256)).astype(np.float32)
    g = image_to_grid(img, (2.26, 2.26), SkeletonConfig())
    assert g.shape == (512, 128)
    np.testing.assert_allclose(normalise(3.0 * g), normalise(g), rtol=1e-5)


# ---- training, prediction, save / load ------------------------------------------------------


def test_tiny_model_trains_predicts_saves_and_loads(tiny_cohort: Path, tmp_path: Path) -> None:
    model, hist = train_skeleton_model(
        tiny_cohort / "manifest.csv", config=TINY, epochs=2, batch_size=2, val_fraction=0.0, rng=0, progress=False
    )
    assert hist["train_studies"] == 4 and len(hist["loss"]) == 2
    assert hist["loss"][1] < hist["loss"][0], hist["loss"]
    study = load_cohort(tiny_cohort / "manifest.csv", with_shapes=False)[0]
    pred = predict_bone_map(model, study)
    assert pred.shape == study.shape_hw and pred.dtype == np.uint8
    assert pred.max() < N_CLASSES
    save_skeleton_model(model, tmp_path / "m")
    again = load_skeleton_model(tmp_path / "m")
    assert again.config == TINY
    assert np.array_equal(predict_bone_map(again, study), pred)


def test_a_missing_or_misshapen_truth_map_is_named(tiny_cohort: Path, tmp_path: Path) -> None:
    truth = tmp_path / "truth"
    shutil.copytree(tiny_cohort / "truth", truth)
    victim = sorted(truth.glob("*_maps.npz"))[0]
    victim.unlink()
    with pytest.raises(InputError, match="truth label map missing") as exc:
        training_arrays(tiny_cohort / "manifest.csv", TINY, truth_dir=truth)
    assert exc.value.path == victim
    np.savez(victim, bone=np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match=r"\(10, 10\), the study's matrix is \(256, 64\)") as exc:
        training_arrays(tiny_cohort / "manifest.csv", TINY, truth_dir=truth)
    assert victim.name in str(exc.value)


# ---- the protocol --------------------------------------------------------------------------


def test_the_script_refuses_a_reporting_seed_before_writing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    script = importlib.import_module("train_skeleton")
    base = [
        "--train-cohort",
        str(tmp_path / "train"),
        "--cohort",
        str(tmp_path / "report"),
        "--out",
        str(tmp_path / "m"),
    ]
    for extra, needle in (
        (["--train-seed", "5006"], "seed 5006 (clinic) is registered for reporting"),
        (["--seed", "6003"], "seed 6003 (clinic) is registered for training"),
    ):
        with pytest.raises(SystemExit) as exc:
            script.main([*base, *extra])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert needle in err and PROTOCOL_FILE in err, err
        assert not any(tmp_path.iterdir())  # no cohort, no model


def test_quantification_takes_its_bone_groups_from_a_learned_skeleton(tiny_cohort: Path, tmp_path: Path) -> None:
    """With ``skeleton=``, every bone lookup of detection and BSI reads the network's map."""
    from scintilab.bsi import compute_bsi
    from scintilab.quantify import quantify_cohort, quantify_study
    from scintilab.skeleton_model import build_skeleton_model
    from scintilab.utils import set_seed

    set_seed(0)
    model = build_skeleton_model(TINY)  # untrained: its map differs from the template's
    study = load_cohort(tiny_cohort / "manifest.csv", with_shapes=False)[0]
    learned = predict_bone_map(model, study)
    with_model = quantify_study(study, skeleton=model)
    plain = quantify_study(study)
    for view, atlas in with_model.detection.atlas.items():
        assert np.array_equal(atlas.bone_map(), learned), view
    assert not np.array_equal(plain.detection.atlas["ANT"].bone_map(), learned)
    held = {BONES[i - 1] for i in np.unique(learned) if i}
    for h in with_model.detection.hotspots:  # each hot spot's bone is one the map holds
        # (where sternum and thoracic spine overlap, the A/P ratio picks between the two)
        assert h.bone is None or h.bone in held or {h.bone, "sternum", "thoracic_spine"} <= held | {h.bone}
    assert compute_bsi(with_model.detection).bsi == with_model.bsi.bsi
    # the cohort path loads a saved model from its folder
    save_skeleton_model(model, tmp_path / "skel")
    res = quantify_cohort(tiny_cohort / "manifest.csv", None, skeleton_model=tmp_path / "skel", progress=False, limit=1)
    assert len(res.studies) >= 1
