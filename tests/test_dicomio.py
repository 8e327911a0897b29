"""DICOM writer and reader: both layouts, every view naming, NM attributes, bad files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import phantom
from pydicom.encaps import encapsulate
from pydicom.uid import UID, JPEG2000Lossless, JPEGLosslessSV1, RLELossless

from scintilab.dicomio import (
    COMPRESSIONS,
    LOSSY_FLAG,
    NM_IMAGE_STORAGE,
    SECONDARY_CAPTURE_STORAGE,
    VIEW_NAMINGS,
    read_file,
    read_study,
    read_views,
    views_named_in,
    write_study,
)
from scintilab.errors import InputError
from scintilab.pseudonym import patient_key, study_key

HW = (256, 64)
IDS = dict(patient_id="PID123", patient_name="Doe^Jane", study_id="ST77")


@pytest.fixture
def views() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.integers(0, 900, HW).astype(np.uint16), rng.integers(0, 900, HW).astype(np.uint16)


NAMED = [(layout, naming) for layout, names in VIEW_NAMINGS.items() for naming in names if naming != "none"]


@pytest.mark.parametrize("layout, naming", NAMED, ids=[f"{a}-{b}" for a, b in NAMED])
def test_every_layout_and_view_naming_reads_back_the_right_views(tmp_path, views, layout, naming) -> None:
    ant, post = views
    # Frame 1 holds POST so a reader going by frame order alone would swap the views.
    files = write_study(
        tmp_path,
        ant,
        post,
        stem="s",
        layout=layout,
        view_naming=naming,
        frame_order=("POST", "ANT"),
        study_date="2021-03-04",
        **IDS,
    )
    assert len(files) == (1 if layout == "multiframe" else 2)
    study = read_study(files)
    np.testing.assert_array_equal(study.anterior, ant)
    np.testing.assert_array_equal(study.posterior, post)
    assert study.anterior.dtype == np.uint16 and study.posterior.dtype == np.uint16
    assert study.flags == []
    assert study.meta["layout"] == layout
    assert study.meta["counts_ant"] == int(ant.sum(dtype=np.int64))
    assert str(study.study_date) == "2021-03-04"
    assert study.pixel_spacing == (2.3, 2.3)


@pytest.mark.parametrize("layout", ["multiframe", "pair"])
def test_views_named_by_nothing_and_blank_cannot_be_told_apart(tmp_path, layout) -> None:
    blank = np.zeros(HW, np.uint16)
    files = write_study(tmp_path, blank, blank, stem="s", layout=layout, view_naming="none", **IDS)
    for f in files:
        with pytest.raises(InputError, match="cannot tell the views apart.*the image cannot say") as info:
            read_views(f)
        assert info.value.path == f


def test_noise_named_by_nothing_is_kept_as_view_unknown(tmp_path, views) -> None:
    # Random counts are like no body: the recogniser's p means nothing there and it says so.
    (path,) = write_study(tmp_path, *views, stem="s", layout="multiframe", view_naming="none", **IDS)
    got = read_file(path)
    assert set(got.views) == {"ANT", "POST"}
    assert any(f.startswith("view unknown") and "unlike every view" in f for f in got.flags), got.flags


def test_pair_files_named_only_by_file_name_are_read_by_file_name(tmp_path, views) -> None:
    files = write_study(tmp_path, *views, stem="s", layout="pair", view_naming="filename", **IDS)
    assert [f.name for f in files] == ["s_ANT.dcm", "s_POST.dcm"]
    assert read_file(files[1]).meta["view_source"] == "file name"


def test_multiframe_file_has_proper_nm_attributes(tmp_path, views) -> None:
    (path,) = write_study(
        tmp_path,
        *views,
        stem="s",
        pixel_spacing=(2.4, 2.2),
        sex="F",
        age=61,
        birth_date="1960-02-03",
        accession_number="A1",
        **IDS,
    )
    ds = pydicom.dcmread(path)
    assert path.read_bytes()[128:132] == b"DICM"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == NM_IMAGE_STORAGE == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.Modality == "NM" and int(ds.NumberOfFrames) == 2
    assert pydicom.tag.Tag("DetectorVector") in list(ds.FrameIncrementPointer)
    assert list(ds.DetectorVector) == [1, 2] and ds.NumberOfDetectors == 2
    meanings = [item.ViewCodeSequence[0].CodeMeaning for item in ds.DetectorInformationSequence]
    assert meanings == ["Anterior projection", "Posterior projection"]
    assert (ds.Rows, ds.Columns) == HW
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 0)
    assert [float(x) for x in ds.PixelSpacing] == [2.4, 2.2]
    assert (ds.PatientSex, ds.PatientAge, ds.PatientBirthDate) == ("F", "061Y", "19600203")
    assert ds.pixel_array.shape == (2, *HW)


def test_writer_is_deterministic_and_uids_follow_the_inputs(tmp_path, views) -> None:
    a = write_study(tmp_path / "a", *views, stem="s", **IDS)[0]
    b = write_study(tmp_path / "b", *views, stem="s", **IDS)[0]
    c = write_study(tmp_path / "c", *views, stem="s", **{**IDS, "study_id": "ST78"})[0]
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    assert pydicom.dcmread(a).StudyInstanceUID != pydicom.dcmread(c).StudyInstanceUID


def test_study_record_carries_pseudonymous_keys_only(tmp_path, views) -> None:
    files = write_study(tmp_path, *views, stem="s", study_uid="1.2.3.4", **IDS)
    study = read_study(files, key="k1")
    assert study.study_key == study_key("1.2.3.4", key="k1")
    assert study.patient_key == patient_key("PID123", key="k1")
    assert "PID123" not in repr(study.meta) and "Doe" not in repr(study.meta)
    assert read_study(files, key="k2").patient_key != study.patient_key


@pytest.mark.parametrize("hw", [(2048, 512), (512, 128)])
def test_other_matrix_sizes_are_legal(tmp_path, hw) -> None:
    img = np.random.default_rng(1).integers(0, 100, hw).astype(np.uint16)
    study = read_study(write_study(tmp_path, img, img[:, ::-1], stem="s", **IDS))
    assert study.shape_hw == hw and study.flags == []


@pytest.mark.parametrize("hw, mm", [((1024, 256), 2.29), ((2048, 512), 1.15), ((512, 128), 4.59), ((256, 1024), 2.29)])
def test_missing_pixel_spacing_is_assumed_from_the_matrix_and_said(tmp_path, hw, mm) -> None:
    """No PixelSpacing (many Secondary Capture exports): about 2.35 m over the long axis, in
    the flag; a matrix stored sideways (256 x 1024) is turned upright first."""
    import pydicom

    img = np.random.default_rng(1).integers(0, 100, hw).astype(np.uint16)
    (f,) = write_study(tmp_path, img, None, stem="s", layout="pair", **IDS)
    ds = pydicom.dcmread(f)
    del ds.PixelSpacing
    ds.save_as(f)
    df = read_file(f)
    assert df.pixel_spacing == pytest.approx((mm, mm), abs=0.005)
    assert any(
        x.startswith(f"no PixelSpacing: assumed {mm:.2f} mm from the {max(hw)}-pixel long axis") for x in df.flags
    ), df.flags
    assert df.views["ANT"].shape == (max(hw), min(hw))


def test_one_view_study_is_kept_and_flagged(tmp_path, views) -> None:
    study = read_study(write_study(tmp_path, views[0], None, stem="s", layout="pair", **IDS))
    assert study.views == ("ANT",)
    assert any("one view only" in f for f in study.flags)


def test_two_files_of_different_patients_are_refused(tmp_path, views) -> None:
    a = write_study(tmp_path / "a", views[0], None, stem="s", layout="pair", study_uid="1.2.9", **IDS)
    other = write_study(
        tmp_path / "b", *views, stem="t", layout="pair", study_uid="1.2.9", **{**IDS, "patient_id": "OTHER"}
    )
    with pytest.raises(InputError, match="two different patients"):
        read_study(a + other[1:])  # ANT of one patient, POST of another, same study UID


def test_signed_pixels_without_negatives_are_converted_and_flagged(tmp_path, views) -> None:
    ant = (views[0] // 40).astype(np.int16)
    f = write_study(tmp_path, ant, ant, stem="s", signed=True, sop_class="sc", layout="pair", **IDS)
    assert pydicom.dcmread(f[0]).SOPClassUID == SECONDARY_CAPTURE_STORAGE
    got = read_file(f[0])
    assert got.views["ANT"].dtype == np.uint16
    np.testing.assert_array_equal(got.views["ANT"], ant)
    assert any("signed pixel data" in x for x in got.flags)


def test_negative_values_of_a_lossy_copy_are_clipped_and_flagged(tmp_path, views) -> None:
    ant = views[0].astype(np.int16) // 40
    ant[0, :5] = -3
    f = write_study(tmp_path, ant, ant, stem="s", signed=True, lossy=True, **IDS)
    got = read_file(f[0])
    assert got.lossy
    assert int(got.views["ANT"].min()) == 0 and got.views["ANT"][0, :5].tolist() == [0] * 5
    assert any("clipped at 0" in x and "lossy" in x for x in got.flags)


def test_rle_lossless_is_decoded_natively(tmp_path, views) -> None:
    (path,) = write_study(tmp_path, *views, stem="s", compress="rle", **IDS)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == RLELossless
    out = read_views(path)
    np.testing.assert_array_equal(out["ANT"], views[0])


def _garbage_compressed(tmp_path, views, syntax) -> Path:
    (path,) = write_study(tmp_path, *views, stem="s", **IDS)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = syntax
    # Two frames of bytes that are not a valid codestream.
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60), b"\xff\x4f\xff\x51" + bytes(60)])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "c.dcm", enforce_file_format=True)
    return tmp_path / "c.dcm"


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLosslessSV1])
def test_corrupt_compressed_pixels_name_the_syntax(tmp_path, views, syntax) -> None:
    with pytest.raises(InputError) as info:
        read_views(_garbage_compressed(tmp_path, views, syntax))
    assert syntax.name in str(info.value) and "could not be decoded" in str(info.value) and "c.dcm" in str(info.value)


def test_compressed_without_a_decoder_names_syntax_and_plugin(tmp_path, views) -> None:
    mpeg2 = UID("1.2.840.10008.1.2.4.100")  # a syntax no pydicom 3.0 plugin decodes
    with pytest.raises(InputError) as info:
        read_views(_garbage_compressed(tmp_path, views, mpeg2))
    assert "no decoder is available" in str(info.value) and "install" in str(info.value)


LOSSLESS = ["rle", "jpeg-ls", "j2k", "jpeg-lossless", "jpeg-lossless-sv1", "deflate"]


@pytest.mark.parametrize("compress", LOSSLESS)
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_lossless_syntaxes_give_the_counts_back_bit_exact(tmp_path, views, compress, signed) -> None:
    ant = views[0].astype(np.int16) if signed else views[0]
    ant[10, 10] = 4000  # a hot bladder pixel well beyond 8 and 12 bits' reach of the rest
    (path,) = write_study(
        tmp_path, ant, None, stem="s", layout="pair", sop_class="sc", signed=signed, compress=compress, **IDS
    )
    ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert ts == COMPRESSIONS[compress]
    got = read_file(path)
    np.testing.assert_array_equal(got.views["ANT"], ant.astype(np.uint16))
    assert not got.lossy and not any(LOSSY_FLAG in f for f in got.flags)


@pytest.mark.parametrize("compress", ["jpeg-ls-near", "j2k-lossy", "jpeg-baseline", "jpeg-extended"])
def test_lossy_syntaxes_are_read_and_flagged(tmp_path, views, compress) -> None:
    ant = phantom(HW, [(120, 30, 3)], np.random.default_rng(1))  # a body, a spine, a hot spot: < 256
    (path,) = write_study(tmp_path, ant, None, stem="s", layout="pair", sop_class="sc", compress=compress, **IDS)
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == COMPRESSIONS[compress]
    got = read_file(path)
    img = got.views["ANT"].astype(int)
    assert got.lossy and any(f.startswith(LOSSY_FLAG) for f in got.flags)
    err = np.abs(img - ant)
    assert img.shape == ant.shape and err.max() > 0 and err.mean() < 2.0  # decoded, close, not exact
    assert abs(img.sum() - int(ant.sum())) < 0.1 * ant.sum()  # near-lossless biases low counts by a few %


def test_lossy_header_alone_flags_the_copy(tmp_path, views) -> None:
    (path,) = write_study(tmp_path, views[0], None, stem="s", layout="pair", lossy=True, **IDS)
    got = read_file(path)
    assert got.lossy and any(f.startswith(LOSSY_FLAG) and "LossyImageCompression" in f for f in got.flags)


def test_not_dicom_is_refused(tmp_path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("a text file that is not DICOM at all " * 20)
    with pytest.raises(InputError, match="not a DICOM file"):
        read_views(path)


@pytest.mark.parametrize("keep", [0.5, 0.01])
def test_truncated_file_is_refused(tmp_path, views, keep) -> None:
    (path,) = write_study(tmp_path, *views, stem="s", **IDS)
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: max(140, int(len(data) * keep))])
    with pytest.raises(InputError, match="truncated|corrupt|not a DICOM") as info:
        read_views(cut)
    assert info.value.path == cut


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_wrong_modality_is_refused(tmp_path, views, modality) -> None:
    (path,) = write_study(tmp_path, *views, stem="s", modality=modality, **IDS)
    with pytest.raises(InputError, match=f"wrong modality {modality}"):
        read_views(path)


def test_structured_report_is_refused(tmp_path) -> None:
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "1.2.3.4.5"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.Modality = "SR"
    ds.StudyInstanceUID = "1.2.3"
    ds.save_as(tmp_path / "report.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="structured report"):
        read_views(tmp_path / "report.dcm")


def test_missing_pixel_data_is_refused(tmp_path, views) -> None:
    (path,) = write_study(tmp_path, *views, stem="s", include_pixels=False, **IDS)
    with pytest.raises(InputError, match="no pixel data"):
        read_views(path)


def test_both_frames_named_the_same_are_refused(tmp_path, views) -> None:
    (path,) = write_study(tmp_path, *views, stem="s", view_naming="standard", **IDS)
    ds = pydicom.dcmread(path)
    # both detectors coded anterior: the header contradicts itself, the image does not decide
    ds.DetectorInformationSequence[1].ViewCodeSequence = ds.DetectorInformationSequence[0].ViewCodeSequence
    ds.save_as(tmp_path / "same.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="cannot tell the views apart"):
        read_views(tmp_path / "same.dcm")


def test_views_named_in_free_text() -> None:
    assert views_named_in("WB ANT/POST") == ["ANT", "POST"]
    assert views_named_in("Posterior-Anterior whole body") == ["POST", "ANT"]
    assert views_named_in("POSTOP bone scan") == []  # whole tokens only
    assert views_named_in("WB Bone Scan") == []


def test_writer_rejects_impossible_inputs(tmp_path, views) -> None:
    with pytest.raises(ValueError):
        write_study(tmp_path, views[0].astype(np.int32) + 70000, None, stem="s", **IDS)
    with pytest.raises(ValueError):
        write_study(tmp_path, *views, stem="s", layout="multiframe", view_naming="filename", **IDS)
    with pytest.raises(ValueError):
        write_study(tmp_path, views[0], views[1][:10], stem="s", **IDS)
