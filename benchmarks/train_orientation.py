"""Train the head-up/head-down model and measure it on views it never saw.

    python benchmarks/train_orientation.py            # train, write scintilab/orientation_weights.json, print the table
    python benchmarks/train_orientation.py --check    # measure the shipped weights only

Training: the view recogniser's tuning seeds 1001-1004 (``benchmarks/cohorts.md``), both
views of each patient as stored, mirrored, and with random cut fields of view and count
levels; each copy upright and turned 180°. Held out: seeds 2101-2102 at 1024x256 and 2103
at 2048x512, in the variety families of ``train_viewrec.py``, each view given head up and
turned. "Wrongly turned" is the share of head-up views the model would turn with
confidence: the error that costs most. The seeds are checked against the validation protocol
(``validation/cohorts.yaml``) before any view is drawn, as in ``train_viewrec.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scintilab.orientation import CONFIDENCE, WEIGHTS_PATH, OrientationModel, default_model, fit, turn  # noqa: E402
from scintilab.protocol import ProtocolError  # noqa: E402
from scintilab.synth.phantom import spacing_for  # noqa: E402
from scintilab.viewrec import view_features  # noqa: E402

from train_viewrec import FAMILIES, TRAIN, check_protocol, cut, fewer_counts, views_of  # noqa: E402

HELD_OUT = ((2101, (1024, 256)), (2102, (1024, 256)), (2103, (2048, 512)))
PATIENTS = 40
AUGMENTED_COPIES = 4


def training_set(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    up, down = [], []
    for seed, matrix in TRAIN:
        sp = spacing_for(matrix)
        for ant, post in views_of(seed, matrix, PATIENTS):
            for img in (ant, post):
                copies = [img, img[:, ::-1]]
                for _ in range(AUGMENTED_COPIES):
                    aug = cut(
                        img, rng.uniform(0, 0.3) * (rng.random() < 0.5), rng.uniform(0, 0.5) * (rng.random() < 0.5)
                    )
                    copies.append(
                        fewer_counts(aug[:, ::-1] if rng.random() < 0.5 else aug, rng.uniform(0.15, 1.0), rng)
                    )
                for c in copies:
                    up.append(view_features(c, sp))
                    down.append(view_features(turn(c), sp))
    return np.asarray(up), np.asarray(down)


def measure(model: OrientationModel, rng: np.random.Generator) -> list[tuple[str, int, float, float, float, float]]:
    """(family, views, accuracy, confident, accuracy when confident, wrongly turned) per family."""
    per: dict[str, list[tuple[bool, bool, bool]]] = {k: [] for k in FAMILIES}
    for seed, matrix in HELD_OUT:
        sp = spacing_for(matrix)
        for ant, post in views_of(seed, matrix, PATIENTS if matrix[0] <= 1024 else PATIENTS // 2):
            for name, f in FAMILIES.items():
                for img in (ant, post):
                    v = f(img, rng)
                    for given, head_up in ((v, True), (turn(v), False)):
                        c = model.call([given], sp)
                        per[name].append((c.head_up == head_up, c.confident, head_up and c.confident and not c.head_up))
    rows = []
    for name, res in per.items():
        ok = np.array([r[0] for r in res])
        conf = np.array([r[1] for r in res])
        wrong_turn = np.array([r[2] for r in res])
        rows.append(
            (
                name,
                len(res),
                float(ok.mean()),
                float(conf.mean()),
                float(ok[conf].mean()) if conf.any() else float("nan"),
                float(wrong_turn.sum() / (len(res) / 2)),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="measure the shipped weights; train nothing")
    ap.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="where the weights go")
    args = ap.parse_args(argv)
    try:
        check_protocol(TRAIN, HELD_OUT, "orientation model", training=not args.check)
    except ProtocolError as exc:
        ap.error(str(exc))
    t0 = time.perf_counter()
    if args.check:
        model = default_model()
    else:
        up, down = training_set(np.random.default_rng(0))
        model = fit(
            up,
            down,
            info={
                "train_seeds": [s for s, _ in TRAIN],
                "train_matrices": sorted({f"{m[0]}x{m[1]}" for _, m in TRAIN}),
                "train_views": int(len(up)),
                "script": "benchmarks/train_orientation.py",
            },
        )
        model.to_json(args.out)
        print(f"trained on {len(up)} views (each upright and turned) in {time.perf_counter() - t0:.0f} s -> {args.out}")
    rows = measure(model, np.random.default_rng(1))
    print(
        f"\nHeld-out seeds {', '.join(str(s) for s, _ in HELD_OUT)}, each view head-up and turned "
        f"(confident: p >= {CONFIDENCE:.2f})\n"
    )
    print("| Variety | Views | Accuracy | Confident | Accuracy when confident | Head-up views wrongly turned |")
    print("|---|---|---|---|---|---|")
    for name, n, acc, conf, acc_c, wrong in rows:
        print(f"| {name} | {n} | {acc:.3f} | {conf:.3f} | {acc_c:.3f} | {wrong:.3f} |")
    print(f"\n{time.perf_counter() - t0:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
