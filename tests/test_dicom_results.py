"""``scintilab quantify --dicom``: SEG, TID 1500 SR and Encapsulated PDF read back equal the CSVs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import PLANTED_ID, PLANTED_NAME

from scintilab import reports
from scintilab.cli import main
from scintilab.dicom_results import read_seg_masks, source_views
from scintilab.ingest import ingest, load_cohort
from scintilab.orientation import turn
from scintilab.quantify import quantify_cohort, quantify_study

#: dciodvfy warnings that remain, and why (README "Back into the PACS"):
ALLOWED_WARNINGS = (
    # our own concepts (BSI, normalised uptake, ...) have no DICOM/SNOMED code: a private scheme
    r"Unrecognized defined term = <99SCINTILAB>",
    # de-identified objects carry no study time (none in the source either)
    r"StudyTime.*needed to build DICOMDIR",
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """A pair-layout cohort (one study without its POST file), a multiframe one and a
    multiframe one stored feet first (turned 180° at ingest), quantified with --dicom."""
    from conftest import make_cohort, store_head_down

    out = {}
    for layout, n in (("pair", 2), ("multiframe", 1), ("feet first", 1), ("pair sc", 1)):
        root = make_cohort(
            tmp_path_factory.mktemp("dc"),
            n,
            labels=["ADMet", "nADMet"][:n],
            layout={"feet first": "multiframe", "pair sc": "pair"}.get(layout, layout),
            sop_class="sc" if layout == "pair sc" else "nm",
        )
        if layout == "pair":
            next((root / "dicom" / "case_0001").glob("*_POST.dcm")).unlink()  # a single-view export
        if layout == "feet first":
            store_head_down(root)
        ingest(root / "dicom", root / "labels.csv", root / "annotations", root / "manifest.csv", progress=False)
        q = tmp_path_factory.mktemp(f"dq_{layout}")
        assert main(["quantify", str(root / "manifest.csv"), "--out", str(q), "--dicom", "--quiet"]) == 0
        out[layout] = (root, q)
    return out


def _studies(root: Path):
    cohort = load_cohort(root / "manifest.csv")
    for i in range(len(cohort)):
        st = cohort[i]
        yield st, cohort.manifest.iloc[i], cohort.root


def test_segments_equal_the_hotspot_masks_on_the_stored_views(exported) -> None:
    seen_views = set()
    for layout, (root, q) in exported.items():
        for st, row, base in _studies(root):
            det = quantify_study(st).detection
            srcs, _ = source_views(row, base)
            seg = pydicom.dcmread(q / "dicom" / st.study_key / "seg.dcm")
            masks = read_seg_masks(q / "dicom" / st.study_key / "seg.dcm")
            uids = {
                str(i.ReferencedSOPInstanceUID)
                for s in seg.ReferencedSeriesSequence
                for i in s.ReferencedInstanceSequence
            }
            assert len(uids) == (len(srcs) if layout.startswith("pair") else 1)
            segs = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
            assert segs[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "14799000"  # Neoplasm, metastatic
            assert (
                segs[2].SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0].CodeValue
                == "30807003"
            )  # benign
            assert len(segs) == 2 + len(det.hotspots)
            for view in st.views:
                seen_views.add((layout, len(st.views), view))
                frame = srcs[view].frame
                # frames are written view by view in VIEWS order: the n-th referenced (instance, frame) is the n-th view
                order = list(
                    dict.fromkeys(
                        (str(it.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID))
                        for it in seg.PerFrameFunctionalGroupsSequence
                    )
                )
                uid = order[list(st.views).index(view)] if layout.startswith("pair") else order[0]
                union = {1: np.zeros(det.shape, bool), 2: np.zeros(det.shape, bool)}
                for i, hs in enumerate(det.hotspots):
                    full = hs.full_mask(det.shape)
                    want = full if view == "ANT" else _on_stored_posterior(full, det.shift)
                    if st.meta["quarter_turns"].get(view):
                        want = turn(want)  # the SEG lies on the stored pixels, head down as they are
                    union[1 if hs.metastatic else 2] |= want
                    assert np.array_equal(masks[(3 + i, uid, frame)], want), (st.study_key, view, hs.id)
                    if hs.bone is not None:
                        assert segs[3 + i].AnatomicRegionSequence[0].CodingSchemeDesignator == "SCT"
                for k in (1, 2):
                    assert np.array_equal(masks[(k, uid, frame)], union[k])
                if layout == "feet first" and union[1].any():
                    # on the file's own pixels, the metastatic segment covers the hot spots
                    stored = pydicom.dcmread(srcs[view].path).pixel_array[frame - 1]
                    seen_views.add(("feet first", "hot"))
                    assert stored[union[1]].mean() > 5 * stored[stored > 0].mean()
    assert ("pair", 1, "ANT") in seen_views and ("multiframe", 2, "POST") in seen_views
    assert ("feet first", "hot") in seen_views and ("pair sc", 2, "POST") in seen_views


def test_secondary_capture_sources_are_referenced_as_they_are(exported) -> None:
    """Many exports are Secondary Capture: the SEG references those instances (SC SOP class)
    and takes the pixel spacing from the study, as SC images often carry none."""
    from scintilab.dicomio import SECONDARY_CAPTURE_STORAGE

    root, q = exported["pair sc"]
    for st, row, base in _studies(root):
        seg = pydicom.dcmread(q / "dicom" / st.study_key / "seg.dcm")
        classes = {
            str(i.ReferencedSOPClassUID) for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence
        }
        assert classes == {str(SECONDARY_CAPTURE_STORAGE)}
        srcs, _ = source_views(row, base)
        assert {str(s.header.SOPClassUID) for s in srcs.values()} == {str(SECONDARY_CAPTURE_STORAGE)}


def _groups(ds) -> dict[str, dict]:
    """TID 1500 measurement groups by tracking identifier: {concept meaning: value}, finding sites."""
    out = {}
    for item in ds.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue != "126010":  # Imaging Measurements
            continue
        for grp in item.ContentSequence:
            vals: dict = {"sites": []}
            for c in grp.ContentSequence:
                name = c.ConceptNameCodeSequence[0].CodeMeaning
                if c.ValueType == "TEXT" and name == "Tracking Identifier":
                    key = c.TextValue
                elif c.ValueType == "NUM":
                    vals[name] = float(c.MeasuredValueSequence[0].NumericValue)
                elif c.ValueType == "CODE" and name == "Finding Site":
                    vals["sites"].append(c.ConceptCodeSequence[0].CodeMeaning)
                elif c.ValueType == "CODE":
                    vals[name] = c.ConceptCodeSequence[0].CodeMeaning
            out[key] = vals
    return out


def test_sr_values_equal_studies_and_hotspots_csv(exported) -> None:
    import highdicom as hd

    from scintilab.anatomy import BONES
    from scintilab.dicom_results import BONE_CODES

    meaning_to_bone = {c.meaning: b for b, c in BONE_CODES.items()}
    for root, q in exported.values():
        studies = pd.read_csv(q / "studies.csv").set_index("study_key")
        hot = pd.read_csv(q / "hotspots.csv")
        man = pd.read_csv(root / "manifest.csv").set_index("study_key")
        for key, srow in studies.iterrows():
            sr = hd.sr.srread(q / "dicom" / key / "sr.dcm")
            assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
            g = _groups(sr)
            assert g["whole skeleton"]["Bone Scan Index"] == pytest.approx(srow["bsi"], abs=1e-9)
            assert g["whole skeleton"]["Hot spot count"] == srow["hotspots_total"]
            assert g["whole skeleton"]["Hot spots called metastatic"] == srow["hotspots_metastatic"]
            for b in BONES:
                assert g[f"region {b}"]["Bone Scan Index"] == pytest.approx(srow[f"bsi_{b}"], abs=1e-9)
                assert g[f"region {b}"]["Hot spot count"] == srow[f"hotspots_{b}"]
            mine = hot[hot["study_key"] == key]
            assert len(mine) == sum(k.startswith("hot spot ") for k in g)
            area = man.loc[key, "spacing_row"] * man.loc[key, "spacing_col"]
            for _, h in mine.iterrows():
                v = g[f"hot spot {int(h['id'])}"]
                assert v["Area"] == pytest.approx(h["area_px"] * area, rel=1e-6)
                assert v["Normalized uptake"] == pytest.approx(h["normalized_uptake"], abs=1e-9)
                assert v["Probability of metastasis"] == pytest.approx(h["p_metastatic"], abs=1e-9)
                assert v["Called metastatic"] == ("Yes" if h["metastatic"] else "No")
                region = meaning_to_bone.get(v["sites"][0]) if v["sites"] else "soft_tissue"
                assert region == h["region"]
            # str(dataset) abbreviates long text values, so read the TextValue elements themselves
            text = " ".join(str(el.value) for el in sr.iterall() if el.keyword == "TextValue")
            assert "scintilab hot-spot rules" in text and "calling threshold" in text


def _pages(pdf: Path) -> int:
    if shutil.which("pdfinfo"):
        out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
        return int(re.search(r"Pages:\s+(\d+)", out).group(1))
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


def test_pdf_has_one_page_per_view_and_is_not_blank(exported, tmp_path: Path) -> None:
    if reports.find_chromium() is None:
        pytest.skip("no chromium on PATH: no PDF is printed (apt-get install chromium)")
    if shutil.which("pdftoppm") is None:
        pytest.skip("no pdftoppm (apt-get install poppler-utils): cannot render the PDF")
    from PIL import Image

    for root, q in exported.values():
        for st, _, _ in _studies(root):
            beside = q / "reports" / f"{st.study_key}.pdf"
            ds = pydicom.dcmread(q / "dicom" / st.study_key / "report.dcm")
            assert (
                ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
                and ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
            )
            doc = bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]
            assert doc == beside.read_bytes()
            assert _pages(beside) == len(st.views), st.study_key
            stem = tmp_path / st.study_key
            subprocess.run(["pdftoppm", "-r", "30", "-png", "-f", "1", "-l", "1", str(beside), str(stem)], check=True)
            png = next(tmp_path.glob(f"{st.study_key}*.png"))
            arr = np.asarray(Image.open(png).convert("L"), float)
            assert arr.std() > 5 and (arr < 128).mean() > 0.005  # ink on the page, not a blank sheet


def _all_text(ds) -> list[str]:
    out = []
    for el in ds.iterall():
        v = el.value
        if isinstance(v, (bytes, bytearray)):
            out.append(bytes(v).decode("latin-1"))
        elif not isinstance(v, pydicom.sequence.Sequence):
            out.append(str(v))
    return out


def test_objects_carry_no_identity_and_new_uids(exported) -> None:
    for root, q in exported.values():
        terms = reports.phi_terms_from_dicom([root / "dicom"])
        assert any(PLANTED_ID in t for t in terms) and any("Plantedname" in t for t in terms)
        src_uids = set()
        for f in (root / "dicom").rglob("*.dcm"):
            s = pydicom.dcmread(f, stop_before_pixels=True)
            src_uids |= {str(s.StudyInstanceUID), str(s.SeriesInstanceUID), str(s.SOPInstanceUID)}
        objs = list((q / "dicom").rglob("*.dcm"))
        assert len(objs) == 3 * len(pd.read_csv(q / "studies.csv"))
        referenced: dict[str, set[str]] = {}
        for f in objs:
            ds = pydicom.dcmread(f)
            text = _all_text(ds)
            joined = "\n".join(text)
            assert PLANTED_ID not in joined and PLANTED_NAME.split("^")[0] not in joined, f
            assert not reports.scan_for_phi(joined, terms), f
            assert not src_uids & set(text), f"source UID in {f}"
            assert str(ds.PatientID).startswith("P-") and "19600101" not in joined
            referenced.setdefault(f.parent.name, set()).add(str(ds.StudyInstanceUID))
        assert all(len(v) == 1 for v in referenced.values())  # SEG, SR, PDF of a study: one new study
        seg = pydicom.dcmread(objs[0].parent / "seg.dcm")
        sr_text = "\n".join(_all_text(pydicom.dcmread(objs[0].parent / "sr.dcm")))
        assert str(seg.SOPInstanceUID) in sr_text  # the SR references the SEG of the same run
        seg_src = {
            str(i.ReferencedSOPInstanceUID) for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence
        }
        assert seg_src <= set(sr_text.split("\n"))  # same source UID -> same new UID in SEG and SR


def test_link_to_source_keeps_the_source_study(exported, tmp_path: Path) -> None:
    root, _ = exported["multiframe"]
    res = quantify_cohort(
        root / "manifest.csv", tmp_path, reports=False, progress=False, dicom=True, link_to_source=True
    )
    [key] = list(res.studies["study_key"])
    src = pydicom.dcmread(next((root / "dicom").rglob("*.dcm")), stop_before_pixels=True)
    seg = pydicom.dcmread(tmp_path / "dicom" / key / "seg.dcm")
    assert seg.StudyInstanceUID == src.StudyInstanceUID and seg.PatientID == src.PatientID
    assert {
        str(i.ReferencedSOPInstanceUID) for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence
    } == {str(src.SOPInstanceUID)}
    notes = pd.read_csv(tmp_path / "dicom" / "export.csv")
    assert "no HTML report" in " ".join(notes["note"].dropna())


def test_single_view_is_said_in_the_export_index(exported) -> None:
    _, q = exported["pair"]
    idx = pd.read_csv(q / "dicom" / "export.csv")
    notes = idx["note"].dropna()
    assert any("POST view absent" in n for n in notes)
    assert set(idx["object"]) == {"SEG", "SR", "PDF"}
    # the same study's row and report say it: one view, A/P features unavailable
    studies = pd.read_csv(q / "studies.csv")
    one = studies[studies["views"] == "ANT"]
    assert len(one) == 1 and set(studies["views"]) == {"ANT", "ANT+POST"}
    page = (q / "reports" / f"{one['study_key'].iloc[0]}.html").read_text()
    assert "One view only" in page and "unavailable" in page


def test_dciodvfy_finds_no_error(exported) -> None:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("no dciodvfy (Debian: apt-get install dicom3tools): the validator cannot run")
    for _, q in exported.values():
        for f in sorted((q / "dicom").rglob("*.dcm")):
            out = subprocess.run([exe, "-new", str(f)], capture_output=True, text=True)
            lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith(("Error", "Warning"))]
            assert not [ln for ln in lines if ln.startswith("Error")], (f.name, lines[:5])
            unexplained = [ln for ln in lines if not any(re.search(p, ln) for p in ALLOWED_WARNINGS)]
            assert not unexplained, (f.name, unexplained[:5])


def _on_stored_posterior(mask: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """The documented map, written out: frame[r, c] = mirrored[r - dr, c - dc]."""
    dr, dc = int(shift[0]), int(shift[1])
    h, w = mask.shape
    mirrored = np.zeros_like(mask)
    rr, cc = np.nonzero(mask)
    keep = (rr - dr >= 0) & (rr - dr < h) & (cc - dc >= 0) & (cc - dc < w)
    mirrored[rr[keep] - dr, cc[keep] - dc] = True
    return mirrored[:, ::-1]
