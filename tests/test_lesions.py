"""Tests for scintilab.lesions: geometry on drawn shapes, counts, statistics, table, CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from skimage.draw import disk, ellipse

from scintilab import lesion_figures as LF
from scintilab import lesions as L
from scintilab.anatomy import UPTAKE_BINS
from scintilab.errors import InputError
from scintilab.study import SHAPE_CLASSES, Shape, Study


def _disk_mask(shape=(101, 101), centre=(50, 50), radius=20) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[disk(centre, radius, shape=shape)] = True
    return m


# -- geometry on drawn shapes with known answers ---------------------------------------
def test_disk_geometry_matches_circle_formulae():
    r = 20
    g = L.geometry_features(_disk_mask(radius=r), spacing=(1.0, 1.0))
    assert g["area_px"] == pytest.approx(math.pi * r * r, rel=0.02)
    assert g["equiv_diameter_mm"] == pytest.approx(2 * r, rel=0.01)
    assert g["eccentricity"] < 0.1
    assert g["solidity"] > 0.97
    assert (g["centroid_row"], g["centroid_col"]) == pytest.approx((50, 50), abs=0.01)


def test_area_scales_with_pixel_spacing():
    m = _disk_mask(radius=10)
    a1 = L.geometry_features(m, spacing=(1.0, 1.0))
    a2 = L.geometry_features(m, spacing=(2.0, 3.0))
    assert a2["area_px"] == a1["area_px"]
    assert a2["area_mm2"] == pytest.approx(6.0 * a1["area_mm2"])


@pytest.mark.parametrize("major,minor", [(24, 6), (20, 12)])
def test_ellipse_eccentricity(major, minor):
    m = np.zeros((80, 80), bool)
    m[ellipse(40, 40, major, minor, shape=m.shape)] = True  # major axis along the rows
    g = L.geometry_features(m, spacing=(1.0, 1.0))
    assert g["eccentricity"] == pytest.approx(math.sqrt(1 - (minor / major) ** 2), abs=0.02)
    assert g["major_axis_mm"] == pytest.approx(2 * major, rel=0.05)
    assert g["minor_axis_mm"] == pytest.approx(2 * minor, rel=0.08)


@pytest.mark.parametrize("rotation_deg", [0, 30, 60, -45])
def test_ellipse_orientation(rotation_deg):
    # skimage.draw.ellipse rotates the row axis counter-clockwise by `rotation`;
    # regionprops reports the major axis's angle from the row axis, the same way round.
    m = np.zeros((120, 120), bool)
    m[ellipse(60, 60, 40, 10, shape=m.shape, rotation=math.radians(rotation_deg))] = True
    g = L.geometry_features(m, spacing=(1.0, 1.0))
    diff = (g["orientation_deg"] - rotation_deg + 90) % 180 - 90
    assert abs(diff) < 2.0
    assert g["eccentricity"] > 0.95


def test_rectangle_strip():
    m = np.zeros((60, 60), bool)
    m[10:14, 5:45] = True  # 4 x 40 pixels along the columns
    g = L.geometry_features(m, spacing=(2.0, 2.0))
    assert g["area_mm2"] == pytest.approx(160 * 4.0)
    assert g["solidity"] == pytest.approx(1.0)
    assert g["eccentricity"] > 0.99
    assert abs(abs(g["orientation_deg"]) - 90) < 1.0  # major axis along the columns
    assert g["major_axis_mm"] / g["minor_axis_mm"] == pytest.approx(10, rel=0.1)
    assert L.classify_shape(g) == "strip"


def test_solidity_of_a_notched_shape():
    m = np.zeros((60, 60), bool)
    m[10:50, 10:50] = True
    m[10:40, 25:35] = False  # a U shape: convex hull is the full square
    g = L.geometry_features(m, spacing=(1.0, 1.0))
    assert g["solidity"] == pytest.approx((1600 - 300) / 1600, abs=0.03)


def test_empty_mask_is_rejected():
    with pytest.raises(ValueError):
        L.geometry_features(np.zeros((5, 5), bool))


# -- rasterising LabelMe shapes -------------------------------------------------------
def test_shape_mask_kinds():
    poly = Shape("lesion", np.array([[10, 10], [20, 10], [20, 30], [10, 30]], float), "polygon")
    m = L.shape_mask(poly, (50, 40))
    assert m.sum() == 11 * 21  # boundary pixels included, as LabelMe's own rasteriser does
    assert m[20, 15] and not m[5, 5]
    rect = Shape("lesion", np.array([[20, 30], [10, 10]], float), "rectangle")  # any corner order
    assert L.shape_mask(rect, (50, 40)).sum() == 11 * 21
    circ = Shape("lesion", np.array([[20, 25], [25, 25]], float), "circle")  # centre x=20, y=25, r=5
    mc = L.shape_mask(circ, (50, 40))
    assert mc.sum() == pytest.approx(math.pi * 25, rel=0.15) and mc[25, 20]
    pt = Shape("lesion", np.array([[3, 4]], float), "point")
    assert np.argwhere(L.shape_mask(pt, (50, 40))).tolist() == [[4, 3]]


def test_shape_mask_errors_name_the_problem():
    with pytest.raises(InputError, match="points"):
        L.shape_mask(Shape("lesion", np.array([[1, 1], [2, 2]], float), "polygon"), (10, 10))
    with pytest.raises(InputError, match="outside"):
        L.shape_mask(Shape("lesion", np.array([[50, 50], [60, 50], [60, 60]], float), "polygon"), (10, 10))


def test_parse_label():
    assert L.parse_label("lesion:patchy:ribs") == ("lesion", "patchy", "ribs")
    assert L.parse_label("lesion", {"flags": {"strip": True}, "region": "pelvis"}) == ("lesion", "strip", "pelvis")
    assert L.parse_label("benign:knee_arthritis:lower_limbs") == ("benign", None, "lower_limbs")
    assert L.parse_label("lesion:blob:nowhere") == ("lesion", None, None)


# -- counts and contrast --------------------------------------------------------------
def test_contrast_on_known_background():
    img = np.full((60, 60), 20.0)
    m = _disk_mask((60, 60), (30, 30), 6)
    img[m] = 100.0
    f = L.intensity_features(img, m, prefix="_x")
    assert f["background_x"] == 20.0
    assert f["mean_x"] == 100.0 and f["max_x"] == 100.0
    assert f["total_x"] == pytest.approx(100.0 * m.sum())
    assert f["contrast_x"] == pytest.approx((100 - 20) / 20)


def test_ring_background_ignores_the_lesion_edge():
    m = _disk_mask((40, 40), (20, 20), 5)
    ring = L.ring_mask(m, gap=1, width=3)
    assert not (ring & m).any()
    assert not (ring & L.ring_mask(m, gap=0, width=1)).all()
    assert ring.sum() > 0


# -- shape rule -----------------------------------------------------------------------
def _drawn_lesion(mask: np.ndarray, value: float, background: float = 20.0) -> dict[str, float]:
    img = np.full(mask.shape, background)
    img[mask] = value
    return {**L.geometry_features(mask, (2.3, 2.3)), **L.intensity_features(img, mask)}


def test_classify_shape_on_drawn_lesions():
    z = (80, 80)
    assert L.classify_shape(_drawn_lesion(_disk_mask(z, (40, 40), 3), 150)) == "punctate"  # d ~ 14 mm
    strip = np.zeros(z, bool)
    strip[30:34, 20:50] = True  # 4 x 30 px: d ~ 28 mm, eccentricity ~ 1
    assert L.classify_shape(_drawn_lesion(strip, 80)) == "strip"
    assert L.classify_shape(_drawn_lesion(_disk_mask(z, (40, 40), 8), 150)) == "flake"  # flat, contrast 6.5
    assert L.classify_shape(_drawn_lesion(_disk_mask(z, (40, 40), 6), 60)) == "mottled"  # faint, d ~ 28 mm
    assert L.classify_shape(_drawn_lesion(_disk_mask(z, (40, 40), 9), 60)) == "patchy"  # faint, d ~ 41 mm
    # the thresholds are parameters
    f = _drawn_lesion(_disk_mask(z, (40, 40), 3), 150)
    assert L.classify_shape(f, {"punctate_max_diameter_mm": 5.0}) != "punctate"


def test_texture_features_tell_a_flat_sheet_from_spots():
    z = (60, 60)
    flat = _disk_mask(z, (30, 30), 10)
    img = np.full(z, 10.0)
    img[flat] = 100.0
    t_flat = L.texture_features(img, flat, 10.0)
    spots = np.full(z, 10.0)
    for r, c in ((24, 24), (24, 36), (36, 24), (36, 36)):
        spots[_disk_mask(z, (r, c), 2)] = 100.0
    t_spots = L.texture_features(spots, flat, 10.0)
    assert t_flat["flatness"] > 0.9 and t_flat["n_peaks"] <= 2
    assert t_spots["n_peaks"] == 4 and t_spots["flatness"] < 0.5
    assert t_spots["cv_drawn"] > t_flat["cv_drawn"]


def test_shape_agreement_counts_and_accuracy():
    t = pd.DataFrame(
        {"shape_annotated": ["patchy", "strip", "strip", None], "shape_rule": ["patchy", "strip", "flake", "punctate"]}
    )
    cm, acc = L.shape_agreement(t)
    assert acc == pytest.approx(2 / 3)
    assert cm.loc["strip", "flake"] == 1 and cm.to_numpy().sum() == 3
    assert list(cm.index) == list(SHAPE_CLASSES)


# -- statistics against scipy on fixed data -------------------------------------------
def test_cramers_v_against_scipy():
    table = np.array([[20, 15, 5], [10, 25, 30]])
    chi2, p, v, dof = L.cramers_v(table)
    ref = stats.chi2_contingency(table, correction=False)
    assert chi2 == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue) and dof == ref.dof
    assert v == pytest.approx(math.sqrt(ref.statistic / (table.sum() * 1)))
    # perfect association gives V = 1; empty columns are ignored
    chi2, p, v, _ = L.cramers_v(np.array([[10, 0, 0], [0, 10, 0]]))
    assert v == pytest.approx(1.0)
    assert math.isnan(L.cramers_v(np.array([[3, 4]]))[2])


def test_mann_whitney_against_scipy_and_rank_biserial():
    a = [3.1, 4.5, 2.2, 8.0, 5.5, 6.1, np.nan]
    b = [1.0, 2.5, 0.7, 3.3, 2.2]
    u, p, r = L.mann_whitney(a, b)
    ref = stats.mannwhitneyu([3.1, 4.5, 2.2, 8.0, 5.5, 6.1], b, alternative="two-sided")
    assert u == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert r == pytest.approx(2 * ref.statistic / (6 * 5) - 1)
    assert L.mann_whitney([5, 6, 7], [1, 2, 3])[2] == pytest.approx(1.0)
    assert L.mann_whitney([1, 2, 3], [5, 6, 7])[2] == pytest.approx(-1.0)


def test_uptake_bins_follow_the_paper():
    cats = L.uptake_bins([0, 49.9, 50, 99.9, 100, 250, 1e5])
    assert list(cats.astype(str)) == [
        "[0, 50)",
        "[0, 50)",
        "[50, 100)",
        "[50, 100)",
        "[100, 150)",
        "[200, 300)",
        "[500, inf)",
    ]
    assert len(L.UPTAKE_BIN_LABELS) == len(UPTAKE_BINS) - 1


def _fake_table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for cls, n, shapes, up in (("ADMet", 40, ["punctate", "mottled"], 70), ("nADMet", 30, ["patchy", "flake"], 140)):
        for i in range(n):
            rows.append(
                {
                    "study_key": f"S-{cls}{i % 8}",
                    "patient_key": f"P-{cls}{i % 8}",
                    "label": cls,
                    "shape": shapes[i % 2],
                    "region": "ribs" if i % 3 else "pelvis",
                    "uptake": float(rng.normal(up, 15)),
                    "area_mm2": float(rng.normal(100, 10)),
                    "equiv_diameter_mm": 10.0,
                    "eccentricity": 0.5,
                    "solidity": 0.9,
                    "mean_drawn": 50.0,
                    "contrast": 2.0,
                    "ap_ratio": 1.0,
                }
            )
    return pd.DataFrame(rows)


def test_class_distributions_and_tests_on_fixed_data():
    t = _fake_table()
    d = L.class_distributions(t)
    sh = d["shape"].set_index(["label", "shape"])
    assert sh.loc[("ADMet", "punctate"), "percent"] == pytest.approx(50.0)
    assert sh.loc[("nADMet", "punctate"), "n"] == 0
    assert d["uptake"].groupby("label")["percent"].sum().to_numpy() == pytest.approx([100, 100])
    assert d["per_study"].set_index("label").loc["ADMet", "studies"] == 8
    res = L.compare_classes(t).set_index("variable")
    assert res.loc["shape", "effect_size"] == pytest.approx(1.0)  # disjoint shape sets
    ct = pd.crosstab(t["label"], t["region"]).to_numpy()
    assert res.loc["region", "p"] == pytest.approx(stats.chi2_contingency(ct, correction=False).pvalue)
    assert res.loc["uptake", "effect_size"] < -0.9  # nADMet much brighter here
    ref = stats.mannwhitneyu(t[t.label == "ADMet"]["uptake"], t[t.label == "nADMet"]["uptake"])
    assert res.loc["uptake", "p"] == pytest.approx(ref.pvalue)


def test_figures_show_the_class_percentages():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = _fake_table()
    fig = LF.fig12_static(t)
    assert len(fig.axes) == 3
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches if p.get_height() > 0)
    assert heights == [50.0] * 4  # two shapes per class, half each
    plt.close(fig)
    pf = LF.fig12_plotly(t)
    shape_traces = [tr for tr in pf.data if tr.xaxis == "x"]
    assert {tr.name for tr in shape_traces} == {"ADMet", "nADMet"}
    ad = next(tr for tr in shape_traces if tr.name == "ADMet")
    assert dict(zip(ad.x, ad.y))["mottled"] == pytest.approx(50.0)


# -- whole studies and cohorts ---------------------------------------------------------
def _study(ant, post, shapes, label="ADMet") -> Study:
    return Study(
        study_key="S-test",
        patient_key="P-test",
        anterior=ant,
        posterior=post,
        pixel_spacing=(2.3, 2.3),
        label=label,
        shapes=shapes,
    )


def _pair_with_lesion(depth_front: bool) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    rng = np.random.default_rng(0)
    h, w = 128, 48
    base = np.zeros((h, w))
    base[10:120, 12:36] = 30.0  # bright enough for the fusion sweep to find the body
    rc = (60, 18)
    m = _disk_mask((h, w), rc, 3)
    ant, post_f = base.copy(), base.copy()
    ant[m] += 200 if depth_front else 40
    post_f[m] += 40 if depth_front else 200
    return rng.poisson(ant).astype(np.uint16), rng.poisson(post_f[:, ::-1]).astype(np.uint16), rc


def test_study_lesions_one_view_annotation_reads_both_views():
    ant, post, (r, c) = _pair_with_lesion(depth_front=True)
    shp = Shape("lesion:punctate:sternum", np.array([[c, r], [c + 3, r]], float), "circle", "ANT")
    rows, skipped = L.study_lesions(_study(ant, post, [shp]))
    assert len(rows) == 1 and not [s for s in skipped if "failed" in s[1]]
    row = rows[0]
    assert row["view"] == "ANT"
    assert row["max_ant"] > 150 and row["max_post"] > 20
    assert row["ap_ratio"] > 2.0  # brighter in front: a front-lying lesion
    assert row["shape"] == "punctate" and row["region"] == "sternum"
    assert row["contrast_ant"] == pytest.approx(200 / 30, rel=0.2)  # (lesion - body) / body


def test_same_lesion_on_both_views_is_one_row_and_back_lying_reads_below_one():
    ant, post, (r, c) = _pair_with_lesion(depth_front=False)
    w = ant.shape[1]
    s_ant = Shape("lesion:patchy:thoracic_spine", np.array([[c, r], [c + 3, r]], float), "circle", "ANT")
    s_post = Shape(
        "lesion:patchy:thoracic_spine", np.array([[w - 1 - c, r], [w - 1 - c + 3, r]], float), "circle", "POST"
    )
    other = Shape("benign:knee_arthritis:lower_limbs", np.array([[20, 100], [22, 100]], float), "circle", "ANT")
    rows, _ = L.study_lesions(_study(ant, post, [s_ant, s_post, other]))
    assert len(rows) == 1
    assert rows[0]["view"] == "ANT+POST"
    assert rows[0]["ap_ratio"] < 0.5
    rows_b, _ = L.study_lesions(_study(ant, post, [s_ant, s_post, other]), kinds=("lesion", "benign"))
    assert len(rows_b) == 2


def test_single_view_study_gives_nan_for_the_missing_view():
    ant, _, (r, c) = _pair_with_lesion(depth_front=True)
    shp = Shape("lesion:punctate:ribs", np.array([[c, r], [c + 3, r]], float), "circle", "ANT")
    post_shape = Shape("lesion:punctate:ribs", np.array([[c, r], [c + 3, r]], float), "circle", "POST")
    rows, skipped = L.study_lesions(_study(ant, None, [shp, post_shape]))
    assert len(rows) == 1 and math.isnan(rows[0]["max_post"]) and math.isnan(rows[0]["ap_ratio"])
    assert rows[0]["uptake"] > 100
    assert any("lacks" in why for _, why in skipped)


def test_lesion_table_on_an_ingested_cohort(tmp_manifest):
    from scintilab.ingest import load_cohort

    manifest = tmp_manifest(4, labels=["ADMet", "nADMet", "ADMet", "NoMet"])
    cohort = load_cohort(manifest)
    table = L.lesion_table(cohort)
    studies = L.study_counts(table)
    assert len(studies) == 4
    # every hot spot is outlined on both views: one row each, not two
    n_ann = sum(len([s for s in st.shapes if s.label.startswith("lesion")]) for st in cohort)
    assert len(table) == n_ann // 2 == studies["n_lesions"].sum()
    assert (table["view"] == "ANT+POST").all()
    assert table["shape"].isin(SHAPE_CLASSES).all()
    assert table["max_ant"].gt(100).all()
    for col in ("area_mm2", "eccentricity", "solidity", "orientation_deg", "mean_fused", "contrast", "uptake"):
        assert table[col].notna().all(), col


def test_cli_writes_the_csv_without_identity(tmp_manifest, tmp_path):
    from conftest import PLANTED_ID, PLANTED_NAME

    from scintilab.cli import main

    manifest = tmp_manifest(3, labels=["ADMet", "nADMet", "ADMet"])
    out = tmp_path / "lesions.csv"
    stats_csv = tmp_path / "tests.csv"
    assert main(["lesions", str(manifest), "--out", str(out), "--stats", str(stats_csv)]) == 0
    text = out.read_text()
    assert PLANTED_ID not in text and PLANTED_NAME.split("^")[0] not in text
    df = pd.read_csv(out)
    assert len(df) > 0 and {"study_key", "shape", "region", "uptake"} <= set(df.columns)
    assert pd.read_csv(stats_csv)["variable"].tolist()[:3] == ["shape", "region", "uptake_bin"]
    assert main(["lesions", str(tmp_path / "nope.csv"), "--out", str(out)]) == 2


def test_lesion_figure_and_explorer_without_a_kernel(tmp_manifest):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scintilab.ingest import load_cohort
    from scintilab_widgets.lesion_explorer import LesionExplorer

    cohort = load_cohort(tmp_manifest(3, labels=["ADMet", "nADMet", "NoMet"]))
    table = L.lesion_table(cohort)
    ex = LesionExplorer(cohort, table)
    first = ex.study.value
    n_first = int((table["study_key"] == first).sum())
    assert n_first == table.groupby("study_key").size().max()  # busiest study shown first
    ax = ex.figure.axes[0]
    assert first in ax.get_title() and "ANT" in ax.get_title()
    numbers = sorted(t.get_text() for t in ax.texts)
    assert numbers == sorted(str(i + 1) for i in range(n_first))
    assert len(ax.images) == 2  # image + atlas tint
    ex.atlas.value = False
    assert len(ex.figure.axes[0].images) == 1
    ex.view.value = "POST"
    assert "POST" in ex.figure.axes[0].get_title()
    other = [v for _, v in ex.study.options if v != first][0]
    ex.study.value = other
    assert other in ex.figure.axes[0].get_title()
    assert len(ex.rows) == int((table["study_key"] == other).sum())
    # the side table lists every lesion's features
    cells = ex.figure.axes[1].tables[0].get_celld() if ex.rows.shape[0] else {}
    assert len({r for r, _ in cells} - {0}) == len(ex.rows)
    plt.close("all")


def test_a_bad_study_is_skipped_and_reported(tmp_manifest):
    from scintilab.ingest import load_cohort

    manifest = tmp_manifest(3, labels=["ADMet", "nADMet", "ADMet"])
    cohort = load_cohort(manifest)
    bad_path = manifest.parent / str(cohort.manifest.loc[1, "ant_path"])
    bad_path.write_bytes(b"not a DICOM file at all")  # the test's own copy, not an input
    table = L.lesion_table(cohort)
    assert len(L.study_counts(table)) == 2
    skipped = table.attrs["skipped"]
    assert len(skipped) == 1 and skipped[0][0] == bad_path.name
    assert str(manifest.parent) not in str(skipped)  # names the file, not where it lives
