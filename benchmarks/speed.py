"""CSGM speed on the paper's MNIST protocol, each figure a ratio measured in the same run; prints JSON.

    python benchmarks/speed.py [--checkpoint latest] [--threads 1] [--device cpu] [--images 100]

- throughput: latent steps/s and images/s (10 restarts x 1000 Adam steps, m = 100), and the achieved
  GFLOP/s against a plain float32 matrix-multiply peak measured in this process on this device
  (best of 5 timings, before and after), for the default solver, the same without flushing subnormals,
  and with the gradient compiled (solver option ``compile``), each timed ``--repeats`` times interleaved;
- batched: 64 images x 10 restarts in one batch versus one image (its 10 restarts batched) at a time
  and versus one latent at a time (what a plain loop over images and restarts does);
- time to quality: successive halving (+ stall stopping) and screened starts (``start_bank``, the
  csgm_bank config) versus the full protocol: mean error and generator evaluations (the bank's included); the
  second-order configs csgm_gn and csgm_qn (``second_order``, ``second_order_secant``): error, forward passes,
  JVPs and VJPs (evaluation-equivalents: passes / 2);
- solvers: generator evaluations per second of Langevin, MALA (8 chains, ``--iterations`` steps) and ILO,
  each batched like CSGM, against CSGM's rate, with their errors.
"""

from __future__ import annotations

import argparse
import functools
import statistics

import torch

from common import add_dataset_options, dataset_config, emit, environment, mnist_problem, timed, run_entry
from csgm.api import compose
from csgm.cli import plain
from csgm.measurement import MeasurementModel
from csgm.metrics import per_pixel_error
from csgm.operators import Noise
from csgm.solvers import build_solver
from csgm.solvers.base import SolverOutput
from csgm.solvers.csgm import CSGMSolver, initial_latents


def matmul_peak(device: str, size: int = 2048, repeats: int = 10, trials: int = 5) -> float:
    """GFLOP/s of a float32 (size x size) @ (size x size) product: the best of ``trials`` timings, so
    that a busy moment on a shared machine lowers the peak (and flatters the fraction) as little as possible."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    seconds = min(timed(lambda: [a @ b for _ in range(repeats)], device)[1] for _ in range(trials))
    return 2 * size**3 * repeats / seconds / 1e9


def forward_flops(generator, m: int) -> int:
    """FLOPs of one latent's forward pass: the decoder's linear layers plus A (2 per multiply-add)."""
    linear = sum(
        2 * layer.in_features * layer.out_features
        for layer in generator.modules()
        if isinstance(layer, torch.nn.Linear)
    )
    return linear + 2 * m * generator.num_pixels


def throughput(
    variants: dict[str, CSGMSolver], generator, operator, x, y, ids, repeats: int, device: str, peak_size: int
) -> tuple[dict, SolverOutput]:
    """Latent steps/s and fraction of the matmul peak of each solver variant, timed ``repeats`` times
    interleaved (a shared machine's slow moments then hit every variant alike); median and best.
    Returns that report and the default variant's output."""
    warm_up = CSGMSolver(iterations=2, restarts=10, compile=True)
    _, compile_seconds = timed(
        lambda: warm_up.solve(y, operator, ids, generator), device
    )  # compiling, outside the timings
    peak_before = matmul_peak(device, peak_size)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    outputs = {}
    for _ in range(repeats):
        for name, solver in variants.items():
            outputs[name], elapsed = timed(lambda: solver.solve(y, operator, ids, generator), device)
            seconds[name].append(elapsed)
    peak = max(peak_before, matmul_peak(device, peak_size))  # the higher of the peaks measured before and after
    steps = len(ids) * variants["default"].restarts * variants["default"].iterations
    # Each step: a forward pass and a backward pass to the latents only (G is frozen), about 2x the forward.
    flops = steps * 2 * forward_flops(generator, operator.m)
    report = {
        "images": len(ids),
        "matmul_peak_gflops": round(peak, 2),
        "gflop_per_run": round(flops / 1e9, 2),
        "compile_seconds": round(compile_seconds, 3),
    }
    for name, times in seconds.items():
        median, best = statistics.median(times), min(times)
        report[name] = {
            "seconds": [round(t, 3) for t in times],
            "latent_steps_per_second": round(steps / median),
            "images_per_second": round(len(ids) / median, 3),
            "achieved_gflops": round(flops / median / 1e9, 2),
            "fraction_of_peak": round(flops / median / 1e9 / peak, 3),
            "fraction_of_peak_best": round(flops / best / 1e9 / peak, 3),
            "speedup_over_default": round(statistics.median(seconds["default"]) / median, 3),
            "mean_per_pixel_error": round(float(per_pixel_error(outputs[name].x_hat, x).mean()), 5),
            "max_abs_difference_x_hat_vs_default": float((outputs[name].x_hat - outputs["default"].x_hat).abs().max()),
        }
    return report, outputs["default"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--m", type=int, default=100)
    parser.add_argument("--sample", type=int, default=8, help="images timed one at a time (scaled to 64)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timings of each throughput variant")
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the square matmul that measures the peak")
    add_dataset_options(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = args.device
    result = {
        "environment": environment(args.threads, device),
        "protocol": {
            "m": args.m,
            "noise_std": 0.1,
            "restarts": 10,
            "iterations": args.iterations,
            "optimizer": "adam",
            "lr": 0.01,
        },
    }

    generator, operator, x, y, ids = mnist_problem(
        args.checkpoint, args.images, args.m, device=device, dataset=dataset_config(args.dataset, args.dataset_option)
    )
    protocol = functools.partial(CSGMSolver, lr=0.01, iterations=args.iterations)  # + restarts and options
    solver = protocol(restarts=10)
    variants = {
        "default": solver,
        "without_flush_denormals": protocol(restarts=10, flush_denormals=False),
        "compiled": protocol(restarts=10, compile=True),
    }
    result["throughput"], out = throughput(
        variants, generator, operator, x, y, ids, args.repeats, device, args.peak_size
    )
    seconds = statistics.median(result["throughput"]["default"]["seconds"])

    count = min(64, len(ids))
    sample = min(args.sample, count)
    batched, t_batched = timed(lambda: solver.solve(y[:count], operator, ids[:count], generator), device)
    per_image, t_image = timed(
        lambda: [solver.solve(y[i : i + 1], operator, ids[i : i + 1], generator) for i in range(sample)], device
    )
    starts = initial_latents(generator, ids[:sample], 10, seed=0).to(device)
    single = protocol(restarts=1)
    _, t_latent = timed(
        lambda: [
            single.optimise(starts[j : j + 1], y[j // 10 : j // 10 + 1], operator, generator)
            for j in range(sample * 10)
        ],
        device,
    )
    per_image_total, per_latent_total = t_image * count / sample, t_latent * count / sample
    result["batched_vs_one_at_a_time"] = {
        "images": count,
        "restarts": 10,
        "batched_seconds": round(t_batched, 3),
        "one_image_at_a_time_seconds": round(per_image_total, 3),
        "speedup_vs_one_image_at_a_time": round(per_image_total / t_batched, 2),
        "one_latent_at_a_time_seconds": round(per_latent_total, 3),
        "speedup_vs_one_latent_at_a_time": round(per_latent_total / t_batched, 2),
        "measured_on_images": sample,
        "note": "sequential times measured on the first images and scaled linearly to all",
        "max_abs_difference_per_image": float(
            (batched.x_hat[:sample] - torch.cat([s.x_hat for s in per_image])).abs().max()
        ),
    }

    full_error = float(per_pixel_error(out.x_hat, x).mean())
    full_evaluations = int(out.generator_evaluations.sum())
    schedules = {
        "halving_100": {"halving_every": 100},
        "halving_200": {"halving_every": 200},
        "halving_100_stall": {"halving_every": 100, "stall_patience": 50, "stall_tol": 1e-4},
    }
    result["time_to_quality"] = {
        "full": {
            "mean_per_pixel_error": round(full_error, 5),
            "generator_evaluations": full_evaluations,
            "seconds": round(seconds, 3),
        }
    }
    # screened starts (conf/solver/csgm_bank.yaml): 2 restarts from the best of 4,096 prior samples, 450 steps at lr 0.02
    schedules["start_bank"] = {
        "restarts": 2,
        "iterations": max(1, 45 * args.iterations // 100),
        "lr": 0.02,
        "start_bank": 4096,
    }
    for name, options in schedules.items():
        cheap = CSGMSolver(**{"lr": 0.01, "iterations": args.iterations, "restarts": 10, **options})
        cheap_out, cheap_seconds = timed(lambda: cheap.solve(y, operator, ids, generator), device)
        error = float(per_pixel_error(cheap_out.x_hat, x).mean())
        evaluations = int(cheap_out.generator_evaluations.sum()) + options.get("start_bank", 0)  # G of the bank, once
        result["time_to_quality"][name] = {
            "options": options,
            "mean_per_pixel_error": round(error, 5),
            "error_ratio_to_full": round(error / full_error, 4),
            "generator_evaluations": evaluations,
            "evaluation_saving": round(full_evaluations / evaluations, 2),
            "seconds": round(cheap_seconds, 3),
            "time_saving": round(seconds / cheap_seconds, 2),
        }
    for key, config in (("second_order", "csgm_gn"), ("second_order_secant", "csgm_qn")):
        options = plain(compose("recover", [f"solver={config}"]))["solver"]  # second-order steps from screened starts
        so_out, so_seconds = timed(lambda: build_solver(options).solve(y, operator, ids, generator), device)
        error = float(per_pixel_error(so_out.x_hat, x).mean())
        forwards = int(so_out.generator_evaluations.sum()) + options["start_bank"]  # the bank, once
        passes = forwards + int(so_out.jvps.sum()) + int(so_out.vjps.sum())
        result["time_to_quality"][key] = {
            "options": options,
            "mean_per_pixel_error": round(error, 5),
            "error_ratio_to_full": round(error / full_error, 4),
            "generator_evaluations": forwards,
            "jvps": int(so_out.jvps.sum()),
            "vjps": int(so_out.vjps.sum()),
            "evaluation_equivalents": passes / 2,  # a CSGM evaluation is a forward + a VJP
            "work_saving": round((full_evaluations + int(out.vjps.sum())) / passes, 2),
            "seconds": round(so_seconds, 3),
            "time_saving": round(seconds / so_seconds, 2),
        }
    result["solvers"] = solver_speeds(
        args.iterations, generator, operator, x, y, ids, device, full_evaluations / seconds, full_error
    )
    emit(result)


def solver_speeds(
    iterations: int, generator, operator, x, y, ids, device: str, csgm_rate: float, csgm_error: float
) -> dict:
    """Generator evaluations (latent steps) per second of the samplers and ILO on the same images, A and y as
    CSGM (all batch images x chains or restarts in one tensor), against CSGM's rate; with their errors."""
    model = MeasurementModel(operator, Noise("gaussian", 0.1), seed=0)  # samplers need the noise level
    sampler = {"steps": iterations, "burn_in": iterations // 2, "thin": max(1, iterations // 20)}
    configs = {
        "langevin": {"name": "langevin", **sampler},
        "mala": {"name": "langevin", "mala": True, **sampler},
        "ilo": {
            "name": "ilo",
            "iterations": iterations,
            "radius": 300.0,
            "layer_iterations": max(1, 3 * iterations // 10),
        },
    }
    speeds = {"csgm": {"evaluations_per_second": round(csgm_rate, 1), "mean_per_pixel_error": round(csgm_error, 5)}}
    for name, cfg in configs.items():
        out, spent = timed(lambda: build_solver(cfg).solve(y, model, ids, generator, seed=0), device)
        evaluations = int(out.generator_evaluations.sum())
        speeds[name] = {
            "options": cfg,
            "seconds": round(spent, 3),
            "generator_evaluations": evaluations,
            "evaluations_per_second": round(evaluations / spent, 1),
            "rate_relative_to_csgm": round(evaluations / spent / csgm_rate, 3),
            "mean_per_pixel_error": round(float(per_pixel_error(out.x_hat, x).mean()), 5),
        }
    return speeds


if __name__ == "__main__":
    run_entry(main)
