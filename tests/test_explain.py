"""Tests for scintilab.explain: Grad-CAM, CBAM attention maps, overlays, the gallery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scintilab import explain


def blob_images(n: int, hw: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise images; half carry one bright blob. Returns images, labels, blob centres (row, col)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    rr, cc = np.mgrid[0:h, 0:w]
    images = rng.normal(0.2, 0.05, (n, h, w)).astype(np.float32)
    labels = np.arange(n) % 2
    centres = np.full((n, 2), -1)
    for i in np.flatnonzero(labels):
        r, c = rng.integers(8, h - 8), rng.integers(8, w - 8)
        images[i][(rr - r) ** 2 + (cc - c) ** 2 <= 12] += 1.0
        centres[i] = (r, c)
    return images, labels, centres


def test_grad_cam_shape_range_and_attention_on_inrac() -> None:
    from scintilab.models import build_model

    model = build_model("inrac", (64, 32, 1), 3, width=4)
    images, _, _ = blob_images(3, (64, 32), 0)
    cams = explain.grad_cam(model, images)
    assert cams.shape == (3, 64, 32) and cams.dtype == np.float32
    assert cams.min() >= 0.0
    for cam in cams:
        assert cam.max() == pytest.approx(1.0) or cam.max() == 0.0
    coarse = explain.grad_cam(model, images, class_index=[0, 1, 2], upsample=False)
    assert coarse.shape == (3, 2, 1)  # stride 32: the last stage's grid
    finer = explain.grad_cam(model, images, 1, layer_name="s3b5_out", upsample=False)
    assert finer.shape == (3, 4, 2)
    maps = explain.attention_maps(model, images)
    assert len(maps) == 12  # one CBAM per RA-Conv block: 2 + 3 + 5 + 2
    for m in maps.values():
        assert m.shape == (3, 64, 32) and 0.0 <= m.min() and m.max() <= 1.0
    mean = explain.mean_attention(model, images, last=2)
    assert mean.shape == (3, 64, 32) and mean.max() == pytest.approx(1.0)


def test_grad_cam_peak_lands_on_the_blob() -> None:
    """A small CNN taught 'blob or not' must point at the blob (16 x 16 feature grid)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    hw = (64, 64)
    inputs = keras.Input((*hw, 1))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="features")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(2, name="logits")(x)
    model = keras.Model(inputs, layers.Activation("softmax")(x))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    xtr, ytr, _ = blob_images(96, hw, 1)
    model.fit(xtr[..., None], ytr, epochs=15, batch_size=16, verbose=0)
    xte, yte, centres = blob_images(20, hw, 2)
    pos = np.flatnonzero(yte == 1)
    assert (model.predict(xte[..., None], verbose=0).argmax(1) == yte).mean() >= 0.9
    cams = explain.grad_cam(model, xte[pos], class_index=1)
    hits = 0
    for cam, (r, c) in zip(cams, centres[pos]):
        mask = np.zeros(hw, bool)
        mask[max(0, r - 4) : r + 5, max(0, c - 4) : c + 5] = True  # within one feature cell
        hits += explain.pointing_game(cam, mask)
    assert hits >= 0.8 * len(pos), f"Grad-CAM peak on the blob in only {hits}/{len(pos)} images"


def test_pointing_game_energy_and_overlay() -> None:
    heat = np.zeros((20, 10))
    heat[5, 5] = 1.0
    mask = np.zeros((20, 10), bool)
    mask[6, 5] = True
    assert not explain.pointing_game(heat, mask)
    assert explain.pointing_game(heat, mask, tolerance=1)
    assert explain.energy_in_mask(heat, mask) == 0.0
    img = np.random.default_rng(0).random((20, 10))
    rgb = explain.overlay(img, heat)
    assert rgb.shape == (20, 10, 3) and rgb.min() >= 0 and rgb.max() <= 1
    # a zero heat map leaves the grey image unchanged (equal channels)
    grey = explain.overlay(img, np.zeros_like(img))
    assert np.allclose(grey[..., 0], grey[..., 1])


def test_case_groups_follow_fig11() -> None:
    df = pd.DataFrame(
        {
            "study_key": [f"S-{i}" for i in range(6)],
            "true": ["NoMet", "ADMet", "ADMet", "nADMet", "NoMet", "nADMet"],
            "pred": ["ADMet", "nADMet", "ADMet", "nADMet", "NoMet", "NoMet"],
            "p_NoMet": [0.2, 0.1, 0.1, 0.1, 0.9, 0.5],
            "p_ADMet": [0.7, 0.3, 0.8, 0.2, 0.05, 0.3],
            "p_nADMet": [0.1, 0.6, 0.1, 0.7, 0.05, 0.2],
        }
    )
    g = explain.case_groups(df)
    assert g["NoMet called metastatic"]["study_key"].tolist() == ["S-0"]
    assert g["ADMet called nADMet"]["study_key"].tolist() == ["S-1"]
    assert g["correct nADMet"]["study_key"].tolist() == ["S-3"]
    assert g["correct ADMet"]["study_key"].tolist() == ["S-2"]
    assert g["metastatic called NoMet"]["study_key"].tolist() == ["S-5"]
    assert "nADMet called ADMet" not in g


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished 1-epoch run of a width-4 inrac on 24 blob images (NoMet vs nADMet)."""
    from scintilab.datasets import ImageSet
    from scintilab.presets import config_from_preset
    from scintilab.training import train

    images, labels, _ = blob_images(24, (64, 32), 3)
    ds = ImageSet(
        images=images,
        labels=labels * 2,
        patient_keys=np.array([f"P-{i // 2}" for i in range(24)]),
        study_keys=np.array([f"S-{i}" for i in range(24)]),
        kinds=np.array(["fused"] * 24),
        aug=np.array(["orig"] * 24),
    )
    cfg = config_from_preset(
        "quick",
        image_size=(64, 32),
        model_options={"width": 4},
        epochs=1,
        batch_size=8,
        n_boot=20,
        verbose=0,
        run_eagerly=True,
    )
    return train(cfg, tmp_path_factory.mktemp("run") / "run", dataset=ds)


def test_explain_run_gallery(tiny_run) -> None:
    import matplotlib

    matplotlib.use("Agg")
    res = tiny_run
    fig, chosen, heats = explain.explain_run(res.run_dir, per_group=1)
    assert len(chosen) == len(heats) >= 1 and heats.shape[1:] == (64, 32)
    assert chosen.groupby("group")["study_key"].nunique().eq(chosen.groupby("group").size()).all()
    texts = " ".join(ax.get_title() for ax in fig.axes)
    assert "S-" in texts and "P-" not in texts
    assert set(chosen["group"]) <= set(explain.case_groups(res.predictions))
    fig2, _, att = explain.explain_run(res.run_dir, per_group=1, method="attention", model=res.model)
    assert att.max() <= 1.0


def test_predictions_explorer_widget(tiny_run) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from scintilab_widgets.predictions_explorer import PredictionsExplorer

    ex = PredictionsExplorer(tiny_run.run_dir, model=tiny_run.model)
    assert ex.widget is ex.widget  # one box: a second display shows the same live explorer
    assert ex.row is not None and ex.figure is not None
    n_all = len(ex.test)
    assert ex.group.options[0] == f"all test images ({n_all})"
    first = ex.row["study_key"]
    assert first in ex.figure.texts[0].get_text() if ex.figure.texts else first in ex.figure._suptitle.get_text()
    # pick another group: the case list follows and the figure shows that group's case
    if len(ex.group.options) > 1:
        ex.group.value = ex.group.options[1]
        name = ex.group.value.rsplit(" (", 1)[0]
        assert ex.row["study_key"] in set(ex.groups[name]["study_key"])
    ex.method.value = "none"
    assert ex.heat(int(ex.case.value), "none") is None
    ex.method.value = "CBAM attention"
    heat = ex.heat(int(ex.case.value), "attention")
    assert heat.shape == (64, 32) and heat.max() == pytest.approx(1.0)
    assert len(ex.widget.children) == 3
