"""CSGM error with the matrix-free random operators against the dense Gaussian A, on the same images; prints JSON.

    python benchmarks/operator_quality.py [--size 64x64x3] [--measurements 100,200,500] [--images 10] [--threads 2]

At --size (H x W x C) there is no dataset on this machine (no CelebA), so the images are G's own: a DCGAN of that
size with seeded random weights (``--base-channels``), x = G(z*) with z* seeded per image (the gen_span input), and
noise std 0.1 as in the paper. For every m, CSGM (the paper's DCGAN settings, csgm_dcgan, from the same starts)
recovers x from y = A x + noise with A = gaussian, srht and random_convolution (rows of squared norm n alike):
per-pixel error (mean, 95% interval) and the ratio of each operator's mean error to the Gaussian's.
"""

from __future__ import annotations

import argparse

import torch

from common import emit, environment, timed, run_entry
from csgm.api import compose
from csgm.cli import plain
from csgm.generators import build_generator
from csgm.measurement import MeasurementModel
from csgm.metrics import mean_ci95, per_pixel_error
from csgm.operators import Noise, build_operator
from csgm.recovery.module import gen_span_images
from csgm.solvers import build_solver

OPERATORS = ("gaussian", "srht", "random_convolution")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64x64x3")
    parser.add_argument("--measurements", default="100,200,500")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--solver", default="csgm_dcgan")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    height, width, channels = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    generator = (
        build_generator("dcgan", {"latent_dim": 100, "base_channels": args.base_channels}, (channels, height, width))
        .eval()
        .requires_grad_(False)
    )
    ids = list(range(args.images))
    with torch.no_grad():
        x = gen_span_images(generator, ids, 0)
    solver_cfg = plain(compose("recover", [f"solver={args.solver}"]))["solver"]
    rows = []
    for m in (int(v) for v in args.measurements.split(",")):
        errors = {}
        for name in OPERATORS:
            operator = build_operator({"name": name}, generator.image_shape, seed=0, m=m)
            model = MeasurementModel(operator, Noise("gaussian", 0.1), 0)
            out, seconds = timed(
                lambda: build_solver(solver_cfg).solve(model.measure(x, ids), model, ids, generator, 0), "cpu"
            )
            per_image = per_pixel_error(out.x_hat, x).double()
            mean, half = mean_ci95(per_image.tolist())
            errors[name] = per_image
            rows.append(
                {
                    "m": m,
                    "operator": name,
                    "mse_mean": float(f"{mean:.4g}"),
                    "mse_ci95": float(f"{half:.4g}"),
                    "seconds": round(seconds, 1),
                }
            )
        for row in rows[-len(OPERATORS) :]:
            row["ratio_to_gaussian"] = round(float(errors[row["operator"]].mean() / errors["gaussian"].mean()), 3)
    emit(
        {
            "environment": environment(args.threads, "cpu"),
            "protocol": {
                "size": args.size,
                "n": generator.num_pixels,
                "images": args.images,
                "input": "gen_span",
                "generator": {"name": "dcgan", "base_channels": args.base_channels, "weights": "random, seed 0"},
                "noise_std": 0.1,
                "solver": solver_cfg,
            },
            "rows": rows,
        }
    )


if __name__ == "__main__":
    run_entry(main)
