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
import sys as _sys

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "ipykernel" in _sys.modules:
    # in a notebook, TensorFlow's native log lines would land in every shared report
    from scintilab.kernel_logs import filter_kernel_stderr as _filter_kernel_stderr

    _filter_kernel_stderr()

from scintilab.study import CLASSES, VIEWS, Shape, Study

__version__ = "0.1.0"

__all__ = ["CLASSES", "VIEWS", "Shape", "Study", "__version__"]
