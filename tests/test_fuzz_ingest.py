"""Fuzz ingest (issue 29): mutated headers and pixel bytes of synthetic DICOMs.

A seeded loop, bounded in size (about 60 mutants of a 64 x 32 two-frame study, a few
seconds): ingest must never raise, and every file must come out either kept, with the
matrix and counts its pixels really hold, or skipped with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import phantom

from scintilab.dicomio import write_study
from scintilab.ingest import ingest

N_ROUNDS = 60
# pydicom warns about every garbled element; what matters here is what ingest says
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _base(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    ant, post = phantom((64, 32), [], rng), phantom((64, 32), [], rng)
    return write_study(folder, ant, post, stem="base", patient_id="PBASE", patient_name="Fuzz^Base", study_id="SBASE")[
        0
    ]


def _header_mutations(rng: np.random.Generator) -> list[Callable[[pydicom.Dataset], None]]:
    def set_(keyword: str, *values: object) -> Callable[[pydicom.Dataset], None]:
        value = values[int(rng.integers(len(values)))]
        return lambda ds: setattr(ds, keyword, value)

    def drop(keyword: str) -> Callable[[pydicom.Dataset], None]:
        return lambda ds: delattr(ds, keyword) if keyword in ds else None

    def cut_pixels(ds: pydicom.Dataset) -> None:
        data = ds.PixelData
        ds.PixelData = data[: int(rng.integers(0, len(data)))]

    def pad_pixels(ds: pydicom.Dataset) -> None:
        ds.PixelData = ds.PixelData + bytes(2 * int(rng.integers(1, 4000)))

    def scramble_pixels(ds: pydicom.Dataset) -> None:
        arr = bytearray(ds.PixelData)
        for i in rng.integers(0, len(arr), 50):
            arr[int(i)] = int(rng.integers(256))
        ds.PixelData = bytes(arr)

    return [
        set_("Rows", 0, 1, 63, 65, 1000, 65535),
        set_("Columns", 0, 31, 33, 4096),
        set_("NumberOfFrames", 0, 1, 3, 100, "x"),
        set_("BitsAllocated", 8, 12, 32, 0),
        set_("BitsStored", 1, 17, 40),
        set_("HighBit", 31, 0),
        set_("PixelRepresentation", 1, 2),
        set_("SamplesPerPixel", 3, 0),
        set_("PhotometricInterpretation", "RGB", "PALETTE COLOR", "YBR_FULL", ""),
        set_("PixelSpacing", [0, 0], [-2.3, 2.3], ["nan", "1"], [1e9, 1e9]),
        set_("Modality", "CT", "", "OT"),
        set_("RescaleSlope", 0, -1, 1e30),
        set_("RescaleIntercept", -1e6, 1e6),
        set_("StudyDate", "notadate", "20261399", ""),
        set_("PatientID", "", " ", "x" * 64),
        drop("Rows"),
        drop("PixelData"),
        drop("SOPClassUID"),
        drop("PixelSpacing"),
        drop("BitsAllocated"),
        drop("PatientID"),
        drop("StudyInstanceUID"),
        drop("NumberOfFrames"),
        cut_pixels,
        pad_pixels,
        scramble_pixels,
    ]


def _byte_mutation(raw: bytes, rng: np.random.Generator) -> bytes:
    """Flip, cut or insert bytes of the whole file (header and pixels alike)."""
    data = bytearray(raw)
    kind = int(rng.integers(3))
    if kind == 0:
        for i in rng.integers(0, len(data), int(rng.integers(1, 20))):
            data[int(i)] = int(rng.integers(256))
    elif kind == 1:
        return bytes(data[: int(rng.integers(0, len(data)))])
    else:
        at = int(rng.integers(128, len(data)))
        data[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    return bytes(data)


def _pixels_of(path: Path) -> tuple[np.ndarray | None, bool]:
    """The frames pydicom reads from a file (None where it cannot), and whether it warned."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path)
            arr = np.asarray(ds.pixel_array, dtype=np.float64)
        except Exception:  # noqa: BLE001 - any failure: the independent reading has no opinion
            return None, True
    return (arr if arr.ndim == 3 else arr[None]), bool(caught)


@pytest.mark.parametrize("seed", [0, 1])
def test_mutated_dicoms_are_kept_with_their_counts_or_named(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = _base(tmp_path / "base")
    raw = base.read_bytes()
    src = tmp_path / "export"
    written: dict[str, str] = {}
    for k in range(N_ROUNDS):
        folder = src / f"case_{k:03d}"
        folder.mkdir(parents=True)
        path = folder / f"fuzz_{k:03d}.dcm"
        if k % 4 == 3:
            path.write_bytes(_byte_mutation(raw, rng))
            written[path.name] = "bytes"
            continue
        ds = pydicom.dcmread(base)
        ds.PatientID, ds.StudyID = f"PF{k:03d}", f"SF{k:03d}"  # one study per file
        ds.StudyInstanceUID = pydicom.uid.generate_uid()
        muts = _header_mutations(rng)
        picked = [muts[int(i)] for i in rng.choice(len(muts), int(rng.integers(1, 3)), replace=False)]
        for mutate in picked:
            try:
                mutate(ds)
            except (ValueError, TypeError, OverflowError, AttributeError):
                pass  # pydicom refused the value itself: the file keeps the old one
        try:
            ds.save_as(path, enforce_file_format=False)
        except Exception:  # noqa: BLE001 - pydicom cannot write this mutant at all
            path.write_bytes(raw)
        written[path.name] = "header"

    res = ingest(src, out=tmp_path / "manifest.csv", progress=False)  # must not raise

    kept = {
        Path(p).name: row
        for _, row in res.manifest.iterrows()
        for p in (row["ant_path"], row["post_path"])
        if isinstance(p, str) and p
    }
    skipped = {Path(p).name: why for p, why in res.skipped}
    flags = " | ".join(res.manifest["flags"].fillna("")) if len(res.manifest) else ""
    for name in written:
        if name not in kept and name not in skipped:
            # a copy of another file's study: the study keeps one and names the other
            assert f"not used: {name}" in flags or f", {name}" in flags, f"{name}: neither kept nor named"
            continue
        assert (name in kept) != (name in skipped), f"{name}: both kept and skipped"
        if name in skipped:
            assert skipped[name].strip(), f"{name}: skipped without a reason"
            continue
        row = kept[name]
        frames, warned = _pixels_of(next(src.rglob(name)))
        assert frames is not None, f"{name} kept, but pydicom cannot read its pixels ({row['flags']})"
        if warned:  # pydicom read it only with a complaint: ingest must have said something
            assert row["status"] == "flagged", name
        assert (int(row["rows"]), int(row["cols"])) == frames.shape[1:], name
        for view, frame in (("ant", row["ant_frame"]), ("post", row["post_frame"])):
            if Path(str(row[f"{view}_path"])).name == name and not np.isnan(float(row[f"counts_{view}"])):
                truth = frames[int(frame)] if frames.shape[0] > 1 else frames[0]
                truth = np.clip(truth, 0, None)  # ingest's rule: negative values are clipped, and flagged
                assert float(row[f"counts_{view}"]) == pytest.approx(float(truth.sum()), rel=1e-6), (name, view)
    assert len(kept) >= 5 and len(skipped) >= 10  # the loop really exercises both sides
