"""A trained run scoring one study: class probabilities, Grad-CAM and the input it saw.

The quantification report adds these beside the hot spots (``scintilab quantify
--classifier RUN_DIR``); the study is prepared exactly as the run's dataset prepared its
images (:mod:`scintilab.preprocessing`), so the network sees what it was trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scintilab.explain import grad_cam
from scintilab.fusion import fuse_study
from scintilab.preprocessing import oriented_views, preprocess
from scintilab.runs import load_run
from scintilab.study import Study


class Classifier:
    """A trained run directory used to add class probabilities and Grad-CAM to reports.

    The study is prepared as the run's dataset prepared its images: the views fused by
    addition for ``D3``, else each view in anterior orientation (probabilities averaged);
    then :func:`scintilab.preprocessing.preprocess` to the run's input size.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run = load_run(run_dir)
        self.model = self.run.load_model()
        self.classes = list(self.run.classes)
        self.image_size = tuple(self.run.config.image_size)
        self.fused = self.run.config.dataset == "D3"

    def inputs(self, study: Study) -> np.ndarray:
        """(N, rows, cols) model inputs of one study."""
        if self.fused and study.anterior is not None and study.posterior is not None:
            imgs = [fuse_study(study, method="add").image]
        else:
            imgs = [img for _, img in oriented_views(study)]
        return np.stack([preprocess(i, self.image_size) for i in imgs])

    def proba(self, study: Study, x: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities of one study (its inputs' mean), in :attr:`classes` order."""
        x = self.inputs(study) if x is None else x
        return np.asarray(self.model.predict(x[..., None], verbose=0)).mean(axis=0)

    def __call__(self, study: Study) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
        """(class probabilities, Grad-CAM of the predicted class, the input image)."""
        x = self.inputs(study)
        proba = self.proba(study, x)
        cam = grad_cam(self.model, x[:1], int(np.argmax(proba)))[0]
        return {c: float(p) for c, p in zip(self.classes, proba)}, cam, x[0]
