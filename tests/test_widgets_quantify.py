"""The report viewer and the follow-up explorer (notebook 09), driven like a user would, without a kernel."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from scintilab.quantify import quantify_cohort  # noqa: E402
from scintilab_widgets.quantify_explorer import FollowupExplorer, ReportViewer  # noqa: E402


@pytest.fixture(scope="module")
def quantified(two_visit_cohort):
    res = quantify_cohort(two_visit_cohort.manifest, None, progress=False, limit=4)
    return two_visit_cohort.manifest, res


def _circles(fig) -> int:
    return sum(isinstance(p, plt.Circle) for ax in fig.axes for p in ax.patches)


def test_report_viewer_follows_the_study_and_the_overlays(quantified) -> None:
    manifest, res = quantified
    viewer = ReportViewer(manifest, res.studies)
    keys = list(res.studies["study_key"])
    assert [v for _, v in viewer.study.options] == keys
    label = res.studies.set_index("study_key")["label"]
    assert all(label[k] in text for text, k in viewer.study.options)  # the class is named beside the key
    # the study with the most hot spots: its circles are the detection's
    busiest = res.studies.sort_values("hotspots_total").iloc[-1]
    viewer.study.value = busiest["study_key"]
    fig = viewer.figure()
    det = viewer.detection(busiest["study_key"])
    assert _circles(fig) == len(det.hotspots) * len(det.images) > 0
    assert [a.get_title() for a in fig.axes] == ["ANT", "POST (flipped)"]
    plt.close(fig)
    viewer.hot.value = False  # hot spots off: the plain views
    fig = viewer.figure()
    assert _circles(fig) == 0
    plt.close(fig)
    viewer.reg.value = True  # regions on: one more image layer per view (the atlas bone groups)
    fig = viewer.figure()
    assert all(len(a.images) == 2 for a in fig.axes)
    plt.close(fig)


def test_the_viewer_shows_what_the_run_found_under_its_parameters(two_visit_cohort) -> None:
    from scintilab import quant_params as qp

    strict = qp.QuantParams().replace({"detection.threshold": 3.0})
    res = quantify_cohort(two_visit_cohort.manifest, None, progress=False, limit=2, params=strict)
    key = res.studies.sort_values("hotspots_total").iloc[-1]["study_key"]
    found = int((res.hotspots["study_key"] == key).sum())
    assert len(ReportViewer(two_visit_cohort.manifest, res.studies, params=strict).detection(key).hotspots) == found
    # the defaults find more: a viewer without the run's parameters would show other hot spots
    assert len(ReportViewer(two_visit_cohort.manifest, res.studies).detection(key).hotspots) > found


def test_report_viewer_keeps_one_detection_in_memory(quantified) -> None:
    manifest, res = quantified
    viewer = ReportViewer(manifest, res.studies)
    for key in res.studies["study_key"][:3]:
        viewer.detection(key)
    assert len(viewer._cache) == 1  # a cohort of thousands must not pile up in the kernel


def test_followup_explorer_starts_on_the_most_new_lesions_and_follows_the_pair(quantified) -> None:
    manifest, res = quantified
    fu = res.followup.reset_index(drop=True)
    assert len(fu) >= 2, "the two-visit cohort gives one follow-up per patient"
    ex = FollowupExplorer(manifest, res.followup, res.studies)
    assert len(ex.pair.options) == len(fu)
    assert ex.pair.value == int(fu["new_lesions"].idxmax())
    other = next(i for i in range(len(fu)) if i != ex.pair.value)
    ex.pair.value = other
    row = fu.loc[other]
    fig = ex.figure()
    assert f"+{row['days']} d" in fig.axes[1].get_title()
    assert row["pcwg3"] in fig.axes[2].get_title()
    line = fig.axes[2].lines[0]
    days = res.studies[res.studies["patient_key"] == row["patient_key"]]
    assert len(line.get_xdata()) == len(days) and np.isclose(sorted(line.get_ydata()), sorted(days["bsi"])).all()
    # new lesions are boxed on the follow-up view, as many as the table says
    boxes = sum(
        isinstance(p, plt.Rectangle) and p.get_edgecolor()[:3] == matplotlib.colors.to_rgb("gold")
        for p in fig.axes[1].patches
    )
    assert boxes == row["new_lesions"]
    plt.close(fig)


def test_followup_explorer_with_no_pairs_shows_nothing(quantified) -> None:
    manifest, res = quantified
    ex = FollowupExplorer(manifest, res.followup.iloc[0:0], res.studies)
    assert ex.pair.value is None and ex.figure() is None
