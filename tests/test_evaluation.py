"""Tests for scintilab.evaluation: metrics vs scikit-learn, hand-made matrices, bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from scintilab import evaluation as ev


def _random_predictions(seed: int, n: int = 120, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y] * rng.random((n, 1))
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_multiclass_metrics_match_sklearn(seed: int) -> None:
    y, p = _random_predictions(seed)
    pred = p.argmax(axis=1)
    m = ev.classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro", zero_division=0))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro", zero_division=0))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    per_f1 = skm.f1_score(y, pred, average=None, zero_division=0)
    per_auc = [skm.roc_auc_score(y == k, p[:, k]) for k in range(3)]
    for k, c in enumerate(("NoMet", "ADMet", "nADMet")):
        assert m["per_class"]["f1"][c] == pytest.approx(per_f1[k])
        assert m["per_class"]["auc"][c] == pytest.approx(per_auc[k])
    assert np.array_equal(np.array(m["confusion"]), skm.confusion_matrix(y, pred, labels=[0, 1, 2]))


def test_binary_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.random(200) + 0.3 * y, 1)  # rounding makes many ties
    assert ev.binary_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score))
    assert np.isnan(ev.binary_auc(np.ones(5), np.arange(5)))


def test_specificity_and_macro_on_hand_made_matrix() -> None:
    # rows = truth (NoMet, ADMet, nADMet), columns = prediction; 60 images
    cm = np.array([[18, 1, 1], [2, 10, 8], [0, 4, 16]])
    pc = ev.per_class_from_confusion(cm)
    # NoMet: TP 18, FP 2, FN 2, TN 38 -> specificity 38/40
    # ADMet: TP 10, FP 5, FN 10, TN 35 -> 35/40; nADMet: TP 16, FP 9, FN 4, TN 31 -> 31/40
    assert pc["specificity"] == pytest.approx([38 / 40, 35 / 40, 31 / 40])
    assert pc["precision"] == pytest.approx([18 / 20, 10 / 15, 16 / 25])
    assert pc["recall"] == pytest.approx([18 / 20, 10 / 20, 16 / 20])
    # macro = unweighted mean over classes, also when class sizes differ
    y = np.repeat([0, 1, 2], cm.sum(axis=1))
    pred = np.concatenate([np.repeat([0, 1, 2], row) for row in cm])
    m = ev.classification_metrics(y, y_pred=pred)
    assert m["specificity"] == pytest.approx(np.mean([38 / 40, 35 / 40, 31 / 40]))
    assert m["precision"] == pytest.approx(np.mean([18 / 20, 10 / 15, 16 / 25]))
    f1 = [2 * p * r / (p + r) for p, r in zip([18 / 20, 10 / 15, 16 / 25], [18 / 20, 10 / 20, 16 / 20])]
    assert m["f1"] == pytest.approx(np.mean(f1))
    assert m["accuracy"] == pytest.approx(44 / 60)


def test_class_never_predicted_counts_zero_precision() -> None:
    cm = np.array([[5, 0, 0], [3, 0, 2], [0, 0, 4]])  # ADMet never predicted
    pc = ev.per_class_from_confusion(cm)
    assert pc["precision"][1] == 0.0 and pc["f1"][1] == 0.0
    assert pc["specificity"][1] == 1.0  # no false positives for ADMet


def test_two_class_merge_and_sum_differ_where_they_should() -> None:
    y = np.array([0, 1, 2, 0])
    p = np.array(
        [
            [0.40, 0.35, 0.25],  # argmax NoMet, but P(Met) = 0.60
            [0.10, 0.80, 0.10],
            [0.20, 0.30, 0.50],
            [0.90, 0.05, 0.05],
        ]
    )
    y2, p2, merged = ev.two_class(y, p, method="merge")
    _, _, summed = ev.two_class(y, p, method="sum")
    assert y2.tolist() == [0, 1, 1, 0]
    assert merged.tolist() == [0, 1, 1, 0]
    assert summed.tolist() == [1, 1, 1, 0]
    assert p2[:, 1] == pytest.approx([0.60, 0.90, 0.80, 0.10])
    m = ev.classification_metrics(y2, p2, y_pred=summed, classes=ev.TWO_CLASSES)
    assert m["precision"] == pytest.approx(skm.precision_score(y2, summed))
    assert m["specificity"] == pytest.approx(0.5)
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y2, p2[:, 1]))


def test_ece_and_calibration_curve() -> None:
    # 10 images at confidence 0.8, 8 right -> perfectly calibrated bin; 10 at 0.9, 6 right
    p = np.array([[0.8, 0.1, 0.1]] * 10 + [[0.05, 0.9, 0.05]] * 10)
    y = np.array([0] * 8 + [1] * 2 + [1] * 6 + [2] * 4)
    assert ev.expected_calibration_error(y, p) == pytest.approx(0.5 * 0.0 + 0.5 * 0.3)
    table = ev.calibration_curve(y, p)
    assert table["count"].tolist() == [10, 10]
    assert table["accuracy"].tolist() == pytest.approx([0.8, 0.6])


def _patient_frame(seed: int, n_patients: int = 40, per_patient: int = 3) -> pd.DataFrame:
    """Predictions where each patient has several images sharing one label and one outcome."""
    rng = np.random.default_rng(seed)
    rows = []
    classes = ["NoMet", "ADMet", "nADMet"]
    for i in range(n_patients):
        label = rng.integers(0, 3)
        good = rng.random() < 0.7  # a patient is read right or wrong on all his images
        for j in range(per_patient):
            p = rng.dirichlet(np.ones(3))
            target = label if good else (label + 1) % 3
            p = 0.3 * p + 0.7 * np.eye(3)[target]
            rows.append(
                {
                    "study_key": f"S-{i:03d}",
                    "patient_key": f"P-{i:03d}",
                    "kind": "fused",
                    "aug": str(j),
                    "split": "test",
                    "true": classes[label],
                    **{f"p_{c}": v for c, v in zip(classes, p)},
                }
            )
    return pd.DataFrame(rows)


def test_bootstrap_ci_contains_estimate_and_resamples_patients() -> None:
    df = _patient_frame(0)
    y, p, groups, classes = ev.arrays_from_predictions(df)
    table = ev.bootstrap_metrics(y, p, groups, n_boot=300, rng=1)
    for metric in ev.MACRO_METRICS:
        row = table.loc[metric]
        assert row.low <= row.estimate <= row.high, metric
        assert row.high > row.low
    # Patients are read right or wrong on all 3 images: resampling images as if independent
    # would make the interval ~sqrt(3) too narrow; resampling patients must not.
    by_image = ev.bootstrap_metrics(y, p, None, n_boot=300, rng=1)
    width_patient = table.loc["accuracy", "high"] - table.loc["accuracy", "low"]
    width_image = by_image.loc["accuracy", "high"] - by_image.loc["accuracy", "low"]
    assert width_patient > 1.3 * width_image
    # same seed -> same intervals
    again = ev.bootstrap_metrics(y, p, groups, n_boot=300, rng=1)
    pd.testing.assert_frame_equal(table, again)


def test_bootstrap_replicates_keep_patients_whole() -> None:
    # A patient's images all carry the same label here; in a by-patient bootstrap the number
    # of images per class in every replicate is then a multiple of 3 (3 images per patient).
    df = _patient_frame(2, n_patients=12)
    y, p, groups, _ = ev.arrays_from_predictions(df)
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(uniq))]
    gen = np.random.default_rng(0)
    drawn = gen.integers(0, len(uniq), size=len(uniq))
    idx = np.concatenate([members[i] for i in drawn])
    assert len(idx) == 3 * len(uniq)
    assert all(np.bincount(y[idx], minlength=3) % 3 == 0)


def test_evaluate_predictions_and_tables(tmp_path) -> None:
    df = _patient_frame(3)
    res = ev.evaluate_predictions(df, n_boot=100, rng=0)
    assert set(res["two_class"]) == {"sum", "merge"}
    assert res["n_patients"] == 40 and res["n_images"] == 120
    json.dumps(ev.jsonable(res))  # JSON-ready
    table = ev.metrics_table({"inrac": res})
    assert list(table.columns) == ["Accuracy", "Precision", "Recall", "Specificity", "F-1 score", "AUC"]
    assert table.loc["inrac", "Accuracy"].startswith(f"{res['metrics']['accuracy']:.4f} (")
    t8 = ev.metrics_table({"inrac": res}, two_class="sum")
    assert t8.loc["inrac", "Recall"].startswith(f"{res['two_class']['sum']['metrics']['recall']:.4f}")
    pct = ev.per_class_table(res)
    assert list(pct.index) == ["NoMet", "ADMet", "nADMet"]
    # figures build and carry the data
    assert len(ev.roc_figure(res["roc"]).data) == 4
    assert ev.confusion_figure(res["metrics"]["confusion"], res["classes"]).data[0].z is not None
    assert len(ev.per_class_figure(res).data) == len(ev.CLASS_METRICS)
    assert "ECE" in ev.calibration_figure(res).layout.title.text


def test_study_aggregation_averages_probabilities() -> None:
    df = _patient_frame(4, n_patients=5)
    agg = ev.aggregate_by_study(df)
    assert len(agg) == 5
    first = df[df.study_key == "S-000"][["p_NoMet", "p_ADMet", "p_nADMet"]].mean()
    assert agg.loc[agg.study_key == "S-000", "p_ADMet"].iloc[0] == pytest.approx(first["p_ADMet"])


def test_missing_class_gives_nan_auc_not_a_guess() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    m = ev.classification_metrics(y, p)
    assert np.isnan(m["per_class"]["auc"]["nADMet"]) and np.isnan(m["auc"])
    assert m["per_class"]["auc"]["NoMet"] == pytest.approx(1.0)
