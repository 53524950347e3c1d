"""Simulation-based calibration (Talts et al. 2018) of the preconditioned latent sampler (solver=hmc) at several m.

    python benchmarks/sbc.py --checkpoint CKPT [--images 100] [--m 25,100,400] [--per-chain 10] [--figure PNG]
                             [solver overrides, e.g. solver.draws=1000]
    python benchmarks/sbc.py --markdown docs/sbc_hmc.json  # the RESULTS.md table

For every image, z* ~ N(0, I) seeded per image (exactly ``input=gen_span``), x = G(z*), y = A x + N(0, sigma^2)
with the paper's Gaussian A. The sampler's post-warm-up states are thinned to ``--per-chain`` evenly spaced
draws per chain (L = chains x per-chain draws per image). If the sampler is exact and the thinned draws nearly
independent, the rank of z*_j among the L draws is uniform on {0..L}, and so is the rank of any function of
z*, here pixel functionals of G(z*): the mean intensity, the centre pixel, the upper-minus-lower half mass and
the squared norm. Prints JSON per m: rank histograms (pooled over the latent coordinates; pooled over the
functionals and per functional), Pearson chi-square p-values of uniformity, per-coordinate p-values, the
by-image tests (csgm.evaluation.rank_tests.clustered_rank_uniformity: the ranks of one image's coordinates are
dependent, which the pooled chi-square ignores), the ranks themselves, the R-hat/ESS summary, acceptance, the
jumps' acceptance, step size, generator evaluations per image and seconds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from common import benchmark_parser, emit, environment, solver_and_generator, run_entry
from csgm.evaluation.rank_tests import clustered_rank_uniformity, rank_uniformity
from csgm.files import atomic_write_bytes
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.recovery.module import gen_span_latents
from csgm.solvers.mcmc import chain_diagnostics


def functionals(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scalar pixel functionals of images (N, C, H, W), each (N,)."""
    height = x.shape[-2]
    return {
        "mean_intensity": x.flatten(1).mean(1),
        "centre_pixel": x[:, 0, height // 2, x.shape[-1] // 2],
        "upper_minus_lower": x[..., : height // 2, :].flatten(1).sum(1) - x[..., height // 2 :, :].flatten(1).sum(1),
        "squared_norm": x.flatten(1).pow(2).sum(1),
    }


def thinned(latents: torch.Tensor, per_chain: int) -> torch.Tensor:
    """(B, K, draws, k) -> (B, K * per_chain, k): ``per_chain`` evenly spaced states per chain, the last included."""
    draws = latents.shape[2]
    spacing = draws // per_chain
    index = torch.arange(draws - 1, -1, -spacing)[:per_chain].flip(0)
    return latents[:, :, index].flatten(1, 2)


def calibrate(solver, generator, m: int, ids: list[int], noise_std: float, per_chain: int, bins: int) -> dict:
    """The SBC result of one m."""
    z_true = gen_span_latents(generator, ids, seed=0)
    with torch.no_grad():
        x = generator(z_true)
    model = MeasurementModel(
        build_operator({"name": "gaussian"}, generator.image_shape, seed=0, m=m), Noise("gaussian", noise_std), seed=0
    )
    y = model.measure(x, ids)
    start = time.perf_counter()
    run = solver.sample(y, model, ids, generator, seed=0)
    seconds = time.perf_counter() - start
    draws = thinned(run.latents, per_chain)  # (B, L, k)
    count = draws.shape[1]
    latent_ranks = (draws < z_true[:, None, :]).sum(1)  # (B, k)
    with torch.no_grad():
        sampled = functionals(generator(draws.flatten(0, 1)))
    truth = functionals(x)
    functional_ranks = {
        name: (values.view(len(ids), count) < truth[name][:, None]).sum(1) for name, values in sampled.items()
    }
    per_coordinate = [rank_uniformity(latent_ranks[:, j], count, bins)["p_value"] for j in range(latent_ranks.shape[1])]
    final = run.latents[:, :, -1]
    diagnostics = chain_diagnostics(run.latents)
    flagged = (diagnostics["rhat"] > solver.max_rhat) | (diagnostics["ess_bulk"] < solver.min_ess)
    return {
        "m": m,
        "draws_per_image": count,
        "seconds": round(seconds, 1),
        "generator_evaluations_per_image": run.evaluations,
        "latent_pooled": rank_uniformity(latent_ranks, count, bins),
        "latent_by_image": clustered_rank_uniformity(latent_ranks, count, bins),
        "latent_per_coordinate_p": {
            "min": min(per_coordinate),
            "below_0.01": sum(p < 0.01 for p in per_coordinate),
            "values": [round(p, 4) for p in per_coordinate],
        },
        "chains_final_states": rank_uniformity((final < z_true[:, None, :]).sum(1), solver.chains, solver.chains + 1),
        "functionals_pooled": rank_uniformity(torch.stack(list(functional_ranks.values())), count, bins),
        "functionals_by_image": clustered_rank_uniformity(torch.stack(list(functional_ranks.values()), 1), count, bins),
        "latent_ranks": latent_ranks.tolist(),
        "functionals": {name: rank_uniformity(ranks, count, 5) for name, ranks in functional_ranks.items()},
        "diagnostics": {
            "rhat_max": round(float(diagnostics["rhat"].max()), 4),
            "rhat_median": round(float(diagnostics["rhat"].median()), 4),
            "ess_bulk_min": round(float(diagnostics["ess_bulk"].min()), 1),
            "ess_tail_min": round(float(diagnostics["ess_tail"].min()), 1),
            "flagged_images": int(flagged.sum()),
        },
        "mean_acceptance": round(float(run.acceptance.mean()), 4),
        "mean_jump_acceptance": round(float(run.jump_acceptance.mean()), 4),
        "step_size_median": round(float(run.step.median()), 4),
    }


def by_image(row: dict, key: str) -> str:
    """The by-image p-value of ``key`` (latent, functionals) as printed, or a dash in JSON written without it."""
    test = row.get(f"{key}_by_image")
    return f"{test['p_value']:.3g}" if test else "—"


def markdown_table(result: dict) -> str:
    """The RESULTS.md table: per m, the chi-square p-values and what the run cost."""
    lines = [
        "| m | latent coordinates: by image p (pooled χ² p) | smallest of 20 per-coordinate p | pixel functionals: "
        "by image p (pooled χ² p) | chains' final states: χ² p | R-hat max (median) | images flagged (R-hat, ESS) | "
        "bulk ESS min | generator evaluations per image | seconds |",
        "| ---: | --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in result["table"]:
        d = row["diagnostics"]
        lines.append(
            f"| {row['m']} | {by_image(row, 'latent')} ({row['latent_pooled']['p_value']:.3g}) | "
            f"{row['latent_per_coordinate_p']['min']:.3g} | "
            f"{by_image(row, 'functionals')} ({row['functionals_pooled']['p_value']:.3g}) | "
            f"{row['chains_final_states']['p_value']:.3g} | {d['rhat_max']:.3f} ({d['rhat_median']:.3f}) | "
            f"{d['flagged_images']} | {d['ess_bulk_min']:.0f} | "
            f"{row['generator_evaluations_per_image']:,} | {row['seconds']:.0f} |"
        )
    return "\n".join(lines)


def write_figure(result: dict, path: Path) -> None:
    """The pooled rank histograms of every m (latent coordinates, pixel functionals) as a PNG."""
    from csgm.reporting.plots import figure_png, plot_rank_histogram, pyplot

    table = result["table"]
    figure, axes = pyplot().subplots(len(table), 2, figsize=(9, 2.6 * len(table)), dpi=120, squeeze=False)
    for row, entry in zip(axes, table):
        for axis, key, what in zip(row, ("latent", "functionals"), ("latent coordinates", "pixel functionals")):
            test = entry[f"{key}_pooled"]
            by_image = entry.get(f"{key}_by_image", {}).get("p_value", float("nan"))
            plot_rank_histogram(axis, test, "tab:green")
            axis.set_title(
                f"m = {entry['m']}: {what}, p = {by_image:.2g} by image ({test['p_value']:.2g} pooled)", fontsize=9
            )
            axis.set_xlabel(f"rank bin (rank of the truth among {entry['draws_per_image']} draws)", fontsize=8)
    axes[0][0].legend()
    figure.suptitle(
        f"SBC of {result['solver']['label']} on G's own images ({result['protocol']['images']} images, "
        f"noise {result['protocol']['noise_std']})"
    )
    figure.tight_layout()
    atomic_write_bytes(path, figure_png(figure))


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--solver", default="hmc", help="a conf/solver option of the hmc sampler")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--m", default="25,100,400", help="comma-separated measurement counts")
    parser.add_argument("--noise-std", type=float, default=0.1)
    parser.add_argument("--per-chain", type=int, default=10, help="thinned draws per chain that enter the ranks")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--figure", default=None, help="write the pooled rank histograms as a PNG")
    parser.add_argument("overrides", nargs="*", help="solver overrides, e.g. solver.draws=1000")
    args = parser.parse_args()
    if args.markdown:
        result = args.markdown
        print(markdown_table(result))
        if args.figure:
            write_figure(result, Path(args.figure))
        return
    torch.set_num_threads(args.threads)
    solver_cfg, solver, generator = solver_and_generator(args.solver, args.overrides, args.checkpoint)
    ids = list(range(args.images))
    table = []
    for m in map(int, args.m.split(",")):
        table.append(calibrate(solver, generator, m, ids, args.noise_std, args.per_chain, args.bins))
        print(f"m = {m} done", file=sys.stderr, flush=True)
    result = {
        "environment": environment(args.threads, "cpu"),
        "protocol": {
            "images": args.images,
            "noise_std": args.noise_std,
            "chains": solver.chains,
            "per_chain": args.per_chain,
            "latent_dim": generator.latent_dim,
            "bins": args.bins,
        },
        "solver": solver_cfg,
        "table": table,
    }
    emit(result)
    if args.figure:
        write_figure(result, Path(args.figure))


if __name__ == "__main__":
    run_entry(main)
