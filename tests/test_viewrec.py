"""Views nothing names: recognised from the image, decided as a pair, or set by --assume-view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scintilab.cli import main
from scintilab.dicomio import read_file, write_study
from scintilab.ingest import ingest, load_cohort
from scintilab.study import CLASSES
from scintilab.synth.phantom import spacing_for
from scintilab.synth.scan import generate_patient, render_study
from scintilab.viewrec import CONFIDENCE, ViewRecogniser, default_recogniser, fit, view_features

MATRIX = (512, 128)
SPACING = spacing_for(MATRIX)
#: Seeds the shipped weights never saw (benchmarks/train_viewrec.py trains on 1001-1004).
HELD_OUT_SEED = 4001


def _views(i: int, seed: int = HELD_OUT_SEED) -> tuple[np.ndarray, np.ndarray]:
    pat = generate_patient(np.random.default_rng([seed, i]), CLASSES[i % 3], index=i + 1, matrix=MATRIX, seed=seed)
    st = render_study(pat, np.random.default_rng([seed, i, 5]))
    return st.anterior, st.posterior


@pytest.fixture(scope="module")
def held_out() -> list[tuple[np.ndarray, np.ndarray]]:
    return [_views(i) for i in range(12)]


def _ids(i: int) -> dict[str, str]:
    return dict(patient_id=f"PV{i}", patient_name=f"View^Patient{i}", study_id=f"SV{i}")


def test_recogniser_names_held_out_views_and_mirroring_changes_nothing(held_out) -> None:
    rec = default_recogniser()
    right, confident = 0, 0
    for ant, post in held_out:
        for img, truth in ((ant, "ANT"), (post, "POST")):
            call = rec.recognise(img, SPACING)
            mirrored = rec.recognise(img[:, ::-1], SPACING)
            assert mirrored.view == call.view and mirrored.p == pytest.approx(call.p, abs=1e-9)
            right += call.view == truth
            confident += call.confident
            assert call.typical
    assert right >= 23, f"{right}/24 views right"
    assert confident >= 20, f"{confident}/24 views confident"
    # both views of one study decided together: every pair right, flipped or not
    for ant, post in held_out:
        assert rec.recognise_pair(post, ant, SPACING)[0] == ("POST", "ANT")
        assert rec.recognise_pair(ant[:, ::-1], post[:, ::-1], SPACING)[0] == ("ANT", "POST")


def test_features_are_in_millimetres_not_pixels(held_out) -> None:
    # the same patient at twice the matrix gives nearly the same features and the same call
    pat = generate_patient(
        np.random.default_rng([HELD_OUT_SEED, 0]), "NoMet", index=1, matrix=(1024, 256), seed=HELD_OUT_SEED
    )
    big = render_study(pat, np.random.default_rng([HELD_OUT_SEED, 0, 5])).anterior
    small = held_out[0][0]
    rec = default_recogniser()
    assert rec.recognise(big, spacing_for((1024, 256))).view == rec.recognise(small, SPACING).view == "ANT"
    fb, fs = view_features(big, spacing_for((1024, 256))), view_features(small, SPACING)
    assert np.abs(fb - fs).max() < 0.35, np.abs(fb - fs).max()


def test_fit_recovers_a_separable_rule_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, len(view_features(_views(0)[0], SPACING))))
    y = (X[:, 3] - X[:, 7] > 0).astype(int)
    rec = fit(X, y)
    p = 1 / (1 + np.exp(-(((X - rec.mean) / rec.scale) @ rec.weights + rec.bias)))
    assert ((p > 0.5) == y).mean() > 0.97
    back = ViewRecogniser.from_json(rec.to_json(tmp_path / "w.json"))
    assert np.allclose(back.weights, rec.weights) and back.rms_limit == rec.rms_limit


def test_unnamed_single_views_are_inferred_and_flagged_with_p(tmp_path, held_out) -> None:
    ant, post = held_out[1]
    for view, img in (("ANT", ant), ("POST", post)):
        (path,) = write_study(
            tmp_path / view,
            img,
            None,
            stem="WHOLE_BODY",
            layout="pair",
            view_naming="none",
            sop_class="sc",
            pixel_spacing=SPACING,
            **_ids(1),
        )
        got = read_file(path)
        assert list(got.views) == [view]
        assert got.meta["view_source"].startswith("image (p ")
        (flag,) = [f for f in got.flags if f.startswith("view")]
        assert flag == f"view inferred from the image (p {got.meta['view_p']:.2f})"
        assert got.meta["view_p"] >= CONFIDENCE


def test_unnamed_multiframe_is_decided_as_a_pair_in_either_frame_order(tmp_path, held_out) -> None:
    ant, post = held_out[2]
    for order in (("ANT", "POST"), ("POST", "ANT")):
        (path,) = write_study(
            tmp_path / "".join(order),
            ant,
            post,
            stem="s",
            layout="multiframe",
            view_naming="none",
            frame_order=order,
            pixel_spacing=SPACING,
            **_ids(2),
        )
        got = read_file(path)
        assert np.array_equal(got.views["ANT"], ant) and np.array_equal(got.views["POST"], post)
        assert any(f.startswith("views inferred from the image, as a pair") for f in got.flags)


def test_two_unnamed_files_of_one_study_are_decided_together(tmp_path, held_out) -> None:
    # A view whose own call is unsure is carried by its partner: a blend of the two views
    # gives one image whose single call is below the cut, the pair is still clear.
    ant, post = held_out[3]
    blend = (0.45 * ant + 0.55 * post[:, ::-1]).astype(np.uint16)
    rec = default_recogniser()
    assert rec.recognise(blend, SPACING).p < CONFIDENCE
    files = write_study(
        tmp_path / "dicom", blend, post, stem="s", layout="pair", view_naming="none", pixel_spacing=SPACING, **_ids(3)
    )
    # file names that name nothing: the pair is told apart by the image only
    plain = [f.rename(f.with_name(f"image{i}.dcm")) for i, f in enumerate(files)]
    res = ingest(tmp_path / "dicom", out=tmp_path / "manifest.csv", progress=False)
    (row,) = res.manifest.itertuples()
    assert row.views == "ANT+POST" and row.view_source.startswith("image, as a pair")
    assert Path(row.ant_path).name == plain[0].name and Path(row.post_path).name == plain[1].name
    assert "views inferred from the image, as a pair" in row.flags and "view unknown" not in row.flags
    study = load_cohort(tmp_path / "manifest.csv")[0]
    assert np.array_equal(study.anterior, blend) and np.array_equal(study.posterior, post)


def test_an_unsure_single_view_is_kept_as_view_unknown(tmp_path, held_out) -> None:
    ant, post = held_out[4]
    blend = (0.5 * ant + 0.5 * post[:, ::-1]).astype(np.uint16)
    assert default_recogniser().recognise(blend, SPACING).p < CONFIDENCE
    write_study(
        tmp_path / "dicom",
        blend,
        None,
        stem="export",
        layout="pair",
        view_naming="none",
        pixel_spacing=SPACING,
        **_ids(4),
    )
    res = ingest(tmp_path / "dicom", out=tmp_path / "manifest.csv", progress=False)
    (row,) = res.manifest.itertuples()
    assert row.status == "flagged" and "view unknown: the image suggests" in row.flags
    assert "--assume-view" in row.flags
    # later steps go on with the likelier view and carry the flag
    study = load_cohort(tmp_path / "manifest.csv")[0]
    assert any("view unknown" in f for f in study.flags)


def test_assume_view_overrides_the_image_but_never_the_header(tmp_path, held_out) -> None:
    ant, post = held_out[5]
    write_study(
        tmp_path / "dicom" / "a",
        ant,
        None,
        stem="export",
        layout="pair",
        view_naming="none",
        pixel_spacing=SPACING,
        **_ids(5),
    )
    write_study(
        tmp_path / "dicom" / "b",
        ant,
        None,
        stem="named",
        layout="pair",
        view_naming="standard",
        pixel_spacing=SPACING,
        **_ids(6),
    )
    out = tmp_path / "manifest.csv"
    assert main(["ingest", str(tmp_path / "dicom"), "--out", str(out), "--assume-view", "POST", "--quiet"]) == 0
    m = pd.read_csv(out)
    unnamed = m[m["view_source"] == "--assume-view"]
    named = m[m["view_source"] == "ViewCodeSequence"]
    assert list(unnamed["views"]) == ["POST"] and list(named["views"]) == ["ANT"]
    assert "view set by --assume-view POST" in unnamed["flags"].iloc[0]
    rows = {r["view_source"]: r for _, r in m.iterrows()}
    assert load_cohort(out).by_key(rows["--assume-view"]["study_key"]).posterior is not None
