"""Augmentation: parameters within the paper's ranges, counts never invented."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scintilab.augment import (
    apply_params,
    augment_copies,
    augmentation_layers,
    count_retention,
    draw_params,
    load_augmentation_config,
    max_safe_rotation,
    params_str,
    random_augment,
    rotate,
    save_augmentation_config,
    suggest_limits,
    translate,
    translation_retention,
    uptake_histogram,
)
from scintilab.synth.pairs import synthetic_pair


def _blob(shape: tuple[int, int] = (64, 32)) -> np.ndarray:
    img = np.zeros(shape, np.float32)
    img[20:40, 10:22] = np.random.default_rng(0).poisson(30, (20, 12))
    return img


def test_translation_moves_by_the_parameters_and_keeps_counts() -> None:
    img = _blob()
    out = translate(img, dx=3, dy=-2)
    assert out.sum() == img.sum()  # pure translation inside the field: same total
    assert out.max() == img.max()
    np.testing.assert_array_equal(out[18:38, 13:25], img[20:40, 10:22])


def test_translation_out_of_field_drops_counts_without_wrapping() -> None:
    img = _blob()
    out = translate(img, dx=15, dy=0)  # columns 10..21 -> 25..36, beyond 31
    assert out.sum() < img.sum()
    assert out[:, :10].sum() == 0  # nothing wrapped round to the left border


@pytest.mark.parametrize("deg", [-7.5, -3.0, 1.0, 3.0, 12.0])
def test_rotation_does_not_invent_counts(deg: float) -> None:
    img = _blob((96, 64))
    out = rotate(img, deg)
    assert out.min() >= 0
    assert out.max() <= img.max()
    # content well inside the field: total kept up to interpolation smoothing
    assert out.sum() == pytest.approx(img.sum(), rel=0.03)


def test_rotation_direction_positive_is_left() -> None:
    img = np.zeros((65, 65), np.float32)
    img[32, 52] = 100.0  # right of the centre
    r, c = np.unravel_index(np.argmax(rotate(img, 30)), (65, 65))
    assert r < 32  # anticlockwise as displayed: a point right of centre moves up
    r, c = np.unravel_index(np.argmax(rotate(img, -30)), (65, 65))
    assert r > 32


def test_rotation_about_the_centre_keeps_the_centre() -> None:
    img = np.zeros((65, 65), np.float32)
    img[32, 32] = 9.0
    assert rotate(img, 17.0)[32, 32] == pytest.approx(9.0)


def test_drawn_parameters_stay_in_range_and_cover_both_signs() -> None:
    gen = np.random.default_rng(1)
    ps = [draw_params(3.0, 4, gen) for _ in range(400)]
    rots = np.array([p["rotation"] for p in ps])
    assert np.all(np.abs(rots) <= 3.0) and (rots > 0).any() and (rots < 0).any()
    for p in ps:
        assert p["dx"] == 0 or p["dy"] == 0  # horizontal OR vertical, never both
        assert abs(p["dx"]) <= 4 and abs(p["dy"]) <= 4
        assert float(p["dx"]).is_integer() and float(p["dy"]).is_integer()
    assert any(p["dx"] for p in ps) and any(p["dy"] for p in ps)
    either = [draw_params(3.0, 4, gen, "either") for _ in range(100)]
    assert all(p["rotation"] == 0 or (p["dx"] == 0 and p["dy"] == 0) for p in either)
    with pytest.raises(ValueError):
        draw_params(-1, 2)


def test_random_augment_applies_exactly_its_parameters_and_is_seeded() -> None:
    img = _blob()
    out, p = random_augment(img, 5.0, 3, rng=7)
    np.testing.assert_array_equal(out, apply_params(img, p))
    expected = translate(rotate(img, p["rotation"]), p["dx"], p["dy"])
    np.testing.assert_array_equal(out, expected)
    out2, p2 = random_augment(img, 5.0, 3, rng=7)
    assert p == p2
    copies = augment_copies(img, 5, 5.0, 3, rng=3)
    assert len(copies) == 5 and len({params_str(q) for _, q in copies}) > 1
    assert params_str(None) == "orig"
    assert all(c.min() >= 0 and c.max() <= img.max() for c, _ in copies)


def test_count_retention_and_safe_limits() -> None:
    a, _ = synthetic_pair((256, 64), rng=0)
    assert count_retention(a, 0, 0) == pytest.approx(1.0)
    assert count_retention(a, 20, 20) < count_retention(a, 2, 2) <= 1.0
    mask = np.zeros((100, 100), bool)
    mask[10:90, 2:98] = True  # fills the field: a small turn pushes its corners out
    assert max_safe_rotation(mask) < max_safe_rotation(np.pad(np.ones((10, 10), bool), 45))
    lim = suggest_limits([a, a[:, ::-1]], keep=0.99)
    assert lim["t_t"] >= 0 and 0 <= lim["r_t"] <= 15 and len(lim["per_image"]) == 2
    # the suggestion honours its own criterion, and a stricter one never allows more
    assert translation_retention(a, lim["t_t"]) >= 0.99
    assert count_retention(a, lim["r_t"], 0) >= 0.99 - 1e-3
    strict = suggest_limits([a], keep=0.9999)
    assert strict["t_t"] <= lim["t_t"] and strict["r_t"] <= lim["r_t"]


def test_translation_retention_is_exact() -> None:
    a, _ = synthetic_pair((256, 64), rng=0)
    for t in (1, 3, 12):
        worst = min(float(translate(a, dx, dy).sum()) for dx, dy in ((t, 0), (-t, 0), (0, t), (0, -t)))
        assert translation_retention(a, t) == pytest.approx(worst / float(a.sum()), rel=1e-9)


def test_uptake_histogram_is_a_density() -> None:
    a, _ = synthetic_pair((128, 32), rng=0)
    dens, edges = uptake_histogram([a], bins=20)
    assert 10 <= len(dens) <= 21 and np.sum(dens * np.diff(edges)) == pytest.approx(1.0)
    assert np.allclose(np.diff(edges), np.round(np.diff(edges)))  # whole-count bins


def test_config_round_trip(tmp_path) -> None:
    p = save_augmentation_config(tmp_path / "out" / "augmentation.json", 2.5, 4, suggested={"r_t": 3.0})
    cfg = load_augmentation_config(p)
    assert cfg["r_t"] == 2.5 and cfg["t_t"] == 4 and cfg["mode"] == "both"
    assert json.loads(p.read_text())["suggested"]["r_t"] == 3.0


def test_keras_layers_augment_only_in_training_and_keep_range() -> None:
    import keras

    layers = augmentation_layers(3.0, 2, (64, 16), seed=1)
    x = np.zeros((4, 64, 16, 1), np.float32)
    x[:, 20:40, 4:12, :] = 1.0
    y = keras.ops.convert_to_numpy(layers(x, training=True))
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1.0 + 1e-6
    assert np.abs(y - x).sum() > 0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layers(x, training=False)), x)
