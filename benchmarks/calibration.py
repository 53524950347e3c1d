"""Simulation-based calibration (Talts et al. 2018) of the latent posterior sampler on images drawn from G.

    python benchmarks/calibration.py [--checkpoint latest] [--images 100] [--m 100] [--noise-std 0.1] [--figure PNG]

For every image, z* ~ N(0, I) seeded per image (exactly G's prior, as ``input=gen_span``), x = G(z*),
y = A x + noise; the sampler (``--solver``, conf/solver/mala.yaml by default) draws L thinned posterior
samples of z. If the sampler is exact, the rank of each coordinate z*_j among its L samples is uniform on
{0, ..., L}. Prints JSON: the rank histogram over all images and coordinates (``--bins`` bins), the chi-square
statistic of uniformity with its p-value, the mean acceptance rate; ``--figure`` draws the histogram.
"""

from __future__ import annotations

import argparse

import torch

from common import ROOT, emit, environment
from csgm.api import compose
from csgm.cli import plain
from csgm.generators.checkpoint import load_generator
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.recovery.module import gen_span_latents
from csgm.recovery.paths import resolve_checkpoint
from csgm.solvers import build_solver


def uniformity(ranks: torch.Tensor, count: int, bins: int) -> dict:
    """Histogram of ranks in {0..count} over ``bins`` equal bins and Pearson's chi-square test of uniformity."""
    edges = torch.linspace(0, count + 1, bins + 1)
    histogram = torch.histogram(ranks.double().flatten() + 0.5, bins=edges.double()).hist
    expected = ranks.numel() / bins
    statistic = float(((histogram - expected) ** 2 / expected).sum())
    p_value = float(torch.special.gammaincc(torch.tensor((bins - 1) / 2), torch.tensor(statistic / 2)))
    return {"histogram": histogram.long().tolist(), "expected_per_bin": expected, "chi_square": round(statistic, 2),
            "degrees_of_freedom": bins - 1, "p_value": p_value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--solver", default="mala", help="a conf/solver option of the langevin sampler")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--m", type=int, default=100)
    parser.add_argument("--noise-std", type=float, default=0.1)
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--figure", default=None, help="write the rank histogram as a PNG")
    parser.add_argument("overrides", nargs="*", help="solver overrides, e.g. solver.steps=2000")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    solver_cfg = plain(compose("recover", [f"solver={args.solver}", *args.overrides]))["solver"]
    solver = build_solver(solver_cfg)
    generator, _ = load_generator(resolve_checkpoint(args.checkpoint, ROOT / "outputs"))
    generator.eval().requires_grad_(False)
    ids = list(range(args.images))
    z_true = gen_span_latents(generator, ids, seed=0)
    with torch.no_grad():
        x = generator(z_true)
    model = MeasurementModel(build_operator({"name": "gaussian"}, generator.image_shape, seed=0, m=args.m),
                             Noise("gaussian", args.noise_std), seed=0)
    y = model.measure(x, ids)
    latents, _, _, acceptance = solver.sample(y, model, ids, generator, seed=0)
    ranks = (latents < z_true[:, None, :]).sum(1)  # (images, k): how many samples lie below the truth
    result = uniformity(ranks, latents.shape[1], args.bins)
    emit({"environment": environment(args.threads, "cpu"),
          "protocol": {"images": args.images, "m": args.m, "noise_std": args.noise_std, "samples_per_image": latents.shape[1],
                       "latent_dim": generator.latent_dim},
          "solver": solver_cfg, "mean_acceptance": round(float(acceptance.mean()), 4), **result})
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(5, 3), dpi=120)
        axis.bar(range(args.bins), result["histogram"], color="tab:blue")
        axis.axhline(result["expected_per_bin"], color="black", linestyle="--", label="uniform")
        axis.set_xlabel(f"rank of z*_j among {latents.shape[1]} samples (binned)")
        axis.set_ylabel("count")
        axis.set_title(f"SBC, {solver_cfg['label']}, m = {args.m}: chi2 p = {result['p_value']:.2g}")
        axis.legend()
        figure.tight_layout()
        figure.savefig(args.figure)


if __name__ == "__main__":
    main()
