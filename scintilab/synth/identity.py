"""Who a synthetic patient is, as a hospital export would say it: ids, names, the site,
the staff and the camera's private tags. All synthetic and all identifying: the identity
checks search every output for them."""

from __future__ import annotations

import numpy as np

from scintilab.dicom_write import ExportHeader

_SURNAMES = (
    "WANG",
    "LI",
    "ZHANG",
    "LIU",
    "CHEN",
    "YANG",
    "ZHAO",
    "HUANG",
    "ZHOU",
    "WU",
    "XU",
    "SUN",
    "MA",
    "ZHU",
    "HU",
    "GUO",
    "HE",
    "GAO",
    "LIN",
    "LUO",
)
_GIVEN = (
    "WEI",
    "FANG",
    "NA",
    "MIN",
    "JING",
    "LEI",
    "JUN",
    "YAN",
    "TAO",
    "MING",
    "CHAO",
    "XIU",
    "HUA",
    "PING",
    "GANG",
    "HONG",
    "LING",
    "QIANG",
    "YONG",
    "JIE",
)


def patient_identity(index: int, seed: int) -> tuple[str, str]:
    """Raw (PatientID, PatientName) of synthetic patient ``index`` (hospital-looking)."""
    rng = np.random.default_rng([seed, index, 991])
    pid = f"LC{2014 + (index * 7) % 6}{index:05d}"
    name = f"{_SURNAMES[rng.integers(len(_SURNAMES))]}^{_GIVEN[rng.integers(len(_GIVEN))]}"
    return pid, name


_STAFF = ("NOVAK^PETRA", "OKAFOR^DANIEL", "LINDQVIST^ANNA", "MORENO^LUIS", "BRANDT^KLAUS", "SATO^YUKI")
_SITES = (
    ("RIVERSIDE GENERAL HOSPITAL", "12 MILL LANE, EASTBRIDGE"),
    ("ST BRENDAN UNIVERSITY CLINIC", "4 HARBOUR ROAD, WESTPORT"),
    ("NORTHFIELD CANCER CENTRE", "88 ORCHARD STREET, NORTHFIELD"),
)


def export_header(index: int, seed: int, patient_name: str) -> ExportHeader:
    """What a camera export writes beside the patient module, for synthetic patient ``index``:
    an older hospital number, the site, station, operator, referring physician, device serial
    and the GE Genie-style private tag that repeats the patient's name. All synthetic, all
    identifying (the identity checks search every output for them)."""
    rng = np.random.default_rng([seed, index, 992])
    site, address = _SITES[int(rng.integers(len(_SITES)))]
    return ExportHeader(
        other_patient_ids=f"OLD{seed % 100:02d}{index:05d}X",
        institution=site,
        institution_address=address,
        station=f"NMCAM{int(rng.integers(1, 9)):02d}",
        operators=_STAFF[int(rng.integers(len(_STAFF)))],
        referring_physician=_STAFF[int(rng.integers(len(_STAFF)))],
        device_serial=f"MG{int(rng.integers(10**6, 10**7))}",
        private_patient_name=patient_name,
    )


__all__ = ["export_header", "patient_identity"]
