"""csgm beside the tools users would pick instead, on the same generator, A, y and images; prints JSON.

    pip install -e ".[peers]"          # deepinv and scikit-learn; never needed by the tests
    python benchmarks/peers.py [--checkpoint latest] [--images 100] [--m 100] [--threads 2]

CSGM: csgm's paper protocol (10 restarts x 1000 Adam steps, batched), its `csgm_bank` config and the second-order
`csgm_gn` (Gauss-Newton from screened starts) and `csgm_qn` (BFGS-updated steps from one Gauss-Newton Jacobian), against
deepinv's CSGMGenerator wrapping the same decoder: with its own defaults (one start from Unif[-1, 1], up to
2500 Adam steps, relative-change stop 1e-4) and with the paper's settings (1000 steps, no early stop, called 10
times per image, the call with the smallest measurement loss kept). Speed ratios at equal work (both 10 x 1000)
and at equal quality (csgm_bank, csgm_gn and csgm_qn, against the peer's paper settings, when the arm's error is within 2%
of the peer's or lower). Lasso: csgm's batched FISTA against scikit-learn image by image (lasso_speed.py's comparison).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from common import add_dataset_options, dataset_config, emit, environment, mnist_problem, timed, run_entry
from csgm.api import compose
from csgm.cli import plain
from csgm.measurement import MeasurementModel
from csgm.metrics import mean_ci95, per_pixel_error
from csgm.operators import Noise
from csgm.solvers import build_solver
from lasso_speed import compare_lasso

CSGM_ARMS = ("csgm", "csgm_bank", "csgm_gn", "csgm_qn")


class LatentImage(nn.Module):
    """A csgm generator as deepinv's backbone: latents (N, nz, 1, 1) -> images."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator, self.nz = generator, generator.latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z.flatten(1))


def error_entry(x_hat: torch.Tensor, x: torch.Tensor, seconds: float) -> dict:
    mean, half = mean_ci95(per_pixel_error(x_hat, x).double().tolist())
    return {
        "mse_mean": round(mean, 6),
        "mse_ci95": round(half, 6),
        "seconds": round(seconds, 2),
        "seconds_per_image": round(seconds / len(x), 3),
    }


def deepinv_arm(
    generator, operator, x: torch.Tensor, y: torch.Tensor, calls: int, **options
) -> tuple[torch.Tensor, float]:
    """deepinv's CSGMGenerator image by image, ``calls`` times each; the estimate with the smallest ||A x - y||^2."""
    import deepinv

    physics = deepinv.physics.LinearPhysics(A=operator.forward, A_adjoint=operator.adjoint)
    peer = deepinv.models.CSGMGenerator(LatentImage(generator), **options).eval()
    torch.manual_seed(0)

    def run() -> torch.Tensor:
        estimates = []
        for i in range(len(y)):
            candidates = [peer(y[i : i + 1], physics).detach() for _ in range(calls)]
            losses = [float((operator(c) - y[i : i + 1]).pow(2).sum()) for c in candidates]
            estimates.append(candidates[min(range(calls), key=losses.__getitem__)])
        return torch.cat(estimates)

    return timed(run, "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--m", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=10, help="calls of the peer per image with the paper's settings")
    add_dataset_options(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = dataset_config(args.dataset, args.dataset_option)
    generator, operator, x, y, ids = mnist_problem(args.checkpoint, args.images, args.m, dataset=dataset)
    model = MeasurementModel(operator, Noise("gaussian", 0.1), 0)
    arms = {}
    for label in CSGM_ARMS:
        cfg = plain(compose("recover", [f"solver={label}"]))["solver"]
        out, seconds = timed(lambda: build_solver(cfg).solve(y, model, ids, generator, 0), "cpu")
        arms[label] = {
            **error_entry(out.x_hat, x, seconds),
            "generator_evaluations_per_image": round(float(out.generator_evaluations.double().mean()), 1),
            "jvps_per_image": round(float(out.jvps.double().mean()), 1),
            "vjps_per_image": round(float(out.vjps.double().mean()), 1),
        }
    x_hat, seconds = deepinv_arm(generator, operator, x, y, 1)
    arms["deepinv_defaults"] = error_entry(x_hat, x, seconds)
    x_hat, seconds = deepinv_arm(generator, operator, x, y, args.calls, inf_max_iter=1000, inf_tol=0.0, inf_lr=0.01)
    arms["deepinv_paper_settings"] = error_entry(x_hat, x, seconds)
    peer = arms["deepinv_paper_settings"]

    def equal_quality_ratio(label: str) -> float | None:
        """The peer's time over the arm's when the arm's error is within 2% of the peer's (or lower)."""
        return (
            round(peer["seconds"] / arms[label]["seconds"], 2)
            if arms[label]["mse_mean"] <= 1.02 * peer["mse_mean"]
            else None
        )

    emit(
        {
            "environment": environment(args.threads, "cpu"),
            "protocol": {
                "images": args.images,
                "m": args.m,
                "noise_std": 0.1,
                "operator": "gaussian",
                "checkpoint": args.checkpoint,
            },
            "csgm_arms": {k: v for k, v in arms.items() if k.startswith("csgm")},
            "peer_arms": {k: v for k, v in arms.items() if k.startswith("deepinv")},
            "speed_ratio_equal_work": round(peer["seconds"] / arms["csgm"]["seconds"], 2),
            "speed_ratio_equal_quality": equal_quality_ratio("csgm_bank"),
            "speed_ratio_equal_quality_second_order": equal_quality_ratio("csgm_gn"),
            "speed_ratio_equal_quality_quasi_newton": equal_quality_ratio("csgm_qn"),
            "lasso": compare_lasso(args.checkpoint, args.images, args.m, dataset),
        }
    )


if __name__ == "__main__":
    run_entry(main)
