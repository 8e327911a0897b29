"""16-bit PNG / TIFF images: how public research datasets ship whole-body bone scans.

Public datasets rarely ship DICOM: they export each view as a 16-bit PNG or TIFF, the view
named in the file name (``xxx_ANT.png``) and the labels in a CSV keyed by image or patient
name. :func:`read_raster` reads such a file as uint16 counts (flagging any conversion);
:func:`write_raster` writes one (tests, exports). Named ``raster`` rather than ``rasterio``
so it never shadows the geospatial package of that name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scintilab.errors import InputError

#: File suffixes read as raster images (lower case).
RASTER_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff")


def is_raster(path: Path) -> bool:
    """True when the file name ends in a raster suffix (PNG/TIFF)."""
    return Path(path).suffix.lower() in RASTER_SUFFIXES


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image  # lazy: only raster datasets need Pillow

    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LA"):
            raise InputError(path, f"colour image (mode {mode}): expected a single-channel count image")
        return np.array(im)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile  # lazy

    arr = tifffile.imread(path)
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise InputError(path, f"TIFF holds an array of shape {arr.shape}: expected one 2-D view")
    return arr


def read_raster(path: Path) -> tuple[np.ndarray, list[str]]:
    """Read a PNG/TIFF view as uint16 (rows, columns) counts.

    Args:
        path: a ``.png``, ``.tif`` or ``.tiff`` file (opened read-only).

    Returns:
        (image, flags): flags say in plain words what was converted (8-bit export,
        signed values, negative values clipped).

    Raises:
        InputError: unreadable, colour, floating point, or values beyond 16 bits.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RASTER_SUFFIXES:
        raise InputError(path, f"not a PNG/TIFF file (suffix {suffix!r})")
    try:
        arr = _read_png(path) if suffix == ".png" else _read_tiff(path)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow/tifffile raise many types for bad files
        raise InputError(path, f"unreadable {suffix[1:].upper()} image: {type(exc).__name__}: {exc}") from exc
    flags: list[str] = []
    if arr.ndim != 2:
        raise InputError(path, f"image of shape {arr.shape}: expected one 2-D single-channel view")
    if arr.dtype.kind == "f":
        raise InputError(path, f"floating-point image ({arr.dtype}) is not raw counts")
    if arr.dtype == np.bool_:
        raise InputError(path, "binary (1-bit) image is not raw counts")
    if arr.dtype == np.uint16:
        return np.ascontiguousarray(arr), flags
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if hi > 65535:
        raise InputError(path, f"values up to {hi} do not fit 16-bit counts")
    if lo < 0:
        flags.append(f"negative pixel values (min {lo}) clipped at 0")
        arr = np.clip(arr, 0, None)
    elif arr.dtype == np.uint8:
        flags.append("8-bit export: counts may have been rescaled")
    elif arr.dtype.kind == "i":
        flags.append(f"{arr.dtype} image converted to uint16")
    return arr.astype(np.uint16), flags


def write_raster(path: Path, image: np.ndarray) -> Path:
    """Write a uint16 view as a 16-bit PNG or TIFF (chosen by the suffix).

    Args:
        path: output ``.png``, ``.tif`` or ``.tiff`` file (folder created).
        image: (rows, columns) counts that fit uint16.

    Returns:
        The path written.
    """
    path = Path(path)
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise ValueError("image does not fit uint16")
    arr = arr.astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".png":
        from PIL import Image

        Image.fromarray(arr).save(path, format="PNG")
    elif suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, arr)
    else:
        raise ValueError(f"suffix must be one of {RASTER_SUFFIXES}, got {suffix!r}")
    return path
