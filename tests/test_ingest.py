"""Cohort ingest: grouping, labels, annotations, every bad input, identity, lazy cohort."""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import PLANTED_ID, PLANTED_NAME, phantom
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from scintilab.cli import main as scintilab_main
from scintilab.dicomio import write_study
from scintilab.errors import InputError
from scintilab.ingest import MANIFEST_COLUMNS, Cohort, ingest, load_cohort
from scintilab.labelme import write_labelme
from scintilab.pseudonym import patient_key, study_key
from scintilab.raster import write_raster
from scintilab.study import Shape

HW = (256, 64)


@dataclass
class Messy:
    """A folder that mixes good studies with every kind of bad input."""

    root: Path
    dicom: Path
    labels: Path
    annotations: Path
    uids: dict[str, str] = field(default_factory=dict)  # name -> StudyInstanceUID
    images: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)  # raw identifiers planted in the files

    def key(self, name: str) -> str:
        return study_key(self.uids[name])


def _ids(n: int) -> dict[str, str]:
    return dict(
        patient_id=f"{PLANTED_ID}{n:03d}",
        patient_name=f"{PLANTED_NAME}{n}",
        study_id=f"{PLANTED_ID}S{n:03d}",
        accession_number=f"{PLANTED_ID}A{n:03d}",
    )


def build_messy(root: Path) -> Messy:
    rng = np.random.default_rng(3)
    m = Messy(root, root / "dicom", root / "labels.csv", root / "annotations")

    def study(name: str, n: int, dest: str, *, hw=HW, post=True, spots=((60, 30, 3),), **kw):
        ids = {**_ids(n), **kw.pop("ids", {})}
        uid = kw.pop("study_uid", f"1.2.826.0.1.3680043.9.7.{n}.{len(m.uids)}")
        a = phantom(hw, spots, rng)
        p = phantom(hw, [(r, hw[1] - 1 - c, s) for r, c, s in spots], rng) if post else None
        a, p = kw.pop("ant_img", a), kw.pop("post_img", p)
        files = write_study(m.dicom / dest, a, p, stem=name, study_uid=uid, **ids, **kw)
        m.uids[name] = uid
        m.images[name] = (a, p)
        m.secrets += [ids["patient_id"], ids["patient_name"], ids["study_id"], ids["accession_number"], uid]
        return files

    study("good_mf", 1, "case_a", study_date="2020-02-01")
    study("good_pair", 2, "case_b", layout="pair", study_date="2020-03-01")
    study("visit1", 3, "case_c", study_date="2020-01-01")
    study("visit2", 3, "case_c", study_date="2020-07-01", ids={"study_id": f"{PLANTED_ID}S003b"})
    study("one_view", 4, "case_d", layout="pair", post=False)
    study("unlabelled", 5, "case_e")
    study("big", 6, "case_f", hw=(2048, 512), spots=((500, 200, 6),))
    study("small", 7, "case_g", hw=(512, 128), spots=((100, 60, 2),))
    sig = phantom(HW, [], rng).astype(np.int16)
    study("signed_sc", 8, "case_h", layout="pair", sop_class="sc", signed=True, ant_img=sig, post_img=sig)
    # The same view exported twice: lossless, and a lossy signed copy with negative values.
    study("dup", 9, "case_i", study_uid="1.2.826.0.1.3680043.9.7.9.99")
    lossy = m.images["dup"][0].astype(np.int16) - 2
    write_study(
        m.dicom / "case_i",
        lossy,
        lossy,
        stem="dup_lossy",
        signed=True,
        lossy=True,
        series_number=2,
        study_uid="1.2.826.0.1.3680043.9.7.9.99",
        **_ids(9),
    )
    neg = phantom(HW, [], rng).astype(np.int16) - 1
    study("lossy_only", 10, "case_j", signed=True, lossy=True, ant_img=neg, post_img=neg)
    # One study UID, two patients.
    study("mixA", 11, "case_k", layout="pair", post=False, study_uid="1.2.826.0.1.3680043.9.7.11.1")
    mix_b = write_study(
        m.dicom / "case_k",
        phantom(HW, [], rng),
        phantom(HW, [], rng),
        stem="mixB",
        layout="pair",
        study_uid="1.2.826.0.1.3680043.9.7.11.1",
        **_ids(12),
    )
    mix_b[0].unlink()  # keep only mixB_POST.dcm
    m.secrets += list(_ids(12).values())

    junk = m.dicom / "junk"
    junk.mkdir(parents=True)
    (junk / "notes.dat").write_text("this is a clinic note, not an image\n" * 10)
    (junk / "random.dcm").write_bytes(rng.integers(0, 255, 4000).astype(np.uint8).tobytes())
    full = study("to_truncate", 13, "junk")[0]
    data = full.read_bytes()
    full.unlink()
    (junk / "truncated.dcm").write_bytes(data[: len(data) // 2])
    m.uids.pop("to_truncate")
    study("ct", 14, "junk", modality="CT")
    study("nopix", 15, "junk", include_pixels=False)
    study("noviews", 16, "junk", view_naming="none")  # kept: named from the image, as "view unknown"
    study(
        "blank_noviews",
        18,
        "junk",
        view_naming="none",
        ant_img=np.zeros(HW, np.uint16),
        post_img=np.zeros(HW, np.uint16),
    )
    jp = study("j2k", 17, "junk")[0]
    ds = pydicom.dcmread(jp)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(40)] * 2)
    ds["PixelData"].VR = "OB"
    ds.save_as(jp, enforce_file_format=True)
    sr = pydicom.Dataset()
    sr.file_meta = pydicom.dataset.FileMetaDataset()
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID = "1.2.826.0.1.3680043.9.7.18.1"
    sr.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    sr.Modality, sr.StudyInstanceUID = "SR", "1.2.826.0.1.3680043.9.7.18"
    sr.PatientID, sr.PatientName = _ids(18)["patient_id"], _ids(18)["patient_name"]
    sr.save_as(junk / "report.dcm", enforce_file_format=True)

    # Annotations: two lesions on good_mf (both views), one on good_pair ANT, a broken
    # JSON for good_pair POST, and one file that matches no study.
    lesion = Shape("lesion:patchy:ribs", np.array([[25, 55], [35, 55], [30, 65]], float), "polygon")
    point = Shape("lesion:punctate:skull", np.array([[30, 10]], float), "point")
    benign = Shape("benign:arthritis:lower_limbs", np.array([[30, 200], [33, 203]], float), "circle")
    for view in ("ANT", "POST"):
        write_labelme(
            m.annotations / "case_a" / f"good_mf_{view}.json",
            [lesion, point, benign],
            image_path="good_mf.dcm",
            image_hw=HW,
        )
    write_labelme(m.annotations / "good_pair_ANT.json", [lesion], image_path="good_pair_ANT.dcm", image_hw=HW)
    (m.annotations / "good_pair_POST.json").write_text("{ not json")
    write_labelme(m.annotations / "orphan_ANT.json", [lesion], image_path="orphan.dcm", image_hw=HW)
    # An annotation drawn on a different matrix: reported as a size mismatch.
    write_labelme(m.annotations / "small_ANT.json", [lesion], image_path="small.dcm", image_hw=HW)

    rows = [
        (_ids(1)["patient_id"], _ids(1)["study_id"], "ADMet"),
        (_ids(2)["patient_id"], "", "nadmet"),  # keyed by patient only; label case-insensitive
        (_ids(3)["patient_id"], _ids(3)["study_id"], "NoMet"),
        (_ids(3)["patient_id"], f"{PLANTED_ID}S003b", "ADMet"),
        (_ids(4)["patient_id"], "", "NoMet"),
        (_ids(6)["patient_id"], "", "NoMet"),
        (_ids(7)["patient_id"], "", "ADMet"),
        (_ids(8)["patient_id"], "", "NoMet"),
        (_ids(9)["patient_id"], "", "nADMet"),
        (_ids(10)["patient_id"], "", "NoMet"),
        (f"{PLANTED_ID}999", f"{PLANTED_ID}S999", "ADMet"),  # a study that does not exist
        (_ids(1)["patient_id"], "", "Maybe"),  # not a class
    ]
    pd.DataFrame(rows, columns=["patient_id", "study_id", "label"]).to_csv(m.labels, index=False)
    m.secrets.append(f"{PLANTED_ID}S999")
    return m


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Messy:
    return build_messy(tmp_path_factory.mktemp("messy"))


@pytest.fixture(scope="module")
def result(messy, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "manifest.csv"
    return ingest(messy.dicom, messy.labels, messy.annotations, out, progress=False)


def _row(result, messy: Messy, name: str) -> pd.Series:
    hits = result.manifest[result.manifest["study_key"] == messy.key(name)]
    assert len(hits) == 1, f"{name} not kept"
    return hits.iloc[0]


def _skip_reason(result, name: str) -> str:
    reasons = [why for what, why in result.skipped if what.endswith(name)]
    assert reasons, f"{name} not reported as skipped: {result.skipped}"
    return reasons[0]


KEPT = [
    "good_mf",
    "good_pair",
    "visit1",
    "visit2",
    "one_view",
    "unlabelled",
    "big",
    "small",
    "signed_sc",
    "dup",
    "lossy_only",
    "noviews",
]


def test_manifest_has_the_convention_columns_and_one_row_per_kept_study(result, messy) -> None:
    assert list(result.manifest.columns) == list(MANIFEST_COLUMNS)
    assert sorted(result.manifest["study_key"]) == sorted(messy.key(n) for n in KEPT)
    written = pd.read_csv(result.out)
    assert list(written.columns) == list(MANIFEST_COLUMNS) and len(written) == len(KEPT)


def test_skipped_items_are_written_beside_the_manifest(result) -> None:
    skipped = pd.read_csv(result.out.parent / "skipped.csv", keep_default_na=False)
    assert list(skipped.columns) == ["path", "reason"]
    assert list(zip(skipped["path"], skipped["reason"])) == [(str(a), str(b)) for a, b in result.skipped]
    assert len(skipped) and not any(Path(x).is_absolute() for x in skipped["path"])


def test_manifest_records_the_scanner(result, messy, tmp_path) -> None:
    assert _row(result, messy, "good_mf").manufacturer == "scintilab"  # write_study's Manufacturer (0008,0070)
    src = next(messy.dicom.rglob("good_mf*.dcm"))
    ds = pydicom.dcmread(src)
    ds.Manufacturer, ds.ManufacturerModelName = "Siemens", "Symbia T2"
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / src.name)
    ingest(tmp_path / "in", out=tmp_path / "manifest.csv", progress=False)
    row = pd.read_csv(tmp_path / "manifest.csv").iloc[0]
    assert (row.manufacturer, row.model) == ("Siemens", "Symbia T2")


def test_clean_studies_are_ok_with_layout_counts_and_spacing(result, messy) -> None:
    row = _row(result, messy, "good_mf")
    a, p = messy.images["good_mf"]
    assert (row.status, row.views, row.layout, row.label) == ("ok", "ANT+POST", "multiframe", "ADMet")
    assert (row.rows, row.cols, row.spacing_row) == (256, 64, 2.3)
    assert (row.counts_ant, row.counts_post) == (int(a.sum()), int(p.sum()))
    assert (row.ant_frame, row.post_frame) == (0, 1)
    pair = _row(result, messy, "good_pair")
    assert pair.layout == "pair" and pair.ant_path.endswith("good_pair_ANT.dcm")
    assert pd.isna(pair.ant_frame)
    assert _row(result, messy, "visit1").status == "ok"


def test_labels_join_by_study_or_patient_and_bad_rows_are_reported(result, messy) -> None:
    assert _row(result, messy, "good_pair").label == "nADMet"  # by patient id, case-insensitive
    assert (_row(result, messy, "visit1").label, _row(result, messy, "visit2").label) == ("NoMet", "ADMet")
    unl = _row(result, messy, "unlabelled")
    assert pd.isna(unl.label) or unl.label == ""
    assert unl.status == "flagged" and "no label" in unl["flags"]
    reasons = [why for what, why in result.skipped if what.startswith("labels.csv")]
    assert any("study that is not in the folder" in r for r in reasons)
    assert any("'Maybe' is not one of" in r for r in reasons)


def test_two_visits_share_the_patient_key_with_different_dates(result, messy) -> None:
    v1, v2 = _row(result, messy, "visit1"), _row(result, messy, "visit2")
    assert v1.patient_key == v2.patient_key == patient_key(f"{PLANTED_ID}003")
    assert (v1.study_date, v2.study_date) == ("2020-01-01", "2020-07-01")


def test_annotations_are_joined_counted_and_problems_flagged(result, messy) -> None:
    row = _row(result, messy, "good_mf")
    assert row.lesion_count == 4  # 2 lesion shapes on each view; the benign circle is not counted
    assert row.annotation_ant.endswith("case_a/good_mf_ANT.json")
    assert row.status == "ok"
    pair = _row(result, messy, "good_pair")
    assert pair.lesion_count == 1 and (pd.isna(pair.annotation_post) or pair.annotation_post == "")
    assert "POST: annotation unreadable" in pair["flags"]
    assert "not valid JSON" in _skip_reason(result, "good_pair_POST.json")
    assert "matches no kept study" in _skip_reason(result, "orphan_ANT.json")
    assert "size mismatch" in _row(result, messy, "small")["flags"]
    assert pd.isna(_row(result, messy, "visit1").lesion_count)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("junk/notes.dat", "not a DICOM file"),
        ("junk/random.dcm", "not a DICOM file"),
        ("junk/truncated.dcm", "truncated"),
        ("junk/ct.dcm", "wrong modality CT"),
        ("junk/report.dcm", "structured report"),
        ("junk/nopix.dcm", "no pixel data"),
        ("junk/blank_noviews.dcm", "cannot tell the views apart"),
        ("junk/j2k.dcm", "JPEG 2000"),
        ("case_k/mixA_ANT.dcm", "mixes two patients"),
        ("case_k/mixB_POST.dcm", "mixes two patients"),
    ],
)
def test_every_bad_input_is_skipped_with_its_reason(result, name, reason) -> None:
    assert reason in _skip_reason(result, name)


def test_corrupt_compressed_pixels_are_skipped_as_undecodable(result) -> None:
    # The decoders are installed (pyproject dependencies): garbage is corrupt, not unsupported.
    assert "could not be decoded" in _skip_reason(result, "junk/j2k.dcm")


@pytest.mark.parametrize(
    "name, flag",
    [
        ("one_view", "one view only"),
        ("signed_sc", "signed pixel data"),
        ("dup", "kept the lossless one"),
        ("lossy_only", "clipped at 0"),
        ("lossy_only", "only a lossy copy"),
        # the test phantom is an ellipse, like no real body: the image cannot vouch for its views
        ("noviews", "view unknown: the image suggests"),
    ],
)
def test_odd_but_usable_studies_are_kept_and_flagged(result, messy, name, flag) -> None:
    row = _row(result, messy, name)
    assert row.status == "flagged" and flag in row["flags"]


def test_duplicate_keeps_the_lossless_file(result, messy) -> None:
    row = _row(result, messy, "dup")
    assert row.ant_path.endswith("dup.dcm") and row.post_path.endswith("dup.dcm")
    assert row.counts_ant == int(messy.images["dup"][0].sum())


@pytest.mark.parametrize("name, hw", [("big", (2048, 512)), ("small", (512, 128))])
def test_other_matrix_sizes_are_kept(result, messy, name, hw) -> None:
    row = _row(result, messy, name)
    assert (row.rows, row.cols) == hw and row.views == "ANT+POST"


def test_no_identity_reaches_the_manifest_or_the_summary(result, messy) -> None:
    texts = [
        result.out.read_text(),
        result.summary(),
        repr(result.skipped),
        (result.out.parent / "skipped.csv").read_text(),
    ]
    for secret in set(messy.secrets):
        for text in texts:
            assert secret not in text
    assert PLANTED_NAME.split("^")[0] not in "".join(texts) and PLANTED_ID not in "".join(texts)


def test_cli_writes_the_manifest_and_prints_no_identity(messy, tmp_path, capsys) -> None:
    out = tmp_path / "m" / "manifest.csv"
    code = scintilab_main(
        [
            "ingest",
            str(messy.dicom),
            "--labels",
            str(messy.labels),
            "--annotations",
            str(messy.annotations),
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 3 and out.exists()  # some items skipped: exit code 3, with the count and the list
    assert "12 studies kept" in captured.out and "skipped:" in captured.out
    assert f"item(s) skipped: see {out.parent / 'skipped.csv'}" in captured.out
    assert "mixes two patients" in captured.out
    for text in (captured.out, captured.err, out.read_text()):
        assert PLANTED_ID not in text and PLANTED_NAME.split("^")[0] not in text


def test_cli_reports_a_missing_folder(tmp_path, capsys) -> None:
    assert scintilab_main(["ingest", str(tmp_path / "nope"), "--out", str(tmp_path / "m.csv")]) == 2
    assert "source folder not found" in capsys.readouterr().err


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_input_files_are_never_written(messy, tmp_path) -> None:
    before = _snapshot(messy.root)
    modes = {}
    for p in messy.root.rglob("*"):
        modes[p] = p.stat().st_mode
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        res = ingest(messy.dicom, messy.labels, messy.annotations, tmp_path / "manifest.csv", progress=False)
        assert len(res.manifest) == len(KEPT)
        cohort = load_cohort(tmp_path / "manifest.csv")
        assert all(s.anterior is not None for s in cohort)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert _snapshot(messy.root) == before


def test_manifest_never_overwrites_an_input(messy) -> None:
    with pytest.raises(ValueError, match="overwrite an input"):
        ingest(messy.dicom, messy.labels, None, messy.labels, progress=False)


def test_pseudonyms_are_stable_and_follow_the_key(messy, tmp_path) -> None:
    a = ingest(messy.dicom, out=None, progress=False, key="alpha").manifest
    b = ingest(messy.dicom, out=None, progress=False, key="alpha").manifest
    c = ingest(messy.dicom, out=None, progress=False, key="beta").manifest
    assert list(a["study_key"]) == list(b["study_key"])
    assert set(a["patient_key"]).isdisjoint(set(c["patient_key"]))


def test_load_cohort_gives_the_written_pixels_and_shapes(result, messy) -> None:
    cohort = load_cohort(result.out)
    assert isinstance(cohort, Cohort) and len(cohort) == len(KEPT)
    study = cohort.by_key(messy.key("good_mf"))
    a, p = messy.images["good_mf"]
    np.testing.assert_array_equal(study.anterior, a)
    np.testing.assert_array_equal(study.posterior, p)
    assert study.label == "ADMet" and study.patient_key == patient_key(f"{PLANTED_ID}001")
    assert len(study.shapes_for("ANT")) == 3 and len(study.shapes_for("POST")) == 3
    one = cohort.by_key(messy.key("one_view"))
    assert one.views == ("ANT",) and any("one view only" in f for f in one.flags)
    assert load_cohort(result.out, with_shapes=False).by_key(messy.key("good_mf")).shapes == []
    assert len(cohort[2:5]) == 3 and [s.study_key for s in cohort[2:5]] == list(cohort.manifest.study_key[2:5])


def test_load_cohort_is_lazy(tmp_manifest) -> None:
    manifest = tmp_manifest(3)
    cohort = load_cohort(manifest)
    victim = manifest.parent / cohort.manifest.loc[1, "ant_path"]
    victim.unlink()  # a lazy cohort only notices when that study is read
    assert len(cohort) == 3
    assert cohort[0].anterior is not None and cohort[2].anterior is not None
    with pytest.raises(InputError):
        cohort[1]


@pytest.mark.parametrize("layout", ["multiframe", "pair"])
def test_shared_fixture_cohort_ingests_cleanly(tmp_manifest, layout) -> None:
    df = pd.read_csv(tmp_manifest(3, ["NoMet", "ADMet", "nADMet"], layout=layout, visits=2))
    assert len(df) == 6 and set(df["status"]) == {"ok"} and df["patient_key"].nunique() == 3
    assert sorted(df["label"].unique()) == ["ADMet", "NoMet", "nADMet"]
    assert (df.loc[df.label == "NoMet", "lesion_count"] == 0).all()
    assert (df.loc[df.label != "NoMet", "lesion_count"] > 0).all()


def test_png_and_tiff_exports_are_ingested_as_studies(tmp_path) -> None:
    rng = np.random.default_rng(5)
    src = tmp_path / "public"
    imgs = {}
    for name, suffix in (("BS0001", ".png"), ("BS0002", ".tif")):
        a, p = phantom(HW, [(50, 30, 3)], rng), phantom(HW, [], rng)
        imgs[name] = (a, p)
        write_raster(src / f"{name}_ANT{suffix}", a)
        write_raster(src / f"{name}_POST{suffix}", p)
    write_raster(src / "BS0003_ANT.png", phantom(HW, [], rng))
    write_raster(src / "BS0004.png", phantom(HW, [], rng))  # view not in the name
    (src / "BS0005_POST.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"image": ["BS0001_ANT.png", "BS0002"], "label": ["ADMet", "NoMet"]}).to_csv(labels, index=False)
    write_labelme(
        tmp_path / "ann" / "BS0001_ANT.json",
        [Shape("lesion:patchy:ribs", np.array([[28, 48], [32, 48], [30, 52]], float))],
        image_path="BS0001_ANT.png",
        image_hw=HW,
    )
    res = ingest(src, labels, tmp_path / "ann", tmp_path / "manifest.csv", progress=False)
    m = res.manifest.set_index("layout", drop=False)
    assert sorted(res.manifest["layout"]) == ["png", "png", "tiff"]
    assert sorted(res.manifest["label"].fillna("")) == ["", "ADMet", "NoMet"]
    assert "cannot tell the view" in _skip_reason(res, "BS0004.png")
    assert "unreadable PNG" in _skip_reason(res, "BS0005_POST.png")
    assert all("pixel spacing unknown" in f for f in res.manifest["flags"])
    cohort = load_cohort(tmp_path / "manifest.csv")
    first = next(s for s in cohort if s.label == "ADMet")
    np.testing.assert_array_equal(first.anterior, imgs["BS0001"][0])
    np.testing.assert_array_equal(first.posterior, imgs["BS0001"][1])
    assert len(first.shapes) == 1 and m.loc["tiff", "views"] == "ANT+POST"


def test_load_cohort_accepts_the_result_dataframe(result, messy) -> None:
    cohort = load_cohort(result.manifest)
    np.testing.assert_array_equal(cohort.by_key(messy.key("good_pair")).anterior, messy.images["good_pair"][0])


def test_study_id_shared_by_two_patients_labels_only_the_named_patient(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2):  # hospitals often number studies per patient: both are study "1"
        write_study(
            tmp_path / "dicom" / f"case_{n}",
            phantom(HW, [], rng),
            phantom(HW, [], rng),
            stem="s",
            patient_id=f"P{n}",
            patient_name=f"N^{n}",
            study_id="1",
        )
    pd.DataFrame({"patient_id": ["P1", "P2"], "study_id": ["1", "1"], "label": ["ADMet", "NoMet"]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    m = ingest(tmp_path / "dicom", tmp_path / "labels.csv", progress=False).manifest.set_index("patient_key")
    assert (m.loc[patient_key("P1"), "label"], m.loc[patient_key("P2"), "label"]) == ("ADMet", "NoMet")


def test_two_different_images_named_ant_are_flagged_as_possibly_mislabelled(tmp_path) -> None:
    rng = np.random.default_rng(2)
    ids = dict(patient_id="P1", patient_name="N^1", study_id="1", study_uid="1.2.826.0.1.3680043.9.7.77")
    write_study(tmp_path / "d", phantom(HW, [], rng), None, stem="a", layout="pair", **ids)
    write_study(tmp_path / "d", phantom(HW, [(40, 30, 3)], rng), None, stem="b", layout="pair", series_number=2, **ids)
    m = ingest(tmp_path / "d", progress=False).manifest
    assert len(m) == 1 and m.loc[0, "ant_path"].endswith("a_ANT.dcm")
    assert "mislabelled" in m.loc[0, "flags"] and "one view only" in m.loc[0, "flags"]
