"""Error versus the fraction of grossly corrupted measurements: CSGM, l1-CSGM and median-of-means CSGM.

    python benchmarks/robustness.py [--checkpoint latest] [--images 100] [--m 200] [--fractions 0,0.05,0.1,0.2]

The paper's MNIST protocol (Gaussian A with N(0, 1) entries, noise std 0.1, 10 restarts x 1000 Adam steps)
with a seeded fraction of every image's measurements shifted by +-1000 (``noise=outliers``); the same A,
noise and images for every arm. Prints JSON: per-pixel error (mean, 95% interval) per arm and fraction.
"""

from __future__ import annotations

import argparse

import torch

from common import add_dataset_options, dataset_config, emit, environment, mnist_problem, timed, run_entry
from csgm.measurement import MeasurementModel
from csgm.metrics import image_metrics, mean_ci95
from csgm.operators import Noise
from csgm.solvers import build_solver

ARMS = {"csgm": {}, "l1_csgm": {"l1_weight": 1.0, "l2_weight": 0.0}, "median_of_means": {"median_of_means": 25}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--m", type=int, default=200)
    parser.add_argument("--fractions", default="0,0.05,0.1,0.2")
    parser.add_argument("--magnitude", type=float, default=1000.0)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    add_dataset_options(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator, operator, x, _, ids = mnist_problem(
        args.checkpoint, args.images, args.m, dataset=dataset_config(args.dataset, args.dataset_option)
    )
    table, seconds = {arm: [] for arm in ARMS}, {arm: 0.0 for arm in ARMS}
    for fraction in (float(f) for f in args.fractions.split(",")):
        model = MeasurementModel(operator, Noise("outliers", 0.1, fraction=fraction, magnitude=args.magnitude), seed=0)
        y = model.measure(x, ids)
        for arm, options in ARMS.items():
            solver = build_solver({"name": "csgm", "restarts": args.restarts, "iterations": args.iterations, **options})
            out, spent = timed(lambda: solver.solve(y, model, ids, generator, seed=0), "cpu")
            mean, half = mean_ci95(image_metrics(out.x_hat, x)["mse"].tolist())
            table[arm].append({"fraction": fraction, "mse_mean": round(mean, 6), "mse_ci95": round(half, 6)})
            seconds[arm] = round(seconds[arm] + spent, 1)
    emit(
        {
            "environment": environment(args.threads, "cpu"),
            "protocol": {
                "images": args.images,
                "m": args.m,
                "noise_std": 0.1,
                "magnitude": args.magnitude,
                "restarts": args.restarts,
                "iterations": args.iterations,
            },
            "arms": ARMS,
            "seconds": seconds,
            "table": table,
        }
    )


if __name__ == "__main__":
    run_entry(main)
