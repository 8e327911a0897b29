"""The cohort audit: planted faults are found, clean studies are left alone, splits cannot leak.

The cohort comes from the real synthetic generator at a reduced matrix (512x128), written
as DICOM and ingested; faults are planted into a copy with pydicom (scintilab.faults).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scintilab.audit import (
    FLAG_COLUMNS,
    LeakageError,
    audit,
    check_split,
    cli_main,
    read_review,
    record_decision,
    refuse_leaky_split,
    split_groups,
)
from scintilab.errors import InputError
from scintilab.faults import ALL_FAULTS, PAIR_FAULTS, apply_fault, faulty_copy, plant_faults, score_detection
from scintilab.ingest import ingest, load_cohort, read_manifest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
MATRIX = (512, 128)


@pytest.fixture(scope="module")
def clean_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 synthetic patients at 512x128, DICOM + labels + annotations + manifest."""
    from scintilab.synth.cohort import write_cohort

    root = tmp_path_factory.mktemp("audit") / "clean"
    write_cohort(root, n_patients=40, size="tiny", seed=3, matrix=MATRIX, progress=False)
    ingest(root / "dicom", root / "labels.csv", root / "annotations", root / "manifest.csv")
    return root


@pytest.fixture(scope="module")
def faulty(clean_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A copy of the clean cohort with one fault of every kind, on disk, re-ingested."""
    out = tmp_path_factory.mktemp("audit") / "faulty"
    return faulty_copy(clean_cohort, out, per_kind=1, rng=11)


@pytest.fixture(scope="module")
def faulty_audit(faulty: tuple[Path, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory):
    manifest, truth = faulty
    return audit(manifest, out=tmp_path_factory.mktemp("audit") / "out"), truth


# ------------------------------------------------------------------------ detection


def test_every_planted_fault_on_disk_is_found(faulty_audit) -> None:
    res, truth = faulty_audit
    assert set(truth["kind"]) == set(ALL_FAULTS)
    table, clean_rate = score_detection(res.flags, truth, res.manifest["study_key"].tolist())
    print("\n" + table.to_string(index=False), f"\nclean studies flagged: {clean_rate:.1%}")
    assert table["found"].sum() / table["planted"].sum() >= 0.95, table
    assert clean_rate <= 0.01


def test_detection_rates_in_memory_two_of_each(clean_cohort: Path) -> None:
    """A second seed, two faults of each kind, planted into Study records in memory."""
    studies = list(load_cohort(clean_cohort / "manifest.csv", with_shapes=False))
    planted, truth = plant_faults(studies, [k for k in ALL_FAULTS if k != "reacquired"], per_kind=2, rng=5)
    res = audit(planted)
    table, clean_rate = score_detection(res.flags, truth, [s.study_key for s in planted])
    print("\n" + table.to_string(index=False), f"\nclean studies flagged: {clean_rate:.1%}")
    assert table["found"].sum() / table["planted"].sum() >= 0.95, table
    assert clean_rate <= 0.01


def test_clean_cohort_is_left_alone(clean_cohort: Path) -> None:
    res = audit(clean_cohort / "manifest.csv")
    assert list(res.flags.columns) == FLAG_COLUMNS
    # The generator's cohort is clean: nothing but (at most) ingest's own remarks.
    assert res.flags[~res.flags["kind"].str.startswith("ingest")].empty, res.flags


def test_pair_findings_name_both_studies_and_singles_leave_b_empty(faulty_audit) -> None:
    res, _ = faulty_audit
    f = res.flags
    pairs = f[f["kind"].isin(["exact_duplicate", "near_duplicate", "same_patient"])]
    assert len(pairs) and (pairs["study_b"] != "").all()
    singles = f[f["kind"].isin(["swapped_views", "empty_frame", "spot_view"])]
    assert len(singles) and (singles["study_b"] == "").all()
    assert f["detail"].str.len().min() > 10  # every finding says what it is in words


# ------------------------------------------------------------------------ faults


def test_faults_do_what_they_say(clean_cohort: Path) -> None:
    s = load_cohort(clean_cohort / "manifest.csv", with_shapes=False)[0]
    before = s.anterior.copy()
    exact = apply_fault(s, "exact_copy", 0)
    assert exact.study_key != s.study_key and exact.patient_key != s.patient_key
    assert np.array_equal(exact.anterior, s.anterior)
    swapped = apply_fault(s, "swapped_views", 0)
    assert swapped.study_key == s.study_key and np.array_equal(swapped.anterior, s.posterior)
    assert np.array_equal(apply_fault(s, "mirrored_ant", 0).anterior, s.anterior[:, ::-1])
    tenth = apply_fault(s, "tenth_counts", 0)
    assert 0.08 < tenth.anterior.sum() / s.anterior.sum() < 0.12
    half = apply_fault(s, "rematrixed_copy", np.random.default_rng(1))
    assert half.shape_hw != s.shape_hw
    assert np.array_equal(s.anterior, before)  # the input record is never changed
    with pytest.raises(ValueError, match="unknown fault"):
        apply_fault(s, "nonsense", 0)


def test_planting_on_disk_never_touches_the_source(clean_cohort: Path, faulty) -> None:
    src = sorted((clean_cohort / "dicom").rglob("*.dcm"))
    assert not any("plant" in p.name for p in src)
    manifest, truth = faulty
    assert len(read_manifest(manifest)) == len(read_manifest(clean_cohort / "manifest.csv")) + sum(
        k in PAIR_FAULTS for k in truth["kind"]
    )


# ------------------------------------------------------------------------ splits


def _imageset(man: pd.DataFrame):
    from scintilab.datasets import ImageSet
    from scintilab.study import CLASSES

    n = len(man)
    labels = np.array([CLASSES.index(x) if x in CLASSES else 0 for x in man["label"].fillna("NoMet")])
    return ImageSet(
        images=np.zeros((n, 2, 2), np.float32),
        labels=labels,
        patient_keys=man["patient_key"].to_numpy(),
        study_keys=man["study_key"].to_numpy(),
        kinds=np.array(["fused"] * n),
        aug=np.array(["orig"] * n),
    )


def test_splits_never_put_a_flagged_pair_on_both_sides(faulty_audit) -> None:
    from scintilab.datasets import kfold_splits, patient_split

    res, truth = faulty_audit
    ds = _imageset(res.manifest)
    groups = split_groups(res.manifest, res.flags)
    g = groups.loc[ds.study_keys].to_numpy()
    n_pairs = res.flags["kind"].isin(["exact_duplicate", "near_duplicate", "same_patient"]).sum()
    assert n_pairs >= 6
    leaks_without_groups = 0
    for seed in range(40):
        tr, te = patient_split(ds, 0.3, rng=seed, groups=g)
        split = pd.DataFrame({"study_key": ds.study_keys, "split": "train"})
        split.loc[te, "split"] = "test"
        assert check_split(split, res.flags) == [], seed
        tr, te = patient_split(ds, 0.3, rng=seed)  # patient keys only: copies have new ids
        split.loc[:, "split"] = "train"
        split.loc[te, "split"] = "test"
        leaks_without_groups += len(check_split(split, res.flags))
    for seed in range(5):
        for k, (_tr, te) in enumerate(kfold_splits(ds, 5, rng=seed, groups=g)):
            split = pd.DataFrame({"study_key": ds.study_keys, "split": "train"})
            split.loc[te, "split"] = "test"
            assert check_split(split, res.flags) == [], (seed, k)
    # The check is not vacuous: splitting by patient key alone does leak the copies.
    assert leaks_without_groups > 0


def test_split_groups_merge_transitively_and_honour_review(tmp_path: Path) -> None:
    man = pd.DataFrame(
        {"study_key": ["S-a", "S-b", "S-c", "S-d", "S-e"], "patient_key": ["P-1", "P-2", "P-3", "P-3", "P-5"]}
    )
    flags = pd.DataFrame(
        [
            {"kind": "near_duplicate", "study_a": "S-a", "study_b": "S-b", "score": 1.0, "detail": "x"},
            {"kind": "same_patient", "study_a": "S-b", "study_b": "S-c", "score": 0.5, "detail": "x"},
            {"kind": "saturation", "study_a": "S-e", "study_b": "", "score": 0.5, "detail": "x"},
        ]
    )
    g = split_groups(man, flags)
    assert g["S-a"] == g["S-b"] == g["S-c"] == g["S-d"] != g["S-e"]
    assert all(v.startswith("G-") for v in g)
    review = tmp_path / "review.csv"
    record_decision(review, "same_patient", "S-c", "S-b", "dismiss", "different arms")
    g2 = split_groups(man, flags, review=review)
    assert g2["S-a"] == g2["S-b"] and g2["S-c"] == g2["S-d"] and g2["S-a"] != g2["S-c"]
    split = pd.DataFrame(
        {"study_key": ["S-a", "S-b", "S-c", "S-d", "S-e"], "split": ["train", "test", "train", "train", "test"]}
    )
    pairs = check_split(split, flags)
    assert [(p.kind, p.study_a, p.study_b) for p in pairs] == [
        ("near_duplicate", "S-a", "S-b"),
        ("same_patient", "S-b", "S-c"),
    ]
    assert check_split(split, flags, review=review)[0].study_b == "S-b"
    with pytest.raises(LeakageError, match="S-a.*S-b"):
        refuse_leaky_split(split, flags)
    assert len(refuse_leaky_split(split, flags, go_on=True)) == 2


def test_review_dismissal_removes_the_finding(faulty, faulty_audit, tmp_path: Path) -> None:
    manifest, _ = faulty
    res, _ = faulty_audit
    row = res.flags[res.flags["kind"] == "near_duplicate"].iloc[0]
    review = tmp_path / "review.csv"
    record_decision(review, row["kind"], row["study_b"], row["study_a"], "dismiss")  # order does not matter
    assert read_review(review)["decision"].tolist() == ["dismiss"]
    again = audit(manifest, review=review)

    def same(f: pd.DataFrame) -> pd.DataFrame:
        return f[(f["kind"] == row["kind"]) & (f["study_a"] == row["study_a"]) & (f["study_b"] == row["study_b"])]

    assert same(again.flags).empty and len(same(again.dismissed)) == 1
    assert len(again.flags) == len(res.flags) - 1
    with pytest.raises(ValueError, match="accept"):
        record_decision(review, "x", "S-a", "", "maybe")


# ------------------------------------------------------------------------ CLI, data card


def test_cli_writes_flags_and_a_datacard_without_identities(faulty, faulty_audit, tmp_path: Path) -> None:
    manifest, truth = faulty
    res, _ = faulty_audit
    pair = res.flags[res.flags["kind"] == "near_duplicate"].iloc[0]
    split = pd.DataFrame({"study_key": res.manifest["study_key"], "split": "train"})
    split.loc[split["study_key"] == pair["study_b"], "split"] = "test"
    split.loc[split["study_key"] == pair["study_a"], "split"] = "train"
    split_csv = tmp_path / "split.csv"
    split.to_csv(split_csv, index=False)
    review = tmp_path / "review.csv"
    dismissed = res.flags[res.flags["kind"] == "saturation"].iloc[0]
    record_decision(review, "saturation", dismissed["study_a"], "", "dismiss")
    out = tmp_path / "audit"
    rc = cli_main(
        [str(manifest), "--split", str(split_csv), "--review", str(review), "--out", str(out), "--fail-on-leak"]
    )
    assert rc == 1  # the split leaks the pair
    flags = pd.read_csv(out / "flags.csv", keep_default_na=False)
    assert list(flags.columns) == FLAG_COLUMNS
    leak = flags[flags["kind"] == "split_leak"]
    assert {pair["study_a"], pair["study_b"]} <= set(leak["study_a"]) | set(leak["study_b"])
    sat = flags[(flags["kind"] == "saturation") & (flags["study_a"] == dismissed["study_a"])]
    assert sat.empty
    page = (out / "datacard.html").read_text()
    md = (out / "datacard.md").read_text()
    assert "Dismissed by review" in page and "Visits per patient" in md and "Matrix sizes" in md
    # No raw identity: the DICOM PatientIDs/StudyIDs from labels.csv, names, or source paths.
    raw = pd.read_csv(manifest.parent / "labels.csv", dtype=str)
    for text in (page, md, (out / "flags.csv").read_text()):
        for ident in set(raw["patient_id"]) | set(raw["study_id"]):
            assert ident not in text
        assert "dicom/" not in text and "Planted^" not in text and ".dcm" not in text


def test_cli_rejects_a_missing_manifest(tmp_path: Path, capsys) -> None:
    assert cli_main([str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.csv" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing made for a run that could not start
    with pytest.raises(InputError, match="manifest not found"):
        audit(tmp_path / "nope.csv")


def test_unreadable_study_is_reported_and_the_batch_goes_on(clean_cohort: Path, tmp_path: Path) -> None:
    copy = tmp_path / "c"
    shutil.copytree(clean_cohort, copy)
    man = read_manifest(copy / "manifest.csv")
    victim = copy / man["ant_path"].iloc[2]
    victim.write_bytes(b"not a dicom file at all")
    res = audit(copy / "manifest.csv")
    bad = res.flags[res.flags["kind"] == "unreadable"]
    assert bad["study_a"].tolist() == [man["study_key"].iloc[2]]
    assert str(copy) not in bad["detail"].iloc[0]
    assert len(res.features) == len(man) - 1


def test_ingest_findings_join_the_table(clean_cohort: Path) -> None:
    man = read_manifest(clean_cohort / "manifest.csv")
    man.loc[0, "status"] = "flagged"
    man.loc[0, "flags"] = "no label"
    from scintilab.audit import ingest_findings

    found = ingest_findings(man, None, [("dicom/case_0001/x.dcm", "dicom/case_0001/x.dcm: not DICOM")])
    kinds = {(f.kind, f.detail) for f in found}
    assert ("ingest_flag", "status flagged: no label") in kinds
    skipped = [f for f in found if f.kind == "ingest_skipped"]
    assert skipped[0].study_a.startswith("F-") and skipped[0].detail == "not DICOM"


def test_skipped_csv_beside_the_manifest_is_read_and_scanners_reported(clean_cohort: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(clean_cohort / "dicom" / "case_0001", src / "case_0001")
    (src / "case_0001" / "junk.dcm").write_bytes(b"not a dicom file at all")
    ingest(src, out=tmp_path / "manifest.csv", progress=False)
    assert "junk.dcm" in (tmp_path / "skipped.csv").read_text()
    res = audit(tmp_path / "manifest.csv", out=tmp_path / "audit")
    skipped = res.flags[res.flags["kind"] == "ingest_skipped"]
    assert len(skipped) == 1 and skipped["study_a"].iloc[0].startswith("F-")
    assert "junk" not in (tmp_path / "audit" / "flags.csv").read_text()  # the path itself is never shown
    # The data card counts studies per scanner from the manifest's manufacturer/model columns.
    md = (tmp_path / "audit" / "datacard.md").read_text()
    assert "Scanners" in md and "scintilab" in md and "not recorded" not in md


# ------------------------------------------------------------------------ widget, notebook


def test_audit_explorer_records_decisions(faulty, faulty_audit, tmp_path: Path) -> None:
    from scintilab_widgets.audit_explorer import AuditExplorer

    manifest, _ = faulty
    res, _ = faulty_audit
    cohort = load_cohort(manifest, with_shapes=False)
    ex = AuditExplorer(res.flags, cohort.by_key, tmp_path / "review.csv")
    assert ex.widget is ex.widget  # one box: a second display shows the same live explorer
    first = ex.current
    assert len(ex.figure.axes) == (4 if first["study_b"] else 2)
    assert ex.image.value[:4] == b"\x89PNG"
    ex.note.value = "checked"
    ex.dismiss.click()
    assert ex.finding.value == 1
    rv = read_review(tmp_path / "review.csv")
    assert rv.iloc[0][["kind", "study_a", "decision", "note"]].tolist() == [
        first["kind"],
        first["study_a"],
        "dismiss",
        "checked",
    ]
    single = int(res.flags.index[res.flags["study_b"] == ""][0])
    ex.finding.value = single
    assert len(ex.figure.axes) == 2 and ex.status.value == "no decision yet"
    ex.accept.click()
    ex.finding.value = single
    assert "accept" in ex.status.value


@pytest.mark.slow
@pytest.mark.notebook
def test_audit_notebook_runs_under_papermill(clean_cohort: Path, tmp_path: Path) -> None:
    import nbformat
    import papermill as pm

    from scintilab.paths import repo_root

    nb_path = repo_root() / "notebooks" / "00b_cohort_audit.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    smoke = dict(nb.metadata["scintilab"]["smoke"])
    assert nb.metadata["scintilab"]["needs"] == ["cohort_small"]
    declared = pm.inspect_notebook(str(nb_path))
    assert set(smoke) <= set(declared)
    smoke.update(data_dir=str(clean_cohort), out_dir=str(tmp_path / "out"))
    pm.execute_notebook(
        str(nb_path),
        str(tmp_path / "run.ipynb"),
        parameters=smoke,
        kernel_name="python3",
        progress_bar=False,
        cwd=str(repo_root()),
    )
    assert (tmp_path / "out" / "datacard.html").exists()
    run = nbformat.read(tmp_path / "run.ipynb", as_version=4)
    text = "\n".join(str(o) for c in run.cells for o in c.get("outputs", []))
    raw = pd.read_csv(clean_cohort / "labels.csv", dtype=str)
    assert not any(pid in text for pid in raw["patient_id"])


def test_a_lossy_compressed_study_is_named_by_the_audit(tmp_cohort_dir, tmp_path: Path) -> None:
    import pydicom
    from pydicom.uid import JPEG2000

    root = tmp_cohort_dir(3, annotations=False)
    files = sorted((root / "dicom").rglob("*.dcm"))
    ds = pydicom.dcmread(files[1])
    ds.compress(JPEG2000, j2k_cr=[10])  # lossy JPEG 2000; the header still says "00"
    ds.save_as(files[1])  # the test's own copy, never a user's input
    result = ingest(root / "dicom", out=tmp_path / "manifest.csv", progress=False)
    res = audit(tmp_path / "manifest.csv")
    lossy = res.flags[res.flags["kind"] == "lossy_compressed"]
    man = result.manifest
    key = man.loc[man["ant_path"].str.contains(files[1].name), "study_key"].iloc[0]
    assert lossy["study_a"].tolist() == [key]
    assert "counts are not raw" in lossy["detail"].iloc[0] and "JPEG 2000" in lossy["detail"].iloc[0]
