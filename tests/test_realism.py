"""Realism figures of one anterior view (scintilab.realism) and the synthetic cohort against real ranges."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from scintilab.errors import InputError
from scintilab.realism import (
    FIGURES,
    PER_PIXEL_FIGURES,
    RealRange,
    body_extent,
    body_outline,
    chest_rows,
    cohort_realism,
    load_real_ranges,
    measure_view,
    noise_ratio,
    summarise,
)
from scintilab.synth.cohort import write_cohort

ROOT = Path(__file__).resolve().parents[1]
FOV_MM = (1024 * 2.3, 256 * 2.3)  # the paper's field of view, kept at every matrix size


def _grid(spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (mm) of the paper's field of view at ``spacing``; x from the midline."""
    rows, cols = int(round(FOV_MM[0] / spacing)), int(round(FOV_MM[1] / spacing))
    y = (np.arange(rows) + 0.5) * spacing
    x = (np.arange(cols) + 0.5) * spacing - FOV_MM[1] / 2
    return np.meshgrid(y, x, indexing="ij")


def _near(measured: float, true: float, spacing: float) -> bool:
    """Within what outlining allows: the outline sits 3-5 mm outside a sharp edge on each side
    (10 mm smoothing, cut a quarter of the way up; along a long edge noise pushes it a little
    further), plus the pixel grid."""
    return abs(measured - true) <= 12.0 + spacing


def _poisson(mean_per_mm2: np.ndarray, spacing: float, background: float, seed: int) -> np.ndarray:
    """Poisson counts of a density (counts per mm²) plus a background (counts per pixel)."""
    return np.random.default_rng(seed).poisson(mean_per_mm2 * spacing**2 + background).astype(np.uint16)


def _box_body(spacing: float, width_mm: float = 400.0, seed: int = 0) -> np.ndarray:
    """A box-shaped body (no neck): 1,600 mm tall, ``width_mm`` wide, 8 counts per 2.3 mm pixel."""
    y, x = _grid(spacing)
    density = np.where((np.abs(x) <= width_mm / 2) & (y >= 300) & (y < 1900), 8.0 / 2.3**2, 0.0)
    return _poisson(density, spacing, 0.05, seed)


def _stick_figure(spacing: float, seed: int = 0) -> np.ndarray:
    """Head, neck, trunk with arms (420 mm wide), two legs; a 40 mm midline stripe 3x the soft tissue.

    Vertex at 200 mm, soles at 1,900 mm: 1,700 mm long. Shoulder line at 490 mm (17 %).
    """
    y, x = _grid(spacing)
    soft = 6.0 / 2.3**2
    head = ((y - 300) / 100) ** 2 + (x / 80) ** 2 <= 1
    neck = (y >= 390) & (y < 490) & (np.abs(x) <= 50)
    trunk = (y >= 490) & (y < 1050) & (np.abs(x) <= 210)
    legs = (y >= 1050) & (y < 1900) & (np.abs(x) >= 20) & (np.abs(x) <= 150)
    density = np.where(head | neck | trunk | legs, soft, 0.0)
    density = np.where(trunk & (np.abs(x) <= 20), 3 * soft, density)
    return _poisson(density, spacing, 0.05, seed)


# ----------------------------------------------------------------------------- noise


def test_noise_ratio_is_one_for_poisson_counts_below_when_smoothed_above_when_scaled() -> None:
    img = _box_body(2.3)
    raw = noise_ratio(img, (2.3, 2.3))
    assert 0.93 < raw < 1.07, raw
    # Smoothing makes neighbours alike: the differences shrink far below twice the mean.
    smoothed = ndi.gaussian_filter(img.astype(float), 1.0)
    assert noise_ratio(smoothed, (2.3, 2.3)) < 0.3
    # Scaled counts (a processed export) keep the shape but not Poisson's variance = mean.
    assert 2.7 < noise_ratio(3.0 * img, (2.3, 2.3)) < 3.3


def test_noise_ratio_holds_at_coarse_pixels_and_on_a_gentle_slope() -> None:
    # Coarse pixels: the 10 mm smoothing is ~1 pixel wide, where a selection that saw the
    # pair's own difference read 24 % low.
    assert 0.93 < noise_ratio(_box_body(4.6, seed=1), (4.6, 4.6)) < 1.07
    y, x = _grid(2.3)
    density = np.where((np.abs(x) <= 200) & (y >= 300) & (y < 1900), (4 + 8 * np.abs(x) / 200) / 2.3**2, 0.0)
    assert 0.93 < noise_ratio(_poisson(density, 2.3, 0.05, 2), (2.3, 2.3)) < 1.07


# ----------------------------------------------------------------------------- outline, chest, width


@pytest.mark.parametrize("spacing", [2.3, 4.6])
def test_a_box_body_gives_its_width_and_length_in_mm(spacing: float) -> None:
    fig = measure_view(_box_body(spacing, width_mm=400.0), (spacing, spacing))
    assert _near(fig["trunk_width_mm"], 400.0, spacing), fig["trunk_width_mm"]
    assert _near(fig["body_length_mm"], 1600.0, spacing), fig["body_length_mm"]
    assert fig["body_fill"] == pytest.approx(fig["trunk_width_mm"] / FOV_MM[1])


def test_the_chest_is_found_on_the_width_profile_and_figures_agree_across_pixel_sizes() -> None:
    figs = {}
    for spacing in (2.3, 4.6):
        img = _stick_figure(spacing, seed=3)
        sp = (spacing, spacing)
        ext = body_extent(body_outline(img, sp), sp)
        chest = chest_rows(ext, sp)
        assert chest.found, "the neck and shoulders of the stick figure were not found"
        assert abs(chest.shoulder * spacing - 490.0) <= 25.0, chest.shoulder * spacing
        assert 490 <= chest.start * spacing and chest.stop * spacing <= 1050  # inside the trunk
        figs[spacing] = measure_view(img, sp)
        assert _near(figs[spacing]["trunk_width_mm"], 420.0, spacing), figs[spacing]["trunk_width_mm"]
        assert 2.6 < figs[spacing]["chest_contrast"] < 3.4  # the 3x midline stripe
    fine, coarse = figs[2.3], figs[4.6]
    for name in ("total_counts", "trunk_width_mm", "body_length_mm", "body_fill", "chest_contrast", "noise_ratio"):
        assert coarse[name] == pytest.approx(fine[name], rel=0.05), name
    # per-pixel figures scale with the pixel's area (4x here), by nature
    assert coarse["body_mean"] == pytest.approx(4 * fine["body_mean"], rel=0.05)


def test_background_reads_the_counts_outside_the_body() -> None:
    y, x = _grid(2.3)
    density = np.where((np.abs(x) <= 200) & (y >= 300) & (y < 1900), 8.0 / 2.3**2, 0.0)
    assert measure_view(_poisson(density, 2.3, 0.2, 4), (2.3, 2.3))["background"] == pytest.approx(0.2, abs=0.01)
    assert measure_view(_poisson(density, 2.3, 0.0, 4), (2.3, 2.3))["background"] == 0.0


@pytest.mark.parametrize(
    ("image", "spacing", "says"),
    [
        (np.ones((4, 64, 64)), (2.3, 2.3), "2-D"),
        (np.zeros((256, 64)), (2.3, 2.3), "no counts"),
        (np.full((256, 64), -1.0), (2.3, 2.3), "negative"),
        (np.full((256, 64), np.nan), (2.3, 2.3), "non-finite"),
        (np.full((256, 64), 5.0), (2.3, 2.3), "no body"),
        (np.ones((256, 64)), (0.0, 2.3), "spacing"),
        (np.ones((8, 8)), (2.3, 2.3), "too small"),
    ],
)
def test_bad_input_is_a_value_error_naming_what_is_wrong(image: np.ndarray, spacing: tuple, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        measure_view(image, spacing)


# ----------------------------------------------------------------------------- real ranges, summary


def test_the_real_ranges_cover_every_figure_and_say_where_they_come_from(tmp_path: Path) -> None:
    ranges = load_real_ranges()
    assert list(ranges) == list(FIGURES) and PER_PIXEL_FIGURES <= set(FIGURES)
    assert all(r.low <= r.typical <= r.high and r.source for r in ranges.values())
    broken = json.loads((ROOT / "validation" / "real_ranges.json").read_text())
    broken["figures"]["max_pixel"]["typical"] = 5000
    (tmp_path / "r.json").write_text(json.dumps(broken))
    with pytest.raises(InputError, match="max_pixel: typical 5000 outside"):
        load_real_ranges(tmp_path / "r.json")


def test_summary_percentiles_and_coverage() -> None:
    ranges = {name: RealRange(10.0, 0.0, 100.0, "definition") for name in FIGURES}
    measured = [{name: float(v) for name in FIGURES} for v in range(101)]
    measured[0]["noise_ratio"] = float("nan")  # a figure that could not be measured is left out
    rows = {r.figure: r for r in summarise(measured, ranges)}
    assert rows["total_counts"].p5 == pytest.approx(5.0) and rows["total_counts"].p95 == pytest.approx(95.0)
    assert rows["noise_ratio"].n == 100 and rows["total_counts"].covered
    low = {name: RealRange(1.0, 0.0, 100.0, "definition") for name in FIGURES}
    assert not any(r.covered for r in summarise(measured, low))


def test_the_benchmark_prints_the_table_and_names_bad_input(
    tmp_cohort_dir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("bench_realism", ROOT / "benchmarks" / "realism.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cohort = tmp_cohort_dir(n=3)
    out = tmp_path / "realism.json"
    assert bench.main(["--cohort", str(cohort), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in FIGURES) and "3 anterior views measured" in printed
    assert len(json.loads(out.read_text())["figures"]) == len(FIGURES)
    (tmp_path / "empty").mkdir()
    assert bench.main(["--cohort", str(tmp_path / "empty")]) == 2


# ----------------------------------------------------------------------------- the synthetic cohort


def test_synthetic_cohort_covers_real_values(tmp_path: Path) -> None:
    root = tmp_path / "clinic"
    write_cohort(root, n_patients=24, seed=4301, variety="clinic", progress=False)
    summary = cohort_realism(root)
    assert len(summary.per_study) == 24 and not summary.skipped, summary.skipped
    assert not summary.uncovered, "real typical values outside the synthetic 5-95 % range:\n" + summary.table()


def test_narrow_cohort_is_caught(tmp_path: Path) -> None:
    """The check can fail: the narrow generator (0.85-1.9 M counts, one hot injection site)
    misses the real export's counts and noise."""
    root = tmp_path / "narrow"
    write_cohort(root, n_patients=8, seed=4301, variety="narrow", progress=False)
    uncovered = cohort_realism(root).uncovered
    assert {"total_counts", "noise_ratio"} <= set(uncovered), uncovered
