"""Train the anterior/posterior view recogniser and measure it on views it never saw.

    python benchmarks/train_viewrec.py            # train, write scintilab/viewrec_weights.json, print the table
    python benchmarks/train_viewrec.py --check    # measure the shipped weights only

Training: synthetic patients of seeds 1001-1004 (the tuning seeds, ``benchmarks/cohorts.md``
lists them), matrices 512x128 and 1024x256, every view as stored, mirrored, and once more
with a random cut field of view and a random count level. Held out: seeds 2001-2002 at
1024x256 and seed 2003 at 2048x512 (a matrix the training never saw), each in the
variety families below; the pair figures decide both views of one study together.

Before any view is drawn the seeds are checked against the validation protocol
(``validation/cohorts.yaml``): the training seeds must be registered for training, the
held-out ones for reporting.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scintilab.protocol import ProtocolError, require
from scintilab.study import CLASSES
from scintilab.synth.phantom import spacing_for
from scintilab.synth.scan import generate_patient, render_study
from scintilab.viewrec import CONFIDENCE, WEIGHTS_PATH, ViewRecogniser, default_recogniser, fit, view_features

TRAIN = ((1001, (512, 128)), (1002, (1024, 256)), (1003, (512, 128)), (1004, (1024, 256)))
HELD_OUT = ((2001, (1024, 256)), (2002, (1024, 256)), (2003, (2048, 512)))
PATIENTS = 40
#: Copies of each training view with a random cut field of view, count level and side.
AUGMENTED_COPIES = 4


def check_protocol(
    train: Sequence[tuple[int, tuple[int, int]]],
    held_out: Sequence[tuple[int, tuple[int, int]]],
    model: str,
    *,
    training: bool = True,
) -> None:
    """Refuse seeds the protocol does not allow: ``train`` for training (when ``training``), ``held_out`` for reporting.

    Raises:
        ProtocolError: the first seed used against ``validation/cohorts.yaml``.
    """
    if training:
        for seed, _ in train:
            require(seed, "training", what=f"the {model}'s weights")
    for seed, _ in held_out:
        require(seed, "reporting", what=f"the {model}'s held-out figures")


def views_of(seed: int, matrix: tuple[int, int], n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(anterior, posterior as stored) of ``n`` synthetic patients."""
    out = []
    for i in range(n):
        pat = generate_patient(np.random.default_rng([seed, i]), CLASSES[i % 3], index=i + 1, matrix=matrix, seed=seed)
        st = render_study(pat, np.random.default_rng([seed, i, 9]))
        out.append((st.anterior, st.posterior))
    return out


def cut(img: np.ndarray, top: float, bottom: float) -> np.ndarray:
    h = img.shape[0]
    return img[int(top * h) : h - int(bottom * h)]


def fewer_counts(img: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    return rng.binomial(img.astype(np.int64), share).astype(np.uint16)


FAMILIES = {
    "as stored": lambda im, rng: im,
    "mirrored": lambda im, rng: im[:, ::-1],
    "head cut (top 15-25 %)": lambda im, rng: cut(im, rng.uniform(0.15, 0.25), 0.0),
    "legs cut (bottom 30-45 %)": lambda im, rng: cut(im, 0.0, rng.uniform(0.30, 0.45)),
    "a fifth of the counts": lambda im, rng: fewer_counts(im, 0.2, rng),
}


def training_set(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X, y = [], []
    for seed, matrix in TRAIN:
        sp = spacing_for(matrix)
        for ant, post in views_of(seed, matrix, PATIENTS):
            for img, is_ant in ((ant, 1), (post, 0)):
                copies = [img, img[:, ::-1]]
                for _ in range(AUGMENTED_COPIES):
                    aug = cut(
                        img, rng.uniform(0, 0.3) * (rng.random() < 0.5), rng.uniform(0, 0.5) * (rng.random() < 0.5)
                    )
                    copies.append(
                        fewer_counts(aug[:, ::-1] if rng.random() < 0.5 else aug, rng.uniform(0.15, 1.0), rng)
                    )
                for c in copies:
                    X.append(view_features(c, sp))
                    y.append(is_ant)
    return np.asarray(X), np.asarray(y)


def measure(rec: ViewRecogniser, rng: np.random.Generator) -> list[tuple[str, int, float, float, float]]:
    """(family, views, accuracy, share confident, accuracy when confident) per family."""
    rows = []
    per: dict[str, list[tuple[bool, bool]]] = {k: [] for k in FAMILIES}
    pairs: list[tuple[bool, bool]] = []
    for seed, matrix in HELD_OUT:
        sp = spacing_for(matrix)
        for ant, post in views_of(seed, matrix, PATIENTS if matrix[0] <= 1024 else PATIENTS // 2):
            for name, f in FAMILIES.items():
                for img, truth in ((ant, "ANT"), (post, "POST")):
                    call = rec.recognise(f(img, rng), sp)
                    per[name].append((call.view == truth, call.confident))
            for a, p in ((ant, post), (ant[:, ::-1], post[:, ::-1])):
                order = rng.random() < 0.5
                views, prob = rec.recognise_pair(p, a, sp) if order else rec.recognise_pair(a, p, sp)
                pairs.append((views == (("POST", "ANT") if order else ("ANT", "POST")), prob >= CONFIDENCE))
    per["pair, decided together (flipped and unflipped)"] = pairs
    for name, res in per.items():
        ok = np.array([r[0] for r in res])
        conf = np.array([r[1] for r in res])
        rows.append(
            (
                name,
                len(res),
                float(ok.mean()),
                float(conf.mean()),
                float(ok[conf].mean()) if conf.any() else float("nan"),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="measure the shipped weights; train nothing")
    ap.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="where the weights go")
    args = ap.parse_args(argv)
    try:
        check_protocol(TRAIN, HELD_OUT, "view recogniser", training=not args.check)
    except ProtocolError as exc:
        ap.error(str(exc))
    t0 = time.perf_counter()
    if args.check:
        rec = default_recogniser()
    else:
        X, y = training_set(np.random.default_rng(0))
        rec = fit(
            X,
            y,
            info={
                "train_seeds": [s for s, _ in TRAIN],
                "train_matrices": sorted({f"{m[0]}x{m[1]}" for _, m in TRAIN}),
                "train_views": int(len(y)),
                "script": "benchmarks/train_viewrec.py",
            },
        )
        rec.to_json(args.out)
        print(f"trained on {len(y)} views in {time.perf_counter() - t0:.0f} s -> {args.out}")
    rows = measure(rec, np.random.default_rng(1))
    print(f"\nHeld-out seeds {', '.join(str(s) for s, _ in HELD_OUT)} (confident: p >= {CONFIDENCE:.2f})\n")
    print("| Variety | Views | Accuracy | Confident | Accuracy when confident |")
    print("|---|---|---|---|---|")
    for name, n, acc, conf, acc_c in rows:
        print(f"| {name} | {n} | {acc:.3f} | {conf:.3f} | {acc_c:.3f} |")
    print(f"\n{time.perf_counter() - t0:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
