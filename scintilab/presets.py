"""Training configurations: one dataclass, named presets, and a fingerprint for reuse.

``paper`` reproduces Guo et al. 2022's Table 3 (Adam, learning rate 0.01, batch 32, 300
epochs) on their input (256 columns x 1024 rows), dataset D3 and 7:3 patient split.
``quick`` is sized to finish in minutes on a 2-core CPU with the small synthetic cohort.
Every field can be overridden (``config_from_preset("quick", epochs=3)``, or
``--set epochs=3`` on the command line), so notebooks and batch runs never carry magic
numbers of their own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scintilab.cohorts import manifest_of
from scintilab.errors import InputError
from scintilab.paths import repo_path
from scintilab.provenance import manifest_fingerprint
from scintilab.study import CLASSES

#: Fields that do not change what a run computes, left out of the fingerprint.
# allow_leaks only decides whether a leaky split may run, not what it computes; the audit
# files are hashed by content into the data fingerprint (presets.audit_fingerprint), not by path.
_NOT_IN_FINGERPRINT = frozenset(
    {
        "preset",
        "data",
        "verbose",
        "n_boot",
        "save_test_images",
        "allow_leaks",
        "audit_flags",
        "audit_review",
        "distribution",
    }
)


@dataclass
class TrainConfig:
    """Everything that determines a training run.

    Attributes:
        preset: name of the preset this started from (informational).
        model: a name in ``scintilab.models.MODELS`` (``inrac``, ``outrac``, ...).
        model_options: extra keyword arguments for ``build_model`` (e.g. ``width=8``).
        dataset: ``D1`` (balanced originals), ``D2`` (augmented) or ``D3`` (augmented, fused).
        data: path of the cohort manifest (``scintilab ingest`` output).
        image_size: network input (rows, columns); the paper's is (1024, 256).
        num_classes: 3 (NoMet, ADMet, nADMet) or 2 (NoMet vs ADMet+nADMet merged).
        batch_size: images per gradient step.
        epochs: maximum number of epochs.
        learning_rate: optimizer step size.
        optimizer: ``adam``, ``adamw``, ``sgd`` or ``rmsprop``.
        seed: one seed for the split, the augmentation and Keras (``set_seed``).
        test_size: share of *patients* held out for testing (the paper's 7:3).
        val_size: share of the training patients held out for validation (early stopping
            monitors ``val_loss`` then; with 0 it monitors the training loss).
        r_t: rotation range in degrees for augmentation (the paper's r_T; example 3 deg).
        t_t: translation range in pixels at 256 x 1024 (the paper's t_T; example 3 px).
        augment_online: also augment randomly during training (on top of D2/D3's copies).
        class_weights: ``None``, ``"balanced"`` or ``{class name: weight}``.
        early_stopping: patience in epochs; 0 switches early stopping off.
        min_delta: smallest decrease of the monitored loss that counts as improvement.
        mixed_precision: mixed precision with float32 master weights and softmax:
            ``True``/``"auto"`` = bfloat16 on a CPU with AVX512_BF16/AMX, float16 or
            bfloat16 on a GPU, float32 elsewhere
            (:func:`scintilab.performance.resolve_precision`). ``paper`` uses ``"auto"``
            (1.7x faster training at 1024x256, no accuracy change measurable on ``quick``:
            BENCHMARKS.md); ``quick`` stays float32 (no faster at its small width).
        distribution: data-parallel training, ``"mirrored"`` or ``"multiworker"`` on
            TensorFlow, Keras ``DataParallel`` on JAX (:mod:`scintilab.distributed`); it
            changes where a run computes, not what, so it is not in the fingerprint.
        jit_compile: Keras ``jit_compile`` (``"auto"``, True, False). XLA pays off on a
            GPU over many epochs; on a CPU its compile time (about a minute for inrac)
            exceeds a short run, so ``quick`` switches it off.
        run_eagerly: run Keras eagerly (no graph tracing): slower per step, but starts at
            once, which wins for tiny models and a handful of steps (tests, debugging).
        deterministic: ask the backend for deterministic kernels (same seed, same history).
        split_groups: optional CSV (``patient_key,group`` or ``study_key,group``) whose
            groups must not straddle the split, e.g. the audit's same-patient suspects.
        audit_flags: the cohort audit's ``flags.csv`` (``scintilab audit``). Duplicates
            and same-patient suspects in it are grouped with each other so they land on
            one side of the split, and the split is checked against it before fitting.
            None (default) uses ``<manifest folder>/audit/flags.csv`` when that file
            exists (what ``scintilab audit MANIFEST --out <manifest folder>/audit``
            writes), so an audited cohort is leak-proof without a setting; ``"off"``
            trains without the audit; a path must exist.
        audit_review: the audit's review CSV: pairs a reviewer dismissed are neither
            grouped nor checked. None uses ``review.csv`` beside the flags when present.
        allow_leaks: go on (with a warning) when a duplicate/same-patient pair straddles
            the split, instead of refusing with :class:`scintilab.audit.LeakageError`.
        predict_train: also write predictions for training images (overfitting checks).
        save_test_images: keep the test images (float16) in the run folder, so
            explanations and galleries need only the run folder.
        n_boot: bootstrap replicates for the CIs in ``metrics.json``.
        verbose: Keras verbosity (2 = one line per epoch).
    """

    preset: str = "quick"
    model: str = "inrac"
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "D3"
    data: str = ""
    image_size: tuple[int, int] = (1024, 256)
    num_classes: int = 3
    batch_size: int = 32
    epochs: int = 300
    learning_rate: float = 0.01
    optimizer: str = "adam"
    seed: int = 0
    test_size: float = 0.3
    val_size: float = 0.0
    r_t: float = 3.0
    t_t: float = 3.0
    augment_online: bool = False
    class_weights: str | dict[str, float] | None = None
    early_stopping: int = 0
    min_delta: float = 1e-4
    mixed_precision: bool | str = False
    jit_compile: bool | str = "auto"
    run_eagerly: bool = False
    deterministic: bool = True
    split_groups: str | None = None
    audit_flags: str | None = None
    audit_review: str | None = None
    allow_leaks: bool = False
    distribution: str | None = None
    predict_train: bool = False
    save_test_images: bool = True
    n_boot: int = 1000
    verbose: int = 2

    def __post_init__(self) -> None:
        self.image_size = tuple(int(v) for v in self.image_size)  # JSON gives lists
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first field that makes no sense."""
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"image_size must be (rows, cols) >= 8, got {self.image_size}")
        if self.dataset not in {"D1", "D2", "D3"}:
            raise ValueError(f"dataset must be D1, D2 or D3, got {self.dataset!r}")
        if self.num_classes not in (2, 3):
            raise ValueError(f"num_classes must be 2 or 3, got {self.num_classes}")
        if not 0.0 < self.test_size < 1.0:
            raise ValueError(f"test_size must be in (0, 1), got {self.test_size}")
        if not 0.0 <= self.val_size < 1.0:
            raise ValueError(f"val_size must be in [0, 1), got {self.val_size}")
        if self.batch_size < 1 or self.epochs < 1 or self.learning_rate <= 0:
            raise ValueError("batch_size and epochs must be >= 1 and learning_rate > 0")
        if self.optimizer.lower() not in {"adam", "adamw", "sgd", "rmsprop"}:
            raise ValueError(f"unknown optimizer {self.optimizer!r}")
        if isinstance(self.class_weights, str) and self.class_weights != "balanced":
            raise ValueError(f"class_weights must be None, 'balanced' or a dict, got {self.class_weights!r}")

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in model-output order."""
        return CLASSES if self.num_classes == 3 else ("NoMet", "Met")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(rows, cols, 1): the model's input shape."""
        return (self.image_size[0], self.image_size[1], 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys (from a newer version) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}")
        return dataclasses.replace(self, **overrides)

    def fingerprint(self, data_fingerprint: str | None = None) -> str:
        """Hash of everything that determines the result: settings plus the data's content.

        The manifest path is replaced by a hash of the manifest's content
        (:func:`data_fingerprint`), so moving a cohort keeps the fingerprint and changing
        it does not. Presentation-only fields (preset name, verbosity, bootstrap size)
        are left out.

        Args:
            data_fingerprint: precomputed data hash (e.g. of an in-memory dataset); by
                default the manifest named by :attr:`data` is hashed (empty if none).

        Returns:
            16 hex characters.
        """
        if data_fingerprint is None:
            data_fingerprint = manifest_data_fingerprint(self)
        payload = {k: v for k, v in self.to_dict().items() if k not in _NOT_IN_FINGERPRINT}
        payload["data_fingerprint"] = data_fingerprint
        blob = json.dumps(payload, sort_keys=True, default=str).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]


#: The named presets. Values are overrides on top of :class:`TrainConfig`'s defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # Guo et al. 2022 Table 3 and Methods: 256 x 1024 input, Adam, lr 0.01, batch 32,
    # 300 epochs, D3, 7:3 split by patient. lr 0.01 is high for Adam, but it is what the
    # paper reports; batch normalisation after every convolution is what keeps it stable,
    # so `paper` keeps it to reproduce the paper, not to be optimal.
    "paper": {
        "image_size": (1024, 256),
        "batch_size": 32,
        "epochs": 300,
        "learning_rate": 0.01,
        "optimizer": "adam",
        "dataset": "D3",
        "test_size": 0.3,
        "r_t": 3.0,
        "t_t": 3.0,
        # bfloat16 where the hardware has it: 1.7x faster training at this size, and no
        # accuracy change measurable on `quick` (BENCHMARKS.md, "Mixed precision")
        "mixed_precision": "auto",
    },
    # Minutes on a 2-core CPU with the small synthetic cohort: a quarter of the paper's
    # resolution per side (64 x 256 = 1/16 of the pixels), a narrower network (width 16
    # instead of 64: ~16x fewer multiply-adds per conv), 12 epochs. With so few steps
    # (a few dozen images, a handful of batches per epoch) Adam at 0.01 makes the batch
    # statistics and the loss jump from epoch to epoch; 1e-3 (Adam's usual default)
    # converges smoothly within the epoch budget, so `quick` uses it.
    "quick": {
        "image_size": (256, 64),
        "model_options": {"width": 16},
        "batch_size": 8,
        "epochs": 12,
        "learning_rate": 1e-3,
        "optimizer": "adam",
        "dataset": "D3",
        "test_size": 0.3,
        "r_t": 3.0,
        "t_t": 3.0,
        "n_boot": 1000,
        "jit_compile": False,
    },
}


def config_from_preset(name: str, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a named preset with any fields overridden.

    Args:
        name: a key of :data:`PRESETS`.
        **overrides: field values that replace the preset's (``model_options`` is merged
            into the preset's, so ``model_options={"dropout": 0.2}`` keeps ``width``).

    Returns:
        The validated configuration.

    Raises:
        ValueError: unknown preset or field.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    values: dict[str, Any] = {
        "preset": name,
        **{k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[name].items()},
    }
    for k, v in overrides.items():
        if k == "model_options" and isinstance(v, dict):
            values["model_options"] = {**values.get("model_options", {}), **v}
        else:
            values[k] = v
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown TrainConfig field(s) {unknown}")
    return TrainConfig(**values)


def config_with(
    preset: str = "quick",
    *,
    data: str = "",
    model: str = "",
    epochs: int = 0,
    image_size: tuple[int, int] | list[int] | None = None,
    width: int = 0,
    seed: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """:func:`config_from_preset` with notebook-style "0 or empty = keep the preset's" arguments.

    Args:
        preset: a key of :data:`PRESETS`.
        data: manifest path.
        model: model name ("" keeps the preset's).
        epochs: epochs (0 keeps the preset's).
        image_size: (rows, cols) (None or zeros keep the preset's).
        width: model base width (0 keeps the preset's).
        seed: the seed (None keeps the preset's).
        overrides: any other fields, as for :func:`config_from_preset`.
    """
    values: dict[str, Any] = dict(overrides or {})
    if data:
        values["data"] = data
    if model:
        values["model"] = model
    if epochs:
        values["epochs"] = int(epochs)
    if image_size is not None and all(image_size):
        values["image_size"] = tuple(int(v) for v in image_size)
    if width:
        values["model_options"] = {**values.get("model_options", {}), "width": int(width)}
    if seed is not None:
        values["seed"] = int(seed)
    return config_from_preset(preset, **values)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` from the command line; the value is read as JSON when it can be.

    ``epochs=3`` -> ("epochs", 3); ``image_size=[128,32]`` -> list; ``model=outrac`` ->
    string; ``model_options.width=8`` -> ("model_options", {"width": 8}).
    """
    if "=" not in text:
        raise ValueError(f"override {text!r} is not key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = {"none": None, "true": True, "false": False}.get(raw.strip().lower(), raw)
    if "." in key:
        head, sub = key.split(".", 1)
        return head, {sub: value}
    if key == "image_size" and isinstance(value, str) and "x" in value:
        value = [int(v) for v in value.lower().split("x")]  # "256x64" = rows x cols
    return key, value


def config_manifest(config: TrainConfig) -> Path:
    """The manifest ``config.data`` names (a CSV, or a cohort folder's manifest.csv), a
    relative path read from the repository root wherever the command runs."""
    path = repo_path(config.data)
    try:
        return manifest_of(path)
    except InputError:
        return path  # not there yet: whoever reads it says what is wrong


#: File names ``scintilab audit --out <manifest folder>/audit`` writes; read automatically.
AUDIT_DIR, AUDIT_FLAGS, AUDIT_REVIEW = "audit", "flags.csv", "review.csv"


def audit_files(config: TrainConfig) -> tuple[Path | None, Path | None, str]:
    """The audit flags and review files training uses, and where the flags came from.

    ``config.audit_flags`` None looks for ``<manifest folder>/audit/flags.csv`` (used when
    present), ``"off"`` (or ``""``/``"none"``) switches the audit off, a path must exist.
    ``config.audit_review`` None uses ``review.csv`` beside the flags when present.

    Returns:
        ``(flags path or None, review path or None, source)`` with source ``"config"``,
        ``"auto"``, ``"off"`` or ``"none found"``.

    Raises:
        InputError: a configured flags or review file does not exist.
    """
    setting = config.audit_flags
    if setting is not None and str(setting).strip().lower() in {"", "off", "none", "false"}:
        return None, None, "off"
    if setting is None:
        if not config.data:
            return None, None, "none found"
        flags = config_manifest(config).parent / AUDIT_DIR / AUDIT_FLAGS
        if not flags.is_file():
            return None, None, "none found"
        source = "auto"
    else:
        flags = repo_path(setting)
        if not flags.is_file():
            raise InputError(
                flags, "audit flags not found (run 'scintilab audit MANIFEST --out DIR' first, or set audit_flags=off)"
            )
        source = "config"
    review: Path | None = None
    if config.audit_review:
        review = repo_path(config.audit_review)
        if not review.is_file():
            raise InputError(review, "audit review CSV not found")
    elif (flags.parent / AUDIT_REVIEW).is_file():
        review = flags.parent / AUDIT_REVIEW
    return flags, review, source


def audit_fingerprint(config: TrainConfig) -> str:
    """Hash of the audit files' content ("" without an audit): they change the split."""
    flags, review, _ = audit_files(config)
    if flags is None:
        return ""
    h = hashlib.sha256(flags.read_bytes())
    if review is not None:
        h.update(review.read_bytes())
    return h.hexdigest()[:16]


def audit_tail(config: TrainConfig) -> str:
    """``+audit:<hash>`` of the audit files in use (empty without an audit): they change the split."""
    audit_fp = audit_fingerprint(config)
    return f"+audit:{audit_fp}" if audit_fp else ""


def manifest_data_fingerprint(config: TrainConfig) -> str:
    """The data fingerprint of a config that trains on its manifest: the manifest's content
    (read where :func:`config_manifest` finds it) and the audit files. The one definition
    both :meth:`TrainConfig.fingerprint` and :func:`scintilab.training_data.resolve_data_fingerprint`
    use, so a finished run is found from any working folder."""
    return (manifest_fingerprint(config_manifest(config)) if config.data else "") + audit_tail(config)
