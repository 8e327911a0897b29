"""The quantification's parameters as frozen records: detection, rules, BSI, follow-up.

Every number the hot-spot detection, the benign rules, the BSI and the follow-up read is a
field here, not a module global, so papermill and the command line can set it
(``scintilab quantify --set rules.facial_min_ap=1.8``), every output folder records the
values used (``quant_params.json``), and each field says where it comes from:

* ``literature``: a published definition (PCWG3's two new lesions, confirmed after 42 days);
* ``design``: a choice of the method, not fitted to data (a probability cut of 0.5);
* ``fitted``: chosen on synthetic cohorts, which are named. Such a value is only as good as
  the variety of those cohorts: all of them come from this project's own generator, whose
  anatomy and lesions an outside cohort does not share (issue 23). Re-fit or fine-tune
  before trusting one on a site's scans.

The values in use are a context: :func:`active` returns them, :func:`using` sets them for a
block (``with using(params): ...``), and :func:`scintilab.quantify.quantify_cohort` takes
``params=``. Areas are pixels of 2.3 mm, scaled to each study's pixel size where they are
used; distances are millimetres.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scintilab.errors import InputError

#: Where a value comes from.
SOURCES = ("literature", "design", "fitted")
#: The file every quantify output folder holds.
PARAMS_FILE = "quant_params.json"

_SEED1 = "scintilab synth (narrow), seed 1: 100 patients x 3 visits"
_SEEDS5 = "scintilab synth (narrow), seeds 1, 7, 23, 41, 53"
_SEEDS7 = "scintilab synth (narrow), seeds 1, 7, 23, 41, 53, 61, 101"


def knob(default: Any, source: str, what: str, fitted_on: str = "") -> Any:
    """A parameter field: its default, where it comes from, what it does."""
    if source not in SOURCES:
        raise ValueError(f"source {source!r} is not one of {SOURCES}")
    if (source == "fitted") != bool(fitted_on):
        raise ValueError("a fitted value names the cohorts it was fitted on, and only a fitted one")
    return field(default=default, metadata={"source": source, "what": what, "fitted_on": fitted_on})


@dataclass(frozen=True)
class DetectionParams:
    """How hot spots are found."""

    threshold: float = knob(
        1.6, "fitted", "smoothed counts over the bone's own healthy level that make a hot spot", _SEED1
    )
    min_area_px: int = knob(3, "design", "smallest hot spot kept (pixels at 2.3 mm)")
    split_peaks: bool = knob(
        True, "fitted", "split an area above threshold that holds more than one hot spot, brightest first", _SEEDS5
    )


@dataclass(frozen=True)
class RulesParams:
    """The rule probability of a hot spot and the benign rules that damp it."""

    uptake_midpoint: float = knob(2.6, "fitted", "normalised uptake at which the uptake term is one half", _SEED1)
    uptake_slope: float = knob(5.0, "fitted", "steepness of the uptake term (per unit of log uptake)", _SEED1)
    contrast_midpoint: float = knob(1.7, "fitted", "local contrast at which the focality term is one half", _SEED1)
    contrast_slope: float = knob(8.0, "fitted", "steepness of the focality term", _SEED1)
    neighbour_max_gain: float = knob(
        1.6, "fitted", "most the neighbouring vertebrae's reference may raise a spinal hot spot's uptake", _SEED1
    )
    focality_waiver_uptake: float = knob(
        4.0, "fitted", "normalised uptake from which the focality term damps at most to the floor", _SEEDS5
    )
    focality_waiver_floor: float = knob(0.5, "fitted", "the focality term's floor above the waiver uptake", _SEEDS5)
    skull_both_views_gain: float = knob(
        1.3, "fitted", "uptake factor of a skull hot spot seen in both views (calvarium, not the rim)", _SEEDS7
    )
    metastatic_p: float = knob(
        0.35, "fitted", "the rules' calling threshold: at most 0.5 false hot spots per scan", _SEED1
    )
    endpoint_p: float = knob(0.5, "fitted", "the rules' cut for BSI involvement and new / resolved lesions", _SEED1)
    shoulder_max_v: float = knob(
        0.215, "fitted", "height (body heights) above which humeral hot spots meet the shoulder rules", _SEED1
    )
    shaft_hip_gap: float = knob(
        0.02, "fitted", "femoral shaft starts this far below the bladder (body heights)", _SEED1
    )
    shaft_knee_gap: float = knob(0.05, "fitted", "femoral shaft ends this far above the knee (body heights)", _SEED1)
    shaft_shoulder_gap: float = knob(0.05, "fitted", "humeral shaft starts this far below the shoulder rules", _SEED1)
    bladder_min_ap: float = knob(1.2, "fitted", "bladder rule: brighter in front than behind by this", _SEED1)
    bladder_min_area_px: int = knob(
        300, "fitted", "a hot spot this large touching the bladder is bladder (pixels at 2.3 mm)", _SEED1
    )
    arm_min_u: float = knob(0.7, "fitted", "injection rule on the humerus: lateral to this (chest half-widths)", _SEED1)
    symmetric_max_contrast: float = knob(
        4.0, "fitted", "joint rules: this many times brighter than the mirror place is focal", _SEED1
    )
    fracture_max_ratio: float = knob(
        1.6, "fitted", "rib-fracture line: neighbouring foci within this factor of each other", _SEED1
    )
    symmetric_anatomy_max_uptake: float = knob(
        4.0, "fitted", "symmetric-anatomy rule only below this normalised uptake", _SEED1
    )
    lumbar_facet_max_area_px: int = knob(40, "fitted", "lumbar facet rule: largest focus (pixels at 2.3 mm)", _SEED1)
    lumbar_facet_max_elongation: float = knob(1.35, "fitted", "lumbar facet rule: roundest focus", _SEED1)
    lumbar_facet_max_uptake: float = knob(8.0, "fitted", "lumbar facet rule: brightest focus explained away", _SEED1)
    pelvic_anatomy_min_area_px: int = knob(
        150, "fitted", "pelvic anatomy rule: smallest hot spot (pixels at 2.3 mm)", _SEED1
    )
    pelvic_anatomy_max_uptake: float = knob(3.5, "fitted", "pelvic anatomy rule: only below this uptake", _SEED1)
    anterior_thigh_min_ap: float = knob(1.3, "fitted", "anterior-thigh rule: A/P ratio from which it applies", _SEED1)
    anterior_thigh_max_uptake: float = knob(3.5, "fitted", "anterior-thigh rule: only below this uptake", _SEED1)
    facial_min_ap: float = knob(1.6, "fitted", "facial-bones rule: A/P ratio from which it applies", _SEED1)
    facial_max_uptake: float = knob(3.5, "fitted", "facial-bones rule: only below this uptake", _SEED1)


@dataclass(frozen=True)
class BSIParams:
    """How a called hot spot's extent becomes Bone Scan Index."""

    extent_level: float = knob(0.4, "fitted", "share of the peak excess over bone that bounds an extent", _SEED1)
    blur_rim_px: float = knob(
        11.0,
        "fitted",
        "rim of camera blur left out of each extent (pixels at 2.3 mm)",
        "scintilab synth (narrow), ten tuning cohorts",
    )
    blur_rim_min_keep: float = knob(0.3, "design", "share of an extent kept whatever the rim")
    healthy_margin_px: int = knob(2, "design", "pixels around every hot spot left out of a bone's healthy level")


@dataclass(frozen=True)
class FollowupParams:
    """How two visits are compared."""

    growth: float = knob(0.25, "design", "relative growth (area or uptake) that makes a matched lesion grown")
    appeared_ratio: float = knob(
        2.5,
        "fitted",
        "times the excess uptake of the place before that makes a hot spot new there",
        "scintilab synth (narrow): set above its healing-flare factor of 1.3-1.7",
    )
    emerged_min_uptake: float = knob(
        2.6, "fitted", "uptake from which a focus on quiet bone counts though uncalled", _SEED1
    )
    place_radius_px: int = knob(
        2, "fitted", "pixels around a moved peak read for what the earlier study showed", _SEEDS7
    )
    same_lesion_mm: float = knob(10.0, "design", "new hot spots on one bone this close (mm) are one lesion")
    pcwg3_min_new: int = knob(2, "literature", "PCWG3: fewest new lesions for progression, and to confirm it")
    pcwg3_confirm_days: int = knob(42, "literature", "PCWG3: fewest days between first follow-up and confirmation")


@dataclass(frozen=True)
class QuantParams:
    """All of the quantification's parameters."""

    detection: DetectionParams = field(default_factory=DetectionParams)
    rules: RulesParams = field(default_factory=RulesParams)
    bsi: BSIParams = field(default_factory=BSIParams)
    followup: FollowupParams = field(default_factory=FollowupParams)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{group: {name: value}}``, JSON-ready."""
        return dataclasses.asdict(self)

    def replace(self, overrides: Mapping[str, Any]) -> QuantParams:
        """A copy with ``{"group.name": value}`` set (values converted to the field's type).

        Raises:
            ValueError: an unknown name, or a value of the wrong kind.
        """
        groups: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            group, name = _split(key)
            groups.setdefault(group, {})[name] = _convert(group, name, value)
        return dataclasses.replace(
            self, **{g: dataclasses.replace(getattr(self, g), **values) for g, values in groups.items()}
        )

    def changed(self) -> dict[str, Any]:
        """``{"group.name": value}`` of every value that differs from the default."""
        base = QuantParams().to_dict()
        return {f"{g}.{n}": v for g, values in self.to_dict().items() for n, v in values.items() if base[g][n] != v}


#: Named starting points (overrides of the defaults), as training's presets.
QUANT_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # the hand rules without their fitted damping of normal anatomy (a baseline to measure against)
    "no-anatomy-rules": {
        "rules.symmetric_anatomy_max_uptake": 0.0,
        "rules.lumbar_facet_max_area_px": 0,
        "rules.pelvic_anatomy_max_uptake": 0.0,
        "rules.anterior_thigh_max_uptake": 0.0,
        "rules.facial_max_uptake": 0.0,
    },
}


def _groups() -> dict[str, type]:
    return {f.name: f.default_factory for f in dataclasses.fields(QuantParams)}  # type: ignore[misc]


def _split(key: str) -> tuple[str, str]:
    group, _, name = key.strip().partition(".")
    groups = _groups()
    if group not in groups:
        raise ValueError(f"unknown parameter {key!r}: names are GROUP.NAME with GROUP one of {', '.join(groups)}")
    names = [f.name for f in dataclasses.fields(groups[group])]
    if name not in names:
        raise ValueError(f"unknown parameter {key!r}: {group} has {', '.join(names)}")
    return group, name


def _convert(group: str, name: str, value: Any) -> Any:
    default = getattr(_groups()[group](), name)
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                text = value.strip().lower()
                if text not in {"true", "false", "1", "0", "yes", "no", "on", "off"}:
                    raise ValueError(value)
                return text in {"true", "1", "yes", "on"}
            return bool(value)
        if isinstance(default, int):
            number = float(value)
            if number != int(number):
                raise ValueError(value)
            return int(number)
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{group}.{name}={value!r}: expected a {type(default).__name__}") from None


def parse_sets(items: str | Sequence[str] | None) -> dict[str, str]:
    """``["rules.facial_min_ap=1.8", ...]`` (or one string, comma- or semicolon-separated) as a dict.

    Raises:
        ValueError: an item without ``=`` or with an unknown name.
    """
    if not items:
        return {}
    if isinstance(items, str):
        items = [p for chunk in items.split(";") for p in chunk.split(",")]
    out: dict[str, str] = {}
    for item in items:
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"{item!r}: expected GROUP.NAME=VALUE")
        _split(key)
        out[key.strip()] = value.strip()
    return out


def params_from_preset(
    preset: str = "default", overrides: Mapping[str, Any] | str | Sequence[str] | None = None
) -> QuantParams:
    """A preset with overrides (a mapping, or ``--set`` items) on top.

    Raises:
        ValueError: an unknown preset or parameter, or a value of the wrong kind.
    """
    if preset not in QUANT_PRESETS:
        raise ValueError(f"unknown quantification preset {preset!r}; choose one of {', '.join(QUANT_PRESETS)}")
    extra = overrides if isinstance(overrides, Mapping) else parse_sets(overrides)
    return QuantParams().replace({**QUANT_PRESETS[preset], **extra})


def provenance() -> list[dict[str, Any]]:
    """One row per parameter: ``name, default, source, fitted_on, what``."""
    rows = []
    for group, cls in _groups().items():
        for f in dataclasses.fields(cls):
            rows.append({"name": f"{group}.{f.name}", "default": f.default, **f.metadata})
    return rows


def write_params(params: QuantParams, folder: str | Path, preset: str = "default") -> Path:
    """Write ``quant_params.json`` (values, the preset, what differs from it) into an output folder."""
    path = Path(folder) / PARAMS_FILE
    doc = {"preset": preset, "changed": params.changed(), "params": params.to_dict()}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def read_params(path: str | Path) -> QuantParams:
    """The parameters recorded in an output folder (or its ``quant_params.json``).

    Raises:
        InputError: missing, unreadable, or naming an unknown parameter.
    """
    p = Path(path)
    p = p / PARAMS_FILE if p.is_dir() else p
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        flat = {f"{g}.{n}": v for g, values in doc["params"].items() for n, v in values.items()}
        return QuantParams().replace(flat)
    except FileNotFoundError:
        raise InputError(p, f"no {PARAMS_FILE}: not a quantify output folder") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(p, f"not a quantification parameter record ({exc})") from None


_ACTIVE: contextvars.ContextVar[QuantParams] = contextvars.ContextVar("quant_params", default=QuantParams())  # noqa: B039 (frozen)


def active() -> QuantParams:
    """The parameters the quantification reads now (the defaults unless :func:`using` set others)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def using(params: QuantParams | None) -> Iterator[QuantParams]:
    """Quantify with ``params`` inside the block (None keeps the ones active)."""
    if params is None:
        yield active()
        return
    token = _ACTIVE.set(params)
    try:
        yield params
    finally:
        _ACTIVE.reset(token)
