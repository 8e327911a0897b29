"""Tests of the synthetic cohort generator (small matrices, tiny cohorts)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.path import Path as MplPath

from scintilab.anatomy import BONE_MASS_FRACTION, BONES
from scintilab.dicomio import read_file
from scintilab.ingest import ingest, load_cohort
from scintilab.study import CLASSES, SHAPE_CLASSES
from scintilab.synth import (
    BONE_IDS,
    MU_PER_CM,
    class_plan,
    cli_main,
    generate_patient,
    render_study,
    write_cohort,
)

MATRIX = (256, 64)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny cohort (12 patients, 2 visits each) at 256 x 64, ingested once."""
    root = tmp_path_factory.mktemp("synth") / "cohort"
    write_cohort(root, size="tiny", seed=3, matrix=MATRIX, visits=2, progress=False)
    ingest(root / "dicom", root / "labels.csv", root / "annotations", root / "manifest.csv", progress=False)
    return root


def _truths(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "truth").glob("*.json"))]


def _maps(root: Path, study_id: str) -> dict[str, np.ndarray]:
    with np.load(root / "truth" / f"{study_id}_maps.npz") as z:
        return {k: z[k] for k in z.files}


def _post_in_ant_frame(post: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """Undo the sweep shift and the mirroring of a stored POST view (zero fill)."""
    dr, dc = shift
    h, w = post.shape
    out = np.zeros_like(post)
    out[max(-dr, 0) : h + min(-dr, 0), max(-dc, 0) : w + min(-dc, 0)] = post[
        max(dr, 0) : h + min(dr, 0), max(dc, 0) : w + min(dc, 0)
    ]
    return out[:, ::-1]


def test_layout_and_tables(cohort: Path) -> None:
    labels = pd.read_csv(cohort / "labels.csv", dtype=str)
    demo = pd.read_csv(cohort / "demographics.csv", dtype={"patient_id": str})
    assert list(labels.columns) == ["patient_id", "study_id", "label"]
    assert list(demo.columns) == ["patient_id", "sex", "age"]
    assert len(labels) == 24 and len(demo) == 12
    assert set(labels["label"]) <= set(CLASSES)
    assert labels["study_id"].is_unique
    assert set(demo["sex"]) <= {"M", "F"} and demo["age"].between(18, 95).all()
    cases = sorted(p.name for p in (cohort / "dicom").iterdir())
    assert cases == [f"case_{i:04d}" for i in range(1, 13)]
    for p in (cohort / "dicom").rglob("*"):  # folder and file names never carry the PatientID
        assert not any(pid in str(p) for pid in labels["patient_id"])


def test_reads_back_through_dicomio_and_ingest(cohort: Path) -> None:
    manifest = pd.read_csv(cohort / "manifest.csv")
    assert len(manifest) == 24 and (manifest["status"] == "ok").all()
    truths = {t["study_uid"]: t for t in _truths(cohort)}
    studies = list(load_cohort(cohort / "manifest.csv"))
    assert len(studies) == 24
    by_file = {t["files"][0]: t for t in truths.values()}
    for _, row in manifest.iterrows():
        rel = Path(row["ant_path"]).as_posix()
        t = next(v for k, v in by_file.items() if rel.endswith(k))
        assert row["label"] == t["label"]
        assert (row["rows"], row["cols"]) == MATRIX
        assert row["counts_ant"] == t["counts"]["ANT"] and row["counts_post"] == t["counts"]["POST"]
        df = read_file(cohort / t["files"][0])
        assert df.patient_id == t["patient_id"] and df.study_id == t["study_id"]
        assert df.study_uid == t["study_uid"] and df.study_date.isoformat() == t["date"]
        assert df.pixel_spacing == pytest.approx(tuple(t["pixel_spacing"]))
        assert int(df.views["ANT"].sum()) == t["counts"]["ANT"]
    for st in studies:
        for img in (st.anterior, st.posterior):
            assert img.dtype == np.uint16 and img.shape == MATRIX
            assert 0.8e6 <= int(img.sum()) <= 2.0e6
            # background outside the body stays well under one count per pixel
            assert img[:, :2].mean() < 1.0 or img[-20:].mean() < 1.0


def test_headers_carry_what_an_export_carries(cohort: Path) -> None:
    """Institution, station, operator, device serial and a GE Genie-style private tag that
    repeats the patient's name, as a camera export writes them: the identity checks of the
    notebooks and the demo search every output for each."""
    import pydicom

    from scintilab.dicomio import GE_PRIVATE_CREATOR, GE_PRIVATE_NAME_ELEMENT
    from scintilab.reports import phi_terms_from_dicom

    path = sorted((cohort / "dicom").rglob("*.dcm"))[0]
    ds = pydicom.dcmread(path)
    for kw in ("InstitutionName", "StationName", "OperatorsName", "DeviceSerialNumber", "OtherPatientIDs"):
        assert str(ds.get(kw, "")).strip(), kw
    block = ds.private_block(0x0009, GE_PRIVATE_CREATOR)
    assert str(block[GE_PRIVATE_NAME_ELEMENT].value) == str(ds.PatientName)
    terms = phi_terms_from_dicom([path])
    assert {str(ds.InstitutionName), str(ds.StationName), str(ds.DeviceSerialNumber)} <= terms
    assert str(ds.OperatorsName).split("^")[0] in terms


def test_paper_matrix_counts_and_values() -> None:
    pat = generate_patient(11, "ADMet", index=1)
    st = render_study(pat, 5)
    for img in (st.anterior, st.posterior):
        assert img.shape == (1024, 256) and img.dtype == np.uint16
        assert 0.8e6 <= int(img.sum()) <= 2.0e6
    body = st.body_map
    assert 5 < st.anterior[body].mean() < 60  # a few tens inside the body
    assert st.anterior[~body].mean() < 0.5
    # the bladder holds a few percent of the counts, not tens of percent
    by, bx = pat.phantom.landmarks["bladder"]
    r0, c0 = int(by), int(bx)
    box = st.anterior[r0 - 25 : r0 + 25, c0 - 30 : c0 + 30].sum()
    assert box / st.anterior.sum() < 0.12


def test_spine_brighter_post_sternum_brighter_ant(cohort: Path) -> None:
    studies = {s.study_date.isoformat() + s.patient_key: s for s in load_cohort(cohort / "manifest.csv")}
    ratios_spine, ratios_sternum = [], []
    for t in _truths(cohort):
        m = _maps(cohort, t["study_id"])
        st = next(
            s
            for s in studies.values()
            if s.study_date.isoformat() == t["date"] and int(s.anterior.sum()) == t["counts"]["ANT"]
        )
        post = _post_in_ant_frame(st.posterior.astype(np.float64), tuple(t["post_shift_rc"]))
        ant = st.anterior.astype(np.float64)
        sternum = m["bone"] == BONE_IDS["sternum"]
        # the sternum overlies the upper thoracic spine in projection: compare the spine below it
        below = np.arange(m["bone"].shape[0])[:, None] > np.flatnonzero(sternum.any(axis=1)).max()
        spine = np.isin(m["bone"], [BONE_IDS["thoracic_spine"], BONE_IDS["lumbar_spine"]]) & below
        ratios_spine.append(post[spine].mean() / ant[spine].mean())
        ratios_sternum.append(ant[sternum].mean() / post[sternum].mean())
    assert np.median(ratios_spine) > 1.6
    assert np.median(ratios_sternum) > 1.8
    assert min(ratios_spine) > 1.0 and min(ratios_sternum) > 1.0


def test_lesions_on_bone_inside_body_and_outlined(cohort: Path) -> None:
    import scintilab.labelme as lm

    n_checked = 0
    for t in _truths(cohort):
        m = _maps(cohort, t["study_id"])
        ant_json = json.loads((cohort / t["annotations"][0]).read_text())
        polys = {
            s["attributes"]["id"]: np.array(s["points"]) for s in ant_json["shapes"] if s["label"].startswith("lesion")
        }
        for les in t["lesions"]:
            n_checked += 1
            r, c = (int(round(v)) for v in les["center_rc"])
            bone_id = BONE_IDS[les["bone"]]
            assert m["bone"][r, c] == bone_id, les
            assert m["body"][r, c] == 1
            px = m["lesion"] == int(les["id"][1:])
            assert px.any() and (m["bone"][px] == bone_id).all()
            assert les["shape"] in SHAPE_CLASSES
            # the LabelMe polygon surrounds the lesion centre and stays inside the body
            poly = polys[les["id"]]
            assert MplPath(poly).contains_point((c, r), radius=-1.0) or MplPath(poly).contains_point((c, r), radius=1.0)
            xs, ys = (
                np.clip(np.round(poly[:, 0]).astype(int), 0, MATRIX[1] - 1),
                np.clip(np.round(poly[:, 1]).astype(int), 0, MATRIX[0] - 1),
            )
            body = m["body"].astype(bool)
            near = np.zeros_like(body)
            near[1:-1, 1:-1] = body[:-2, 1:-1] | body[2:, 1:-1] | body[1:-1, :-2] | body[1:-1, 2:] | body[1:-1, 1:-1]
            assert near[ys, xs].all()
        # the shapes read back through the LabelMe reader carry the paper's label form
        shapes, problems = lm.read_labelme(cohort / t["annotations"][0], image_hw=MATRIX)
        assert problems == []
        for s in shapes:
            kind, shape, region = s.label.split(":")
            assert kind in ("lesion", "benign")
    assert n_checked > 0


def test_views_mirror_each_other_in_annotations(cohort: Path) -> None:
    for t in _truths(cohort):
        if len(t["annotations"]) < 2:
            continue
        a, p = (json.loads((cohort / f).read_text())["shapes"] for f in t["annotations"])
        assert len(a) == len(p)
        dr, dc = t["post_shift_rc"]
        for sa, sp in zip(a, p):
            pa, pp = np.array(sa["points"]), np.array(sp["points"])
            back = np.stack([MATRIX[1] - 1 - (pp[:, 0] - dc), pp[:, 1] - dr], axis=1)
            assert np.allclose(back, pa, atol=0.02)


def test_depth_sets_view_brightness_and_bsi(cohort: Path) -> None:
    for t in _truths(cohort):
        m = _maps(cohort, t["study_id"])
        for les in t["lesions"]:
            ratio = les["peak_ant"] / les["peak_post"]
            expect = math.exp(-MU_PER_CM * (les["depth_ant_cm"] - les["depth_post_cm"]))
            assert ratio == pytest.approx(expect, rel=0.02)
        # true BSI recomputed from the maps as documented
        bsi = 0.0
        for b in BONES:
            bone = m["bone"] == BONE_IDS[b]
            if bone.any():
                bsi += (bone & (m["lesion"] > 0)).sum() / bone.sum() * BONE_MASS_FRACTION[b]
        assert t["true_bsi"] == pytest.approx(100 * bsi, abs=1e-3)
        assert (t["true_bsi"] > 0) == (t["label"] != "NoMet")


def test_visits_same_patient_new_lesions(cohort: Path) -> None:
    truths = _truths(cohort)
    by_patient: dict[str, list[dict]] = {}
    for t in truths:
        by_patient.setdefault(t["patient_id"], []).append(t)
    assert len(by_patient) == 12
    for ts in by_patient.values():
        ts.sort(key=lambda t: t["visit"])
        assert [t["visit"] for t in ts] == [0, 1]
        assert ts[0]["date"] < ts[1]["date"]
        assert ts[0]["study_uid"] != ts[1]["study_uid"]
        base = {les["id"]: les for les in ts[0]["lesions"]}
        later = {les["id"]: les for les in ts[1]["lesions"]}
        assert set(base) <= set(later)  # lesions persist
        for lid, les in later.items():
            assert les["new"] == (lid not in base) == les["new_since_baseline"]
            if lid in base:
                assert les["center_rc"] == base[lid]["center_rc"]
        assert ts[1]["n_new_lesions"] == sum(les["new"] for les in later.values())
        if ts[0]["label"] == "NoMet":
            assert not later
        assert ts[0]["post_shift_rc"] != ts[1]["post_shift_rc"] or ts[0]["counts"] != ts[1]["counts"]
    # a single patient with many visits gains lesions only as a metastatic patient
    pat = generate_patient(7, "ADMet", visits=4, matrix=MATRIX)
    firsts = [les.first_visit for les in pat.lesions]
    assert min(firsts) == 0 and max(firsts) <= 3


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    kw = dict(n_patients=3, matrix=(128, 32), visits=2, layout="pair", progress=False)
    write_cohort(tmp_path / "a", seed=5, **kw)
    write_cohort(tmp_path / "b", seed=5, workers=2, **kw)  # worker processes give the same bytes
    write_cohort(tmp_path / "c", seed=6, **kw)
    ha, hb, hc = (_hash_tree(tmp_path / x) for x in "abc")
    assert len(ha) > 20 and ha == hb
    dicoms = [k for k in ha if k.endswith(".dcm")]
    assert any(ha[k] != hc.get(k) for k in dicoms)


def test_class_shares_and_missing_view(tmp_path: Path) -> None:
    plan = class_plan(506)
    counts = {c: plan.count(c) for c in CLASSES}
    assert counts == {"NoMet": 307, "ADMet": 119, "nADMet": 80}
    info = write_cohort(tmp_path / "c", n_patients=50, matrix=(128, 32), progress=False)
    assert info.patient_counts == {c: class_plan(50).count(c) for c in CLASSES}
    assert info.n_images == 99 and len(info.missing_views) == 1
    missing_study = info.missing_views[0][0]
    t = json.loads((tmp_path / "c" / "truth" / f"{missing_study}.json").read_text())
    assert t["label"] == "ADMet" and t["missing_view"] == "POST" and len(t["annotations"]) == 1
    shares = np.array([info.image_counts[c] for c in CLASSES]) / info.n_images
    assert np.allclose(shares, [0.607, 0.234, 0.158], atol=0.03)


def test_classes_differ_as_documented() -> None:
    stats = {c: {"n": [], "size": [], "shape": []} for c in ("ADMet", "nADMet")}
    for c in stats:
        for i in range(40):
            pat = generate_patient(np.random.default_rng([99, i]), c, matrix=(128, 32))
            stats[c]["n"].append(len(pat.lesions))
            stats[c]["size"] += [les.size_mm for les in pat.lesions]
            stats[c]["shape"] += [les.shape for les in pat.lesions]
    assert np.mean(stats["ADMet"]["n"]) > 1.4 * np.mean(stats["nADMet"]["n"])
    assert np.median(stats["nADMet"]["size"]) > np.median(stats["ADMet"]["size"])
    frac = {c: np.mean([s in ("patchy", "flake") for s in stats[c]["shape"]]) for c in stats}
    assert frac["nADMet"] > frac["ADMet"]
    # overlapping, not separable: some ADMet patients have fewer lesions than some nADMet ones
    assert min(stats["ADMet"]["n"]) < max(stats["nADMet"]["n"])


def test_cli_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert cli_main([str(out), "--patients", "2", "--matrix", "128x32", "--seed", "1", "--quiet"]) == 0
    assert "2 patients" in capsys.readouterr().out
    assert (out / "labels.csv").exists() and len(list((out / "annotations").glob("*.json"))) == 4
    other = tmp_path / "not_a_cohort"
    other.mkdir()
    (other / "keep.txt").write_text("user data")
    assert cli_main([str(other), "--patients", "1", "--quiet"]) == 2
    assert (other / "keep.txt").read_text() == "user data" and not (other / "dicom").exists()
    with pytest.raises(SystemExit):
        cli_main([str(out), "--matrix", "big"])
    with pytest.raises(ValueError):
        generate_patient(0, "Unknown")
    with pytest.raises(ValueError):
        write_cohort(tmp_path / "x", size="huge")
