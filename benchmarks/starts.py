"""Time to quality with screened starts: csgm_bank against the paper's 10 x 1000 protocol; prints JSON.

    python benchmarks/starts.py [--checkpoint latest] [--images 100] [--measurements 25,100,400] [--threads 1]
                                [--single-starts]

For every m: the same generator, A, y and images for both arms (paper protocol, noise 0.1); per-pixel error,
generator evaluations (the bank's 4,096 included, once) and seconds, with the ratios to the full protocol.
``--single-starts`` adds one restart of the csgm arm's steps from each kind of start: a prior draw N(0, I) (the
protocol's first restart), the same draw halved, the prior mode z = 0, Unif[-1, 1] (deepinv's), and an amortised start that never
sees x: the VAE encoder's mean of the back-projection clip(A^+ y, 0, 1) (for checkpoints with an encoder).
"""

from __future__ import annotations

import argparse

import torch

from common import ROOT, add_dataset_options, dataset_config, emit, environment, mnist_problem, timed, run_entry
from csgm.api import compose
from csgm.cli import plain
from csgm.measurement import MeasurementModel
from csgm.metrics import mean_ci95, per_pixel_error
from csgm.operators import Noise
from csgm.generators.checkpoint import load_generator
from csgm.generators.vae import VAEEncoder
from csgm.recovery.paths import resolve_checkpoint
from csgm.seeding import seeded_rng
from csgm.solvers import build_solver
from csgm.solvers.csgm import CSGMSolver, initial_latents


def vae_encoder(checkpoint: str) -> VAEEncoder | None:
    """The encoder q(z | x) of a VAE trained by train.py (None for a generator trained without one)."""
    path = resolve_checkpoint(checkpoint, ROOT / "outputs")
    _, meta = load_generator(path)  # checks the file; its architecture is the decoder's, mirrored by the encoder
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    weights = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    if not weights:
        return None
    encoder = VAEEncoder(image_shape=meta["image_shape"], **meta["arch"])
    encoder.load_state_dict(weights)
    return encoder.eval()


def single_starts(generator, operator, model, x, y, ids, encoder: VAEEncoder | None, iterations: int) -> dict:
    """Error of one restart of ``iterations`` Adam steps (lr 0.01) from each kind of start, all seeded per image."""
    latent = generator.latent_dim
    prior = initial_latents(generator, ids, 1, seed=0)
    starts = {
        "prior": prior,
        "prior_half": 0.5 * prior,
        "zero": torch.zeros(len(ids), latent),
        "uniform": torch.cat([torch.rand(1, latent, generator=seeded_rng("z", 0, i, 0)) * 2 - 1 for i in ids]),
    }
    if encoder is not None:
        back_projection = y.double() @ torch.linalg.pinv(operator.to_dense(dtype=torch.float64)).T  # A^+ y: no x
        with torch.no_grad():
            starts["amortised"] = encoder(back_projection.float().clamp(0, 1).view_as(x))[0]
    solver = CSGMSolver(lr=0.01, iterations=iterations, restarts=1)
    arms = {}
    for name, z0 in starts.items():
        mean, half = mean_ci95(per_pixel_error(solver.optimise(z0, y, model, generator).x_hat, x).tolist())
        arms[name] = {"mse_mean": round(mean, 6), "mse_ci95": round(half, 6)}
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--measurements", default="25,100,400")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--single-starts", action="store_true", help="also one restart from each kind of start")
    parser.add_argument("overrides", nargs="*", help="overrides of both arms, e.g. solver.iterations=10 (tests)")
    add_dataset_options(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = dataset_config(args.dataset, args.dataset_option)
    arms = {
        name: plain(compose("recover", [f"solver={name}", *args.overrides]))["solver"] for name in ("csgm", "csgm_bank")
    }
    encoder = vae_encoder(args.checkpoint) if args.single_starts else None
    table = []
    for m in (int(v) for v in args.measurements.split(",")):
        generator, operator, x, y, ids = mnist_problem(args.checkpoint, args.images, m, dataset=dataset)
        model = MeasurementModel(operator, Noise("gaussian", 0.1), seed=0)
        row = {"m": m}
        for name, cfg in arms.items():
            out, seconds = timed(lambda: build_solver(cfg).solve(y, model, ids, generator, seed=0), "cpu")
            mean, half = mean_ci95(per_pixel_error(out.x_hat, x).tolist())
            row[name] = {
                "mse_mean": round(mean, 6),
                "mse_ci95": round(half, 6),
                "seconds": round(seconds, 2),
                "generator_evaluations": int(out.generator_evaluations.sum()) + int(cfg.get("start_bank", 0)),
            }
        full, bank = row["csgm"], row["csgm_bank"]
        row["error_ratio"] = round(bank["mse_mean"] / full["mse_mean"], 4)
        row["evaluation_saving"] = round(full["generator_evaluations"] / bank["generator_evaluations"], 2)
        row["time_saving"] = round(full["seconds"] / bank["seconds"], 2)
        if args.single_starts:
            row["single_start"] = single_starts(
                generator, operator, model, x, y, ids, encoder, arms["csgm"]["iterations"]
            )
        table.append(row)
    emit(
        {
            "environment": environment(args.threads, "cpu"),
            "protocol": {"images": args.images, "noise_std": 0.1},
            "solvers": arms,
            "table": table,
        }
    )


if __name__ == "__main__":
    run_entry(main)
