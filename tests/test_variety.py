"""The clinic variety of the synthetic generator (issue 23, item 1).

The cohort here is small and at the matrices the variety draws; each test checks one
promise of :mod:`scintilab.synth.variety` against what was written to disk.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scintilab.dicomio import read_file
from scintilab.ingest import ingest, load_cohort
from scintilab.synth import cli_main, generate_patient, render_study, write_cohort
from scintilab.synth.phantom import BONE_IDS
from scintilab.synth.variety import FAMILIES, RARE_LESION_SITES


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 clinic patients, 2 visits, matrices drawn per patient, ingested once."""
    root = tmp_path_factory.mktemp("variety") / "clinic"
    write_cohort(root, n_patients=16, seed=4302, visits=2, progress=False, variety="clinic")
    ingest(root / "dicom", root / "labels.csv", root / "annotations", root / "manifest.csv", progress=False)
    return root


def _truths(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "truth").glob("*.json"))]


def test_draws_and_families_are_recorded(clinic: Path) -> None:
    meta = json.loads((clinic / "cohort.json").read_text())
    assert meta["variety"] == "clinic" and meta["matrix"] is None
    truths = _truths(clinic)
    fams: Counter[str] = Counter()
    for t in truths:
        assert set(t["families"]) <= set(FAMILIES), t["families"]
        assert t["variety"]["patient"]["profile"] == "clinic"
        assert t["variety"]["visit"]["fwhm_mm"] is not None and 6.0 <= t["variety"]["visit"]["fwhm_mm"] <= 14.0
        fams.update(t["families"])
        ids = [r["id"] for r in t["lesions"] + t["benign"]]
        assert len(ids) == len(set(ids)), f"{t['study_id']}: a finding id given twice: {sorted(ids)}"
    # follow-ups always move the patient on the bed; a baseline never does
    assert all(("moved" in t["families"]) == (t["visit"] > 0) for t in truths)
    assert len(fams) >= 8, fams  # 16 patients already show many families


def test_matrix_and_pixel_size_reach_dicom_and_ingest(clinic: Path) -> None:
    truths = {t["study_id"]: t for t in _truths(clinic)}
    mats = {tuple(t["matrix"]) for t in truths.values()}
    assert mats <= {(1024, 256), (2048, 512), (512, 128)} and len(mats) >= 2, mats
    for t in truths.values():
        rec = read_file(clinic / t["files"][0])
        assert rec.pixel_spacing == pytest.approx(tuple(t["pixel_spacing"]))
        assert all(img.shape == tuple(t["matrix"]) for img in rec.views.values())
    manifest = pd.read_csv(clinic / "manifest.csv")
    assert (manifest["status"] == "ok").all() and len(manifest) == len(truths)
    by_counts = {(t["counts"]["ANT"], t["counts"]["POST"]): t for t in truths.values()}
    for st in load_cohort(clinic / "manifest.csv"):
        t = by_counts[(int(st.anterior.sum()), int(st.posterior.sum()))]
        assert st.anterior.shape == tuple(t["matrix"])
        assert st.pixel_spacing == pytest.approx(tuple(t["pixel_spacing"]))


def test_counts_span_the_clinic_range(clinic: Path) -> None:
    counts = [t["counts"]["ANT"] for t in _truths(clinic)]
    assert min(counts) > 0.3e6 and max(counts) < 8e6
    assert max(counts) / min(counts) > 2.5  # not one narrow band


def test_cut_field_of_view_has_no_counts_and_no_truth_below() -> None:
    """A partial sweep: nothing acquired below the cut, no finding recorded there."""
    for index in range(1, 400):
        pat = generate_patient(np.random.default_rng([77, index]), "ADMet", index=index, seed=77, variety="clinic")
        st = render_study(pat, np.random.default_rng([77, index, 0, 3]), visit=0)
        if st.cut_row is None:
            continue
        assert "cut_fov" in st.families
        assert st.anterior[st.cut_row :].sum() == 0 and st.posterior[st.cut_row :].sum() == 0
        assert st.anterior[: st.cut_row].sum() > 0
        assert all(rec["center_rc"][0] < st.cut_row for rec in st.lesions + st.benign)
        assert not st.lesion_maps[st.cut_row :].any()
        return
    pytest.fail("no cut sweep in 400 clinic patients (the variety draws 11 %)")


def test_one_arm_missing_has_no_arm_bones_on_that_side() -> None:
    for index in range(1, 600):
        pat = generate_patient(np.random.default_rng([78, index]), "NoMet", index=index, seed=78, variety="clinic")
        if "missing" not in pat.anatomy.arms:
            continue
        side = pat.anatomy.arms.index("missing")  # 0 = the patient's right = the viewer's left (ANT)
        bone = pat.phantom.bone_map
        mid = bone.shape[1] // 2
        half = bone[:, :mid] if side == 0 else bone[:, mid:]
        other = bone[:, mid:] if side == 0 else bone[:, :mid]
        for b in ("forearms", "hands"):
            assert not (half == BONE_IDS[b]).any() and (other == BONE_IDS[b]).any()
        return
    pytest.fail("no one-armed patient in 600 clinic patients (the variety draws 3 %)")


def test_metastases_reach_rare_sites_only_in_clinic() -> None:
    where = {"clinic": Counter(), "narrow": Counter()}
    for variety in where:
        for index in range(1, 61):
            pat = generate_patient(
                np.random.default_rng([79, index]),
                "ADMet",
                index=index,
                seed=79,
                matrix=(512, 128),
                variety=variety,
                draw_matrix=False,
            )
            where[variety].update(f.bone for f in pat.lesions)
    rare = set(RARE_LESION_SITES)
    assert not rare & set(where["narrow"])
    assert sum(where["clinic"][b] for b in rare) >= 1, where["clinic"]


def test_follow_up_moves_the_patient_and_the_truth_with_it() -> None:
    pat = generate_patient(np.random.default_rng([80, 1]), "ADMet", index=1, seed=80, visits=2, variety="clinic")
    base = render_study(pat, visit=0)
    follow = render_study(pat, visit=1)
    sr, sc = pat.phantom.spacing
    dr, dc = (round(v / s) for v, s in zip(follow.variety.motion_mm, (sr, sc), strict=True))
    b = {r["id"]: r["center_rc"] for r in base.lesions}
    moved = [(b[r["id"]], r["center_rc"]) for r in follow.lesions if r["id"] in b]
    assert moved, "no lesion seen at both visits"
    for (r0, c0), (r1, c1) in moved:
        assert (r1 - r0, c1 - c0) == pytest.approx((dr, dc), abs=0.01)


def test_cli_writes_clinic_by_default_and_narrow_on_request(tmp_path: Path) -> None:
    assert cli_main([str(tmp_path / "c"), "--patients", "2", "--seed", "4303", "--quiet"]) == 0
    assert json.loads((tmp_path / "c" / "cohort.json").read_text())["variety"] == "clinic"
    assert all("families" in t for t in _truths(tmp_path / "c"))
    assert (
        cli_main([str(tmp_path / "n"), "--patients", "2", "--matrix", "128x32", "--variety", "narrow", "--quiet"]) == 0
    )
    truths = _truths(tmp_path / "n")
    assert all("families" not in t and t["matrix"] == [128, 32] for t in truths)
    with pytest.raises(SystemExit):
        cli_main([str(tmp_path / "x"), "--variety", "wild"])
    with pytest.raises(ValueError, match="variety must be one of"):
        write_cohort(tmp_path / "y", n_patients=1, variety="wild")


def test_protocol_names_the_same_families() -> None:
    """validation/cohorts.yaml reports per family: it must know the generator's families."""
    from scintilab.protocol import load_protocol

    proto = load_protocol()
    assert tuple(proto.varieties["clinic"]["families"]) == FAMILIES


def test_finding_ids_stay_unique_when_findings_appear_late() -> None:
    """A benign finding that appears at a follow-up is absent at baseline; the findings
    added per visit (injection, urine) must not take its number."""
    late = 0
    for index in range(1, 121):
        pat = generate_patient(
            np.random.default_rng([81, index]),
            "NoMet",
            index=index,
            seed=81,
            visits=2,
            matrix=(256, 64),
            variety="clinic",
            draw_matrix=False,
        )
        late += any(f.first_visit > 0 for f in pat.benign)
        for visit in (0, 1):
            st = render_study(pat, visit=visit)
            ids = [r["id"] for r in st.lesions + st.benign]
            assert len(ids) == len(set(ids)), (index, visit, sorted(ids))
    assert late >= 3, late  # the case the test is about did occur


def test_a_tilted_head_turns_the_skull_and_bends_the_neck_only() -> None:
    """The skull turns about the base of the neck; the trunk's bones stay where they were."""
    from dataclasses import replace

    from scintilab.synth.phantom import random_anatomy, render_phantom

    an = random_anatomy(np.random.default_rng(82), sex="M", age=60)
    straight = render_phantom(an, (512, 128))
    tilted = render_phantom(replace(an, head_tilt_deg=12.0), (512, 128))

    def centre(ph, bone: str) -> np.ndarray:
        return np.argwhere(ph.bone_map == BONE_IDS[bone]).mean(axis=0)

    for bone in ("thoracic_spine", "pelvis", "ribs", "femora"):
        assert (straight.bone_map == BONE_IDS[bone]).sum() == (tilted.bone_map == BONE_IDS[bone]).sum()
        assert centre(straight, bone) == pytest.approx(centre(tilted, bone))
    # positive tilt turns the vertex towards larger columns, by about 12 degrees about the neck
    (r0, c0), (_, c1) = centre(straight, "skull"), centre(tilted, "skull")
    base_r = straight.landmarks["C7"][0]
    turn = np.degrees(np.arctan2(c1 - c0, base_r - r0))
    assert c1 > c0 + 2 and 6.0 < turn < 16.0, (c0, c1, turn)
    assert tilted.landmarks["C1"][1] > straight.landmarks["C1"][1]  # the neck bends with it


def test_arms_that_move_at_follow_up_carry_their_findings_on_the_bone() -> None:
    """At a follow-up whose arms moved, each arm finding still lies on its bone, and
    moved with it rather than with the body."""
    seen = 0
    for index in range(1, 300):
        pat = generate_patient(
            np.random.default_rng([83, index]), "ADMet", index=index, seed=83, visits=2, variety="clinic"
        )
        follow = render_study(pat, visit=1)
        if "arms_moved" not in follow.families:
            continue
        assert follow.variety.arms_moved
        base = render_study(pat, visit=0)
        b = {r["id"]: r for r in base.lesions}
        sr, sc = pat.phantom.spacing
        dr, dc = (round(v / s) for v, s in zip(follow.variety.motion_mm, (sr, sc), strict=True))
        for rec in follow.lesions:
            if rec["bone"] not in ("humeri", "forearms", "hands") or rec["pixels"] == 0:
                continue
            own = follow.lesion_maps == int(rec["id"][1:])
            # the lesion's pixels are on its bone in this visit's bone map
            assert (follow.bone_maps[own] == BONE_IDS[rec["bone"]]).mean() > 0.5, rec
            if rec["id"] in b and rec["bone"] != "humeri":
                r0, c0 = b[rec["id"]]["center_rc"]
                r1, c1 = rec["center_rc"]
                if abs(follow.variety.forearm_change_deg[0]) + abs(follow.variety.forearm_change_deg[1]) > 5:
                    seen += (abs(r1 - r0 - dr) + abs(c1 - c0 - dc)) > 1.0  # moved with the arm, not the bed
        if seen >= 2:
            return
    pytest.fail(f"only {seen} forearm or hand lesions seen moving with their arm in 300 patients")


def test_superscan_brightens_the_marrow_and_counts_in_the_true_bsi() -> None:
    from dataclasses import replace

    from scintilab.synth.superscan import DIFFUSE_ID

    pat = generate_patient(np.random.default_rng([84, 1]), "ADMet", index=1, seed=84, variety="clinic")
    pat.variety = replace(pat.variety, superscan_gain=2.5, head_tilt_deg=0.0)
    plain = generate_patient(np.random.default_rng([84, 1]), "ADMet", index=1, seed=84, variety="clinic")
    plain.variety = replace(plain.variety, superscan_gain=0.0, head_tilt_deg=0.0)
    ss, st = render_study(pat, visit=0), render_study(plain, visit=0)
    assert "superscan" in ss.families and "superscan" not in st.families
    diffuse = ss.lesion_maps == DIFFUSE_ID
    assert diffuse.any() and not (st.lesion_maps == DIFFUSE_ID).any()
    assert ss.superscan is not None and ss.superscan["pixels"] == int(diffuse.sum())
    assert ss.true_bsi > 10.0 > st.true_bsi
    # the focal lesions keep their own numbers and records
    assert [r["id"] for r in ss.lesions] == [r["id"] for r in st.lesions]
    # most counts sit in bone: the soft tissue and kidneys are faint beside the marrow
    spine = ss.bone_maps == BONE_IDS["lumbar_spine"]
    soft = ss.body_map & (ss.bone_maps == 0) & (ss.lesion_maps == 0) & (ss.benign_maps == 0)
    ratio = lambda s: s.anterior[spine].mean() / s.anterior[soft].mean()  # noqa: E731
    assert ratio(ss) > 1.3 * ratio(st)  # 1.53 on this patient: scatter of the bright marrow fills the soft tissue
