"""scintilab: detect lung-cancer bone metastasis in whole-body bone scans.

A thin package behind ordered notebooks. It implements, and goes beyond, Guo et al.
2022 (Insights into Imaging): anterior/posterior view fusion, rotation/translation
augmentation and a residual CNN with CBAM attention (Classifier-inRAC), plus lesion
statistics, quantification (hotspots, Bone Scan Index, follow-up) and a cohort audit.

Heavy modules (Keras, plotting) are imported lazily by the modules that need them, so
``import scintilab`` stays cheap.
"""
from __future__ import annotations

import os as _os

# TensorFlow 2.21's oneDNN CPU kernels corrupt the heap (segfault / "double free") when a
# compiled training step is re-run for a smaller last batch at small inputs; reproduced with
# inrac and residual at 128x32. Off unless the user sets it, before TensorFlow is imported.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from scintilab.study import CLASSES, VIEWS, Shape, Study

__version__ = "0.1.0"

__all__ = ["CLASSES", "VIEWS", "Shape", "Study", "__version__"]
