"""Decode a DICOM file's pixel data into 16-bit counts, refusing what is not whole raw counts.

:func:`check_pixel_length` holds the header's matrix against the stored bytes,
:func:`decode_checked` decodes (naming the plugin to install when none can) and turns
pydicom's warnings into flags, and :func:`to_uint16` brings the decoded pixels to uint16
counts, flagging every conversion. :func:`scintilab.dicomio.read_file` is the caller.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from scintilab.dicom_codes import NATIVE_SYNTAXES
from scintilab.errors import InputError


def _plugin_hint(ts: UID) -> str:
    name = ts.name
    if "2000" in name or "HTJ2K" in name or "High-Throughput" in name:
        return "install pylibjpeg and pylibjpeg-openjpeg (or python-gdcm)"
    if "JPEG" in name:
        return "install pylibjpeg and pylibjpeg-libjpeg (or python-gdcm)"
    return "install python-gdcm or pylibjpeg with a matching plugin"


def _decoder_available(ts: UID) -> bool:
    """True when pydicom has an installed plugin that decodes ``ts``."""
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(ts).is_available)
    except (NotImplementedError, ValueError):
        return False


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    """Decode the pixel data, turning every failure into an InputError with a clear reason."""
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)))
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises several types; all mean "cannot decode"
        if ts.is_compressed and str(ts) not in NATIVE_SYNTAXES:
            if not _decoder_available(ts):
                raise InputError(
                    path,
                    f"pixel data is compressed as {ts.name} ({ts}) and no decoder is available: {_plugin_hint(ts)}",
                ) from exc
            raise InputError(
                path,
                f"pixel data compressed as {ts.name} ({ts}) could not be decoded (corrupt codestream?): "
                f"{str(exc).splitlines()[0][:200]}",
            ) from exc
        text = str(exc)
        if "less than expected" in text or "truncat" in text.lower() or "shorter" in text:
            raise InputError(path, f"truncated file: pixel data shorter than Rows x Columns x frames ({text})") from exc
        raise InputError(path, f"cannot decode pixel data: {text}") from exc
    return arr


def check_pixel_length(ds: Dataset, path: Path) -> list[str]:
    """Rows x Columns x frames x bits against the length of native pixel data.

    pydicom reads ``Rows x Columns x frames`` values from the start of PixelData and trims
    the rest as "excess padding" with only a warning: a multi-frame file whose Rows is
    smaller than its stored rows then starts each later frame inside the one before. So:
    too few bytes is refused (truncated), too many in a multi-frame file is refused (the
    frames cannot be placed), too many in a single frame is kept with a flag (the first
    rows are read in order; the rest is ignored). Compressed (encapsulated) pixel data is
    not checked here: its length says nothing about the matrix.

    Returns:
        Flags for a file that can be read safely (empty when the lengths agree).

    Raises:
        InputError: the header's matrix and the pixel data length cannot be reconciled.
    """
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)))
    elem = ds.get("PixelData")
    if elem is None or ts.is_encapsulated or getattr(elem, "is_undefined_length", False):
        return []
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(
            path, f"pixel matrix not described: Rows, Columns or BitsAllocated missing or not a number ({exc})"
        ) from exc
    if rows < 1 or cols < 1 or frames < 1:
        raise InputError(path, f"pixel matrix of {rows} x {cols} x {frames} frame(s) is empty")
    if bits not in (1, 8, 16, 32, 64):
        raise InputError(path, f"BitsAllocated {bits} is not 1, 8, 16, 32 or 64")
    stored = int(ds.get("BitsStored", bits) or bits)
    if not 0 < stored <= bits:
        raise InputError(path, f"BitsStored {stored} does not fit BitsAllocated {bits}")
    n_bits = rows * cols * frames * samples * bits
    expected = (n_bits + 7) // 8
    actual = len(ds.PixelData)
    matrix = f"Rows {rows} x Columns {cols} x {frames} frame(s) x {bits} bits = {expected} bytes"
    if actual < expected:
        raise InputError(path, f"truncated pixel data: {actual} bytes where {matrix}")
    excess = actual - expected - (expected % 2)  # odd lengths are padded to even
    if excess <= 0:
        return []
    per_row = cols * samples * bits // 8 or 1
    hint = (
        f" (about {rows + excess // (frames * per_row)} rows per frame stored)"
        if excess % (frames * per_row) == 0
        else ""
    )
    if frames > 1:
        raise InputError(
            path,
            f"pixel data holds {actual} bytes, more than {matrix}{hint}: "
            "the header's matrix does not match the pixels, frames cannot be placed",
        )
    return [
        f"pixel data longer than the header's matrix ({actual} bytes, {matrix}{hint}): "
        "the extra bytes are ignored, check the image is whole"
    ]


def decode_checked(ds: Dataset, path: Path, flags: list[str]) -> np.ndarray:
    """:func:`check_pixel_length`, then decode, pydicom's warnings about the pixels becoming flags.

    Args:
        ds: the dataset (with pixel data).
        path: its file, for messages.
        flags: the file's flags; remarks are appended.

    Raises:
        InputError: as :func:`check_pixel_length` and :func:`_decode`.
    """
    import warnings

    flags += check_pixel_length(ds, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arr = _decode(ds, path)
    for w in caught:
        text = " ".join(str(w.message).split())
        if not any(text in f for f in flags):
            flags.append(f"pixel data: {text}")
    return arr


def to_uint16(arr: np.ndarray, ds: Dataset, path: Path, flags: list[str]) -> np.ndarray:
    """Bring decoded pixels to uint16 counts, flagging every conversion."""
    if arr.dtype == np.uint16:
        return arr
    if arr.dtype.kind == "f":
        raise InputError(path, f"floating-point pixel data ({arr.dtype}) is not raw counts")
    if arr.dtype.kind not in "iu":
        raise InputError(path, f"unsupported pixel data type {arr.dtype}")
    lo = int(arr.min()) if arr.size else 0
    hi = int(arr.max()) if arr.size else 0
    if hi > 65535:
        raise InputError(path, f"pixel values up to {hi} do not fit 16-bit counts")
    if lo < 0:
        flags.append(
            f"negative pixel values (min {lo}) clipped at 0"
            + (" (lossy copy)" if str(ds.get("LossyImageCompression", "")) == "01" else "")
        )
        arr = np.clip(arr, 0, None)
    elif arr.dtype.kind == "i":
        flags.append("signed pixel data (PixelRepresentation 1) converted to unsigned")
    else:
        flags.append(f"{arr.dtype.itemsize * 8}-bit pixel data widened to 16-bit")
    return arr.astype(np.uint16)
