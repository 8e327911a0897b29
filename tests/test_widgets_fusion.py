"""Fusion and augmentation explorers, driven like a user would, without a kernel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scintilab.study import Study
from scintilab.synth.pairs import synthetic_pair
from scintilab_widgets.augment_explorer import AugmentExplorer, augment_explorer
from scintilab_widgets.fusion_explorer import FusionExplorer, fusion_explorer


@pytest.fixture(scope="module")
def studies() -> list[Study]:
    out = []
    for i, shift in enumerate([(0, 0), (6, -3), (-4, 2)]):
        a, p = synthetic_pair((256, 64), shift, rng=i)
        out.append(Study(f"S-{i}", f"P-{i}", a, p, label=("NoMet", "ADMet", "nADMet")[i]))
    a, _ = synthetic_pair((256, 64), rng=9)
    out.append(Study("S-one", "P-one", a, None, label="ADMet"))
    return out


def _traces(fig, kind):
    return [t for t in fig.data if t.type == kind]


def test_fusion_explorer_follows_the_study_slider(studies) -> None:
    ex = FusionExplorer(studies)
    assert "S-0" in ex.figure.layout.title.text
    ex.study.value = 1
    assert "S-1" in ex.figure.layout.title.text and "S-1" in ex.info.value
    assert ex.result.shift == (-6.0, 3.0)
    # the critical point lines drawn are the ones found
    ceil = [t for t in ex.figure.data if t.name == "ceil"]
    assert ceil[0].y[0] == ex.result.points_ant.ceil and ceil[1].y[0] == ex.result.points_post.ceil


def test_threshold_slider_moves_the_critical_points(studies) -> None:
    ex = FusionExplorer(studies)
    low = ex.result.points_ant
    ex.threshold.value = 0.5
    high = ex.result.points_ant
    assert high.width < low.width  # a higher threshold stops on brighter uptake, further in
    lefts = [t.x[0] for t in ex.figure.data if t.name == "left"]
    assert lefts[0] == high.left


def test_method_and_compare_change_the_fused_panels(studies) -> None:
    ex = FusionExplorer(studies, start=2)
    assert len(_traces(ex.figure, "heatmap")) == 3  # ANT, POST flipped, one fusion
    ex.method.value = "geometric"
    assert ex.result.method == "geometric"
    assert any("geometric" in a.text for a in ex.figure.layout.annotations)
    ex.compare.value = True
    assert len(_traces(ex.figure, "heatmap")) == 2 + 4
    assert len(_traces(ex.figure, "image")) == 1  # the overlay


def test_single_view_study_is_reported_not_raised(studies) -> None:
    box = fusion_explorer(studies)
    ex = box.explorer
    ex.study.value = 3
    assert ex.result is not None and ex.result.single_view in ("ANT", "POST")
    assert "one view only" in ex.info.value and "one view only" in ex.figure.layout.title.text
    assert len(_traces(ex.figure, "heatmap")) == 1 and not _traces(ex.figure, "image")
    assert "Plantedname" not in ex.info.value


def test_augment_explorer_sliders_rebuild_the_grid(studies, tmp_path) -> None:
    imgs = [(s.study_key, s.anterior) for s in studies[:2]]
    ex = AugmentExplorer(imgs, out_dir=tmp_path, n_copies=3, seed=1)
    assert len(ex.grid_figure.data) == 4  # original + 3 copies
    ex.n_copies.value = 5
    assert len(ex.grid_figure.data) == 6
    ex.r_t.value = 0.0
    ex.t_t.value = 0
    titles = [a.text.replace("<br>", ",") for a in ex.grid_figure.layout.annotations]
    assert titles[0] == "orig" and all(t == "r=+0.00,dx=+0,dy=+0" or t == "r=-0.00,dx=+0,dy=+0" for t in titles[1:])
    ex.r_t.value = 6.0
    ex.t_t.value = 4
    rots = [abs(p["rotation"]) for _, p in ex.copies]
    assert all(r <= 6.0 for r in rots) and max(rots) > 0
    assert [t.name for t in ex.hist_figure.data] == ["original", "augmented"]
    assert "%" in ex.info.value


def test_augment_explorer_save_button_writes_the_chosen_values(studies, tmp_path) -> None:
    box = augment_explorer(
        [(studies[0].study_key, studies[0].anterior)], out_dir=tmp_path / "cfg", extra={"source": "test"}
    )
    ex = box.explorer
    ex.r_t.value = 2.5
    ex.t_t.value = 7
    ex.save.click()
    cfg = json.loads((tmp_path / "cfg" / "augmentation.json").read_text())
    assert cfg["r_t"] == 2.5 and cfg["t_t"] == 7 and cfg["source"] == "test"
    assert ex.saved_path.name == "augmentation.json"


def test_figures_keep_stored_pixel_coordinates() -> None:
    from scintilab.figures_fusion import display_image, fusion_figure
    from scintilab.fusion import fuse

    a, p = synthetic_pair((2048, 512), (5, 5), rng=0)
    res = fuse(a, p)
    fig = fusion_figure(res, max_rows=512)
    hm = _traces(fig, "heatmap")[0]
    assert np.asarray(hm.z).shape == (512, 128) and hm.dx == 4  # block-averaged for display
    disp, f = display_image(a, 512)
    assert f == 4 and disp.mean() == pytest.approx(a.mean(), rel=1e-5)
