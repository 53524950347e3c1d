"""Simulation-based calibration (Talts et al. 2018) of the latent posterior sampler on images drawn from G.

    python benchmarks/calibration.py [--checkpoint latest] [--images 100] [--m 100] [--noise-std 0.1] [--figure PNG]

For every image, z* ~ N(0, I) seeded per image (exactly G's prior, as ``input=gen_span``), x = G(z*),
y = A x + noise; the sampler (``--solver``, conf/solver/mala.yaml by default) draws L thinned posterior
samples of z. If the sampler is exact and its samples independent, the rank of each coordinate z*_j among L
samples is uniform on {0, ..., L}. Two tests: among all L thinned samples (``thinned``; autocorrelated
samples within a chain make ranks cluster at multiples of the per-chain count), and among the K chains'
final states (``chains``: K independent draws, ranks in {0..K}). Prints JSON: rank histograms (``--bins``
bins for the first, K + 1 for the second) over all images and coordinates, chi-square statistics of
uniformity with p-values, the mean acceptance rate; ``--figure`` draws both histograms.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from common import emit, environment, solver_and_generator, run_entry
from csgm.evaluation.rank_tests import rank_uniformity
from csgm.files import atomic_write_bytes
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.recovery.module import gen_span_latents


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
    solver_cfg, solver, generator = solver_and_generator(args.solver, args.overrides, args.checkpoint)
    ids = list(range(args.images))
    z_true = gen_span_latents(generator, ids, seed=0)
    with torch.no_grad():
        x = generator(z_true)
    model = MeasurementModel(
        build_operator({"name": "gaussian"}, generator.image_shape, seed=0, m=args.m),
        Noise("gaussian", args.noise_std),
        seed=0,
    )
    y = model.measure(x, ids)
    run = solver.sample(y, model, ids, generator, seed=0)
    latents, acceptance = run.latents, run.acceptance
    chains = solver.chains
    final = latents[:, -chains:]  # the last recorded state of every chain
    results = {
        "thinned": rank_uniformity((latents < z_true[:, None, :]).sum(1), latents.shape[1], args.bins),
        "chains": rank_uniformity((final < z_true[:, None, :]).sum(1), chains, chains + 1),
    }
    emit(
        {
            "environment": environment(args.threads, "cpu"),
            "protocol": {
                "images": args.images,
                "m": args.m,
                "noise_std": args.noise_std,
                "samples_per_image": latents.shape[1],
                "chains": chains,
                "latent_dim": generator.latent_dim,
            },
            "solver": solver_cfg,
            "mean_acceptance": round(float(acceptance.mean()), 4),
            **results,
        }
    )
    if args.figure:
        from csgm.reporting.plots import figure_png, plot_rank_histogram, pyplot

        figure, axes = pyplot().subplots(1, 2, figsize=(9, 3), dpi=120)
        titles = {
            "thinned": f"among {latents.shape[1]} thinned samples (binned)",
            "chains": f"among the {chains} chains' final states",
        }
        for axis, (name, result) in zip(axes, results.items()):
            plot_rank_histogram(axis, result, "tab:blue")
            axis.set_xlabel(f"rank of z*_j {titles[name]}")
            axis.set_title(f"chi2 p = {result['p_value']:.2g}")
            axis.legend()
        figure.suptitle(f"SBC of {solver_cfg['label']} on G's own images, m = {args.m}, noise {args.noise_std}")
        figure.tight_layout()
        atomic_write_bytes(Path(args.figure), figure_png(figure))


if __name__ == "__main__":
    run_entry(main)
