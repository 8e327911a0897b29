"""The package's layers, bottom to top: a module imports only from its own layer or below.

This table is the architecture (README "Architecture", ``docs/layers.svg``), and
``tests/test_layers.py`` holds the code to it: it parses every import of the package,
function-level ones included, and fails on a cycle, an import from a higher layer, an
analysis module importing :mod:`scintilab.synth`, a ``_private`` name imported from
another module, or a module the table does not place. Third-party libraries are not
layered (TensorFlow and Keras stay imported lazily where they are heavy).

An entry names one module, or with ``.*`` a package and every module under it.
"""

from __future__ import annotations

#: (layer, what it holds, modules), bottom first.
LAYERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "core",
        "records, units, errors, pseudonyms, paths, provenance, the validation protocol",
        (
            "scintilab",
            "scintilab.errors",
            "scintilab.paths",
            "scintilab.pseudonym",
            "scintilab.study",
            "scintilab.utils",
            "scintilab.anatomy",
            "scintilab.provenance",
            "scintilab.protocol",
            "scintilab.kernel_logs",
            "scintilab.performance",
            "scintilab.layers",
        ),
    ),
    (
        "io",
        "DICOM, rasters, LabelMe, view recognition, ingest, the manifest, output folders, HTML pages",
        (
            "scintilab.viewrec",
            "scintilab.orientation",
            "scintilab.dicom_codes",
            "scintilab.dicom_write",
            "scintilab.dicom_views",
            "scintilab.dicom_pixels",
            "scintilab.dicomio",
            "scintilab.raster",
            "scintilab.labelme",
            "scintilab.cohorts",
            "scintilab.outputs",
            "scintilab.scan_files",
            "scintilab.labels_csv",
            "scintilab.annotation_match",
            "scintilab.manifest",
            "scintilab.ingest",
            "scintilab.pages",
            "scintilab.identity_check",
            "scintilab.chromium",
            "scintilab.reports",
        ),
    ),
    (
        "geometry",
        "fusion of the two views, their shared frame, the atlas, augmentation, scan figures",
        (
            "scintilab.fusion",
            "scintilab.view_frame",
            "scintilab.pairing",
            "scintilab.atlas_landmarks",
            "scintilab.atlas",
            "scintilab.atlas_figures",
            "scintilab.augment",
            "scintilab.figures_fusion",
            "scintilab.viz",
        ),
    ),
    (
        "audit",
        "duplicates, leaks and bad scans before training; realism against real-scan statistics",
        ("scintilab.audit.*", "scintilab.realism"),
    ),
    (
        "classifier",
        "datasets, splits, Keras input, models, configs, runs, training, evaluation, explanations, export",
        (
            "scintilab.preprocessing",
            "scintilab.image_set",
            "scintilab.splits",
            "scintilab.keras_input",
            "scintilab.dataset_cache",
            "scintilab.datasets",
            "scintilab.models.*",
            "scintilab.presets",
            "scintilab.runs",
            "scintilab.metrics",
            "scintilab.evaluation",
            "scintilab.distributed",
            "scintilab.training_data",
            "scintilab.training_callbacks",
            "scintilab.training",
            "scintilab.explain",
            "scintilab.scoring",
            "scintilab.export",
            "scintilab.experiments",
        ),
    ),
    (
        "quant",
        "prepared studies, hot spots, BSI, follow-up, lesion statistics, quantify, DICOM results",
        (
            "scintilab.quant_params",
            "scintilab.prepared",
            "scintilab.hotspot_records",
            "scintilab.hotspot_rules",
            "scintilab.hotspot_model",
            "scintilab.skeleton_model",
            "scintilab.hotspots",
            "scintilab.bsi",
            "scintilab.followup",
            "scintilab.lesion_features",
            "scintilab.lesion_agreement",
            "scintilab.lesion_stats",
            "scintilab.lesions",
            "scintilab.lesion_figures",
            "scintilab.quantify",
            "scintilab.quant_report",
            "scintilab.quant_summaries",
            "scintilab.dicom_refs",
            "scintilab.dicom_seg",
            "scintilab.dicom_sr",
            "scintilab.dicom_pdf",
            "scintilab.dicom_results",
        ),
    ),
    (
        "synth",
        "the synthetic cohort, planted faults, validation against its truth",
        ("scintilab.synth.*", "scintilab.faults"),
    ),
    (
        "runner",
        "papermill batches, Dask, benchmarks, the command line",
        (
            "scintilab.batch_specs",
            "scintilab.batch",
            "scintilab.dask_executor",
            "scintilab.bench.*",
            "scintilab.cli",
            "scintilab.__main__",
        ),
    ),
    ("widgets", "the notebooks' explorers (ipywidgets)", ("scintilab_widgets.*",)),
)

#: Layers that analyse scans: they never import the generator.
ANALYSIS_LAYERS: tuple[str, ...] = ("io", "geometry", "audit", "classifier", "quant")


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name, or None where the table does not place it."""
    for layer, _, entries in LAYERS:
        for entry in entries:
            package = entry.removesuffix(".*")
            if module == entry or (entry.endswith(".*") and (module == package or module.startswith(package + "."))):
                return layer
    return None


def layer_index(layer: str) -> int:
    """Position of a layer, 0 at the bottom."""
    return [name for name, _, _ in LAYERS].index(layer)
