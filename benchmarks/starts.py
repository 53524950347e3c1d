"""Time to quality with screened starts: csgm_bank against the paper's 10 x 1000 protocol; prints JSON.

    python benchmarks/starts.py [--checkpoint latest] [--images 100] [--measurements 25,100,400] [--threads 1]

For every m: the same generator, A, y and images for both arms (paper protocol, noise 0.1); per-pixel error,
generator evaluations (the bank's 4,096 included, once) and seconds, with the ratios to the full protocol.
"""

from __future__ import annotations

import argparse

import torch

from common import emit, environment, mnist_problem, timed
from csgm.api import compose
from csgm.cli import plain
from csgm.measurement import MeasurementModel
from csgm.metrics import mean_ci95, per_pixel_error
from csgm.operators import Noise
from csgm.solvers import build_solver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--measurements", default="25,100,400")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="overrides of both arms, e.g. solver.iterations=10 (tests)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arms = {name: plain(compose("recover", [f"solver={name}", *args.overrides]))["solver"] for name in ("csgm", "csgm_bank")}
    table = []
    for m in (int(v) for v in args.measurements.split(",")):
        generator, operator, x, y, ids = mnist_problem(args.checkpoint, args.images, m)
        model = MeasurementModel(operator, Noise("gaussian", 0.1), seed=0)
        row = {"m": m}
        for name, cfg in arms.items():
            out, seconds = timed(lambda: build_solver(cfg).solve(y, model, ids, generator, seed=0), "cpu")
            mean, half = mean_ci95(per_pixel_error(out.x_hat, x).tolist())
            row[name] = {"mse_mean": round(mean, 6), "mse_ci95": round(half, 6), "seconds": round(seconds, 2),
                         "generator_evaluations": int(out.generator_evaluations.sum()) + int(cfg.get("start_bank", 0))}
        full, bank = row["csgm"], row["csgm_bank"]
        row["error_ratio"] = round(bank["mse_mean"] / full["mse_mean"], 4)
        row["evaluation_saving"] = round(full["generator_evaluations"] / bank["generator_evaluations"], 2)
        row["time_saving"] = round(full["seconds"] / bank["seconds"], 2)
        table.append(row)
    emit({"environment": environment(args.threads, "cpu"), "protocol": {"images": args.images, "noise_std": 0.1},
          "solvers": arms, "table": table})


if __name__ == "__main__":
    main()
