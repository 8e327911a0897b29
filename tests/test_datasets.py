"""D1/D2/D3, Table 2 counts, patient-level splits, the memmap cache and the Keras input."""

from __future__ import annotations

import numpy as np
import pytest

from scintilab.datasets import (
    PAPER_ORIGINALS,
    ImageSet,
    build_dataset,
    build_datasets,
    dataset_table,
    expected_table,
    kfold_splits,
    normalize,
    patient_split,
    split_table,
)
from scintilab.study import CLASSES, Study
from scintilab.synth.pairs import synthetic_pair

SHAPE = (128, 32)
SIZE = (64, 16)


def make_cohort(n_patients: int = 30, seed: int = 0, revisit_every: int = 5) -> list[Study]:
    """Tiny cohort in the paper's class proportions; every 5th patient has a second visit."""
    gen = np.random.default_rng(seed)
    labels = gen.choice(CLASSES, size=n_patients, p=[0.6073, 0.2344, 0.1583])
    studies = []
    for i, lab in enumerate(labels):
        visits = 2 if i % revisit_every == 0 else 1
        for v in range(visits):
            a, p = synthetic_pair(SHAPE, (int(gen.integers(-3, 4)), int(gen.integers(-2, 3))), rng=gen)
            studies.append(Study(f"S-{i:03d}-{v}", f"P-{i:03d}", a, p, label=str(lab)))
    return studies


@pytest.fixture(scope="module")
def cohort() -> list[Study]:
    return make_cohort()


def test_normalize_is_documented_scaling() -> None:
    img = np.zeros((50, 20), np.float32)
    img[10:40, 5:15] = np.linspace(1, 100, 300).reshape(30, 10)
    img[0, 0] = 10_000  # bladder-like outlier
    out = normalize(img)
    q = np.percentile(img[img > 0], 99.5)
    np.testing.assert_allclose(out[10:40, 5:15], np.clip(img[10:40, 5:15] / q, 0, 4), rtol=1e-6)
    assert out.max() == pytest.approx(4.0) and out.min() == 0.0
    assert not normalize(np.zeros((4, 4))).any()


def test_d1_d2_d3_counts_follow_the_paper_rules(cohort: list[Study]) -> None:
    sets = build_datasets(cohort, image_size=SIZE, rng=1, progress=False)
    d1, d2, d3 = sets["D1"], sets["D2"], sets["D3"]
    n_views = {c: 2 * sum(s.label == c for s in cohort) for c in CLASSES}
    c1 = d1.class_counts()
    assert c1["ADMet"] == n_views["ADMet"] and c1["nADMet"] == n_views["nADMet"]
    # NoMet sampled down by study to the paper's fraction 226/614 (counted in images)
    assert abs(c1["NoMet"] - n_views["NoMet"] * 226 / 614) <= 2
    assert set(d1.aug) == {"orig"}
    assert set(d1.kinds) == {"ANT", "POST"}
    c2 = d2.class_counts()
    for c, m in {"ADMet": 624 / 237, "nADMet": 640 / 160, "NoMet": 614 / 226}.items():
        assert abs(c2[c] - c1[c] * m) <= 2, c  # per-class multiplier, rounded per study pair
    # D3: one fused image per study copy, i.e. half of D2
    assert set(d3.kinds) == {"fused"}
    assert 2 * len(d3) == len(d2)
    # D1 and D3 share the NoMet subset (same seed)
    assert set(d1.study_keys) == set(d3.study_keys)
    table = dataset_table(d1, d2, d3)
    assert list(table.columns) == ["ADMet", "nADMet", "NoMet", "Total"]
    assert table.loc["D2", "Total"] == len(d2)
    assert d1.images.dtype == np.float32 and d1.images.shape[1:] == SIZE


def test_d3_copies_are_fused_d2_copies(cohort: list[Study]) -> None:
    """Copy j of a study carries the same parameters in D2 (views) and D3 (fused)."""
    d2 = build_dataset(cohort[:6], "D2", image_size=SHAPE, rng=4, progress=False)
    d3 = build_dataset(cohort[:6], "D3", image_size=SHAPE, rng=4, progress=False)
    for key in set(d3.study_keys):
        a2 = sorted(d2.aug[(d2.study_keys == key) & (d2.kinds == "ANT")])
        a3 = sorted(d3.aug[d3.study_keys == key])
        assert a2 == a3


def test_posterior_views_are_flipped_in_d1() -> None:
    a = np.zeros(SHAPE, np.uint16)
    a[20:100, 2:10] = 50  # uptake on the image left
    s = Study("S-x", "P-x", a, a[:, ::-1].copy(), label="ADMet")
    d1 = build_dataset([s], "D1", image_size=SHAPE, rng=0, progress=False)
    ant = d1.images[d1.kinds == "ANT"][0]
    post = d1.images[d1.kinds == "POST"][0]
    np.testing.assert_array_equal(ant, post)


def test_bad_studies_are_skipped_and_reported(cohort: list[Study]) -> None:
    bad = [
        Study("S-blank", "P-blank", np.zeros(SHAPE, np.uint16), np.zeros(SHAPE, np.uint16), label="ADMet"),
        Study("S-nolabel", "P-nl", cohort[0].anterior, cohort[0].posterior, label=None),
        Study("S-oneview", "P-ov", cohort[0].anterior, None, label="nADMet"),
    ]
    d3 = build_dataset(cohort[:4] + bad, "D3", image_size=SIZE, rng=0, progress=False)
    reasons = dict(d3.skipped)
    assert set(reasons) == {"S-blank", "S-nolabel", "S-oneview"}
    assert "both views" in reasons["S-oneview"]
    d1 = build_dataset(cohort[:4] + bad, "D1", image_size=SIZE, rng=0, progress=False)
    assert "S-oneview" in set(d1.study_keys)  # single views are fine for D1


def test_cache_round_trip_and_fingerprint(cohort: list[Study], tmp_path) -> None:
    first = build_dataset(cohort[:8], "D2", image_size=SIZE, rng=2, cache_dir=tmp_path, progress=False)
    assert isinstance(first.images, np.memmap)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len([f for f in files if f.endswith(".npy")]) == 1 and not any(f.endswith("partial") for f in files)
    again = build_dataset(cohort[:8], "D2", image_size=SIZE, rng=2, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(np.asarray(first.images), np.asarray(again.images))
    assert list(again.aug) == list(first.aug)
    mem = build_dataset(cohort[:8], "D2", image_size=SIZE, rng=2, progress=False)
    np.testing.assert_array_equal(np.asarray(first.images), mem.images)
    build_dataset(cohort[:8], "D2", image_size=SIZE, rng=3, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npy"))) == 2  # another seed -> another fingerprint


def test_cache_truncates_when_studies_fail(cohort: list[Study], tmp_path) -> None:
    bad = Study("S-blank", "P-blank", np.zeros(SHAPE, np.uint16), np.zeros(SHAPE, np.uint16), label="ADMet")
    ds = build_dataset(cohort[:3] + [bad], "D3", image_size=SIZE, rng=0, cache_dir=tmp_path, progress=False)
    assert ds.images.shape[0] == len(ds.labels) and len(ds.skipped) == 1


def _assert_no_leak(ds: ImageSet, train: np.ndarray, test: np.ndarray, groups: np.ndarray) -> None:
    assert len(np.intersect1d(train, test)) == 0
    assert len(train) + len(test) == len(ds)
    assert not set(groups[train]) & set(groups[test])


def test_patient_split_never_leaks_over_many_seeds(cohort: list[Study]) -> None:
    d2 = build_dataset(cohort, "D2", image_size=(32, 8), rng=0, progress=False)
    for seed in range(60):
        train, test = patient_split(d2, 0.3, rng=seed)
        _assert_no_leak(d2, train, test, d2.patient_keys)
        # augmented copies and second visits of one patient stay on one side
        for pk in np.unique(d2.patient_keys[test]):
            assert (d2.patient_keys[train] != pk).all()
        frac = len(test) / len(d2)
        assert 0.15 < frac < 0.45


def test_patient_split_is_stratified_and_seeded(cohort: list[Study]) -> None:
    d2 = build_dataset(cohort, "D2", image_size=(32, 8), rng=0, progress=False)
    train, test = patient_split(d2, rng=7)
    t2, s2 = patient_split(d2, rng=7)
    np.testing.assert_array_equal(test, s2)
    tab = split_table(d2, train, test)
    for c in ("ADMet", "nADMet", "NoMet"):
        total = tab.loc["train", c] + tab.loc["test", c]
        assert tab.loc["test", c] > 0 and tab.loc["train", c] > 0
        assert abs(tab.loc["test", c] / total - 0.3) < 0.2


def test_split_respects_custom_groups(cohort: list[Study]) -> None:
    """The audit may merge patients (duplicates under two ids): merged groups stay together."""
    d1 = build_dataset(cohort, "D1", image_size=(32, 8), rng=0, progress=False)
    pats = np.unique(d1.patient_keys)
    merge = {p: "G-merged" for p in pats[:6]}  # six patient keys are the same person
    groups = np.asarray([merge.get(p, p) for p in d1.patient_keys], dtype=object)
    for seed in range(40):
        tr, te = patient_split(d1, rng=seed, groups=groups)
        _assert_no_leak(d1, tr, te, groups)
        tr2, te2 = patient_split(d1, rng=seed, groups=merge)  # mapping form
        _assert_no_leak(d1, tr2, te2, groups)
    with pytest.raises(ValueError):
        patient_split(d1, groups=groups[:3])


def test_kfold_covers_everything_once_without_leak(cohort: list[Study]) -> None:
    d2 = build_dataset(cohort, "D2", image_size=(32, 8), rng=0, progress=False)
    for seed in range(5):
        folds = kfold_splits(d2, k=4, rng=seed)
        assert len(folds) == 4
        all_test = np.concatenate([te for _, te in folds])
        assert sorted(all_test.tolist()) == list(range(len(d2)))
        for tr, te in folds:
            _assert_no_leak(d2, tr, te, d2.patient_keys)
    with pytest.raises(ValueError):
        kfold_splits(d2, k=1)


def test_expected_table_matches_the_paper_for_the_paper_cohort() -> None:
    t = expected_table(PAPER_ORIGINALS)
    assert t.loc["D1"].tolist() == [237, 160, 226, 623]
    assert t.loc["D2"].tolist() == [624, 640, 614, 1878]
    assert t.loc["D3", "Total"] == pytest.approx(945, abs=8)


def test_scan_sequence_batches_and_reshuffles(cohort: list[Study]) -> None:
    from scintilab.augment import augmentation_layers
    from scintilab.datasets import ScanSequence

    d1 = build_dataset(cohort[:10], "D1", image_size=SIZE, rng=0, progress=False)
    seq = ScanSequence(d1, batch_size=4, shuffle=True, seed=0)
    assert len(seq) == int(np.ceil(len(d1) / 4))
    x, y = seq[0]
    assert x.shape == (4, *SIZE, 1) and x.dtype == np.float32 and y.dtype == np.int64
    seen = np.concatenate([seq[i][1] for i in range(len(seq))])
    assert sorted(seen.tolist()) == sorted(d1.labels.tolist())
    # each x row is the stored image of the same index
    first_idx = seq._order[:4]
    np.testing.assert_array_equal(x[..., 0], d1.images[first_idx])
    before = seq._order.copy()
    seq.on_epoch_end()
    assert not np.array_equal(before, seq._order)
    onehot = ScanSequence(
        d1.images,
        d1.labels,
        batch_size=3,
        shuffle=False,
        num_classes=3,
        augment=augmentation_layers(3, 1, SIZE, seed=0),
    )
    xb, yb = onehot[0]
    assert yb.shape == (3, 3) and np.allclose(yb.sum(axis=1), 1)
    assert xb.min() >= 0 and xb.max() <= 4.0 + 1e-5
    with pytest.raises(IndexError):
        seq[len(seq)]


def test_scan_sequence_trains_a_keras_model(cohort: list[Study]) -> None:
    import keras

    from scintilab.datasets import ScanSequence

    d1 = build_dataset(cohort[:6], "D1", image_size=(32, 8), rng=0, progress=False)
    model = keras.Sequential(
        [keras.Input((32, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    hist = model.fit(ScanSequence(d1, batch_size=4, seed=0), epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])


def test_cli_builds_sets_and_leak_free_split_files(tmp_manifest, tmp_path, capsys) -> None:
    import pandas as pd

    from scintilab.cli import main

    manifest = tmp_manifest(n=6, labels=["NoMet", "ADMet", "nADMet", "NoMet", "ADMet", "nADMet"], visits=2)
    out = tmp_path / "sets"
    rc = main(
        [
            "datasets",
            str(manifest),
            "--out",
            str(out),
            "--names",
            "D1",
            "D3",
            "--image-size",
            "64",
            "16",
            "--seed",
            "3",
            "--quiet",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "ADMet" in printed and "D3" in printed
    for name in ("D1", "D3"):
        frame = pd.read_csv(out / f"splits_{name}.csv")
        assert set(frame["split"]) == {"train", "test"}
        sides = frame.groupby("patient_key")["split"].nunique()
        assert (sides == 1).all()  # no patient on both sides
        assert not frame.astype(str).apply(lambda c: c.str.contains("PIDSECRET|Plantedname")).any().any()
    assert len(list(out.glob("D3-*.npy"))) == 1


_BACKEND_SCRIPT = """
import numpy as np, keras
from scintilab.datasets import ScanSequence
from scintilab.augment import augmentation_layers
x = np.zeros((10, 32, 8), np.float32); x[:, 8:24, 2:6] = 1.0
y = np.random.default_rng(0).integers(0, 3, 10)
seq = ScanSequence(x, y, batch_size=4, seed=0, augment=augmentation_layers(3.0, 1, (32, 8), seed=1))
xb, yb = seq[0]
assert xb.shape == (4, 32, 8, 1) and xb.dtype == np.float32 and xb.min() >= 0 and xb.max() <= 1 + 1e-6
assert np.abs(xb[..., 0] - x[seq._order[:4]]).sum() > 0
model = keras.Sequential([keras.Input((32, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
loss = model.fit(seq, epochs=1, verbose=0).history["loss"][0]
assert np.isfinite(loss)
print("backend", keras.backend.backend())
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_input_pipeline_runs_on_other_keras_backends(backend: str) -> None:
    """ScanSequence + augmentation layers + fit on JAX / PyTorch (a fresh process per backend)."""
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} not installed")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", _BACKEND_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"backend {backend}" in out.stdout


def test_scan_sequence_equal_batches_fill_the_last_batch() -> None:
    from scintilab.datasets import ScanSequence as seq_cls

    images = np.arange(12 * 4 * 2, dtype=np.float32).reshape(12, 4, 2)
    labels = np.arange(12) % 3
    idx = np.array([0, 2, 3, 5, 6, 7, 9, 10, 11, 1])  # ten images, batch 4: 4 + 4 + (2 filled to 4)
    seq = seq_cls(images, labels, batch_size=4, seed=0, indices=idx, equal_batches=True)
    for _epoch in range(3):
        batches = [seq[i] for i in range(len(seq))]
        assert len(batches) == 3 and all(len(b[0]) == 4 for b in batches)
        seen = np.concatenate([b[0][:, 0, 0, 0] for b in batches]) / 8  # first pixel = 8 * index
        assert set(seen.astype(int)) == set(idx)  # every image of the side, nothing else
        for b in batches:  # no image twice in one batch
            assert len(set(b[0][:, 0, 0, 0])) == 4
            np.testing.assert_array_equal(b[1], labels[(b[0][:, 0, 0, 0] / 8).astype(int)])
        seq.on_epoch_end()
    small = seq_cls(images, labels, batch_size=8, seed=0, indices=idx[:3], equal_batches=True)
    assert len(small) == 1 and len(small[0][0]) == 3  # fewer images than a batch: one batch of all
    plain = seq_cls(images, labels, batch_size=4, seed=0, indices=idx)
    assert [len(plain[i][0]) for i in range(len(plain))] == [4, 4, 2]
