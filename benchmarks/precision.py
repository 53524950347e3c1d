"""Recovery arithmetic on the paper's MNIST protocol: error and time of each precision setting; prints JSON.

    python benchmarks/precision.py [--checkpoint latest] [--device cpu|cuda] [--threads 1] [--images 100]
                                   [--solver csgm] [--end-to-end] [--markdown JSON]

Every arm solves the same problem (the trained VAE, A, y, images and seeded starts; ``--solver`` csgm: 10 restarts
x 1000 Adam steps at m = 100) under one arithmetic of ``csgm.precision.solver_arithmetic`` (what ``recover.py
trainer.precision=... matmul_precision=...`` applies), with and without ``solver.compile``:

- ``float32``: the default (``trainer.precision=32-true``, ``matmul_precision=highest``);
- ``tf32``: ``matmul_precision=high``. On a GPU with TF32 (Ampere and later) that is the real thing; on a CPU
  (no TF32) the arm *emulates* it: every matrix product (forward and backward) gets its float32 operands
  rounded to TF32's 10-bit mantissa and accumulates in float32, as tensor cores do (marked ``emulated``);
- ``bf16_mixed``: ``trainer.precision=bf16-mixed`` (autocast: products in bfloat16);
- ``fp16_mixed``: ``trainer.precision=16-mixed`` (autocast: products in float16), on CUDA only.

Per arm: seconds (median of ``--repeats`` interleaved timings), mean per-pixel error with its change against
float32, and the largest pixel difference. ``--end-to-end`` also times ``recover()`` itself (the paper
protocol through the Lightning job, ``--images`` test digits in one batch, fresh output folder) per arithmetic.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import contextmanager, nullcontext
from typing import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from common import (
    ROOT,
    add_dataset_options,
    dataset_config,
    emit,
    environment,
    json_file,
    mnist_problem,
    timed,
    run_entry,
)
from csgm.api import compose
from csgm.cli import plain
from csgm.metrics import per_pixel_error
from csgm.precision import solver_arithmetic
from csgm.solvers import build_solver

ARMS = {
    "float32": ("32-true", "highest"),
    "tf32": ("32-true", "high"),
    "bf16_mixed": ("bf16-mixed", "highest"),
    "fp16_mixed": ("16-mixed", "highest"),
}
_PRODUCTS = {
    torch.ops.aten.mm.default,
    torch.ops.aten.addmm.default,
    torch.ops.aten.bmm.default,
    torch.ops.aten.baddbmm.default,
}


def round_to_tf32(tensor: torch.Tensor) -> torch.Tensor:
    """float32 values rounded to the nearest TF32 value (10 explicit mantissa bits, ties to even)."""
    bits = tensor.contiguous().view(torch.int32)
    lowest_kept = (bits >> 13) & 1
    return ((bits + 0x0FFF + lowest_kept) & ~0x1FFF).view(torch.float32)


class EmulatedTF32(TorchDispatchMode):
    """Matrix products with TF32 inputs and float32 accumulation, on a device that has no TF32."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in _PRODUCTS:
            args = tuple(
                round_to_tf32(a) if isinstance(a, torch.Tensor) and a.dtype == torch.float32 else a for a in args
            )
        return func(*args, **(kwargs or {}))


def emulated(arm: str, device: str) -> bool:
    """Whether the arm is TF32 on a device without it (Ampere and later GPUs have it)."""
    return arm == "tf32" and not (device.startswith("cuda") and torch.cuda.get_device_capability(device)[0] >= 8)


@contextmanager
def arithmetic(arm: str, device: str) -> Iterator[None]:
    precision, matmul = ARMS[arm]
    with solver_arithmetic(precision, matmul, device), EmulatedTF32() if emulated(arm, device) else nullcontext():
        yield


def arms_for(device: str) -> list[str]:
    return [arm for arm in ARMS if arm != "fp16_mixed" or device.startswith("cuda")]


def solver_arms(args, generator, operator, x, y, ids) -> dict:
    """Every arm x compiled or not, timed ``args.repeats`` times interleaved."""
    cfg = plain(compose("recover", [f"solver={args.solver}"]))["solver"]
    if args.iterations:
        cfg["iterations"] = args.iterations
    compiles = "compile" in cfg  # second-order solvers (csgm_gn) have no compiled objective
    variants = {
        f"{arm}{'_compiled' if compiled else ''}": (
            arm,
            build_solver({**cfg, "compile": compiled} if compiles else cfg),
        )
        for arm in arms_for(args.device)
        for compiled in ((False, True) if compiles else (False,))
        if not (compiled and emulated(arm, args.device))
    }  # emulation is eager only
    for name, (arm, solver) in variants.items():  # warm-up: compiling, first-call allocations
        with arithmetic(arm, args.device):
            warm_up = {**cfg, "compile": solver.compile, "iterations": 2} if compiles else {**cfg, "iterations": 2}
            build_solver(warm_up).solve(y, operator, ids, generator)
    seconds = {name: [] for name in variants}
    outputs = {}
    for _ in range(args.repeats):
        for name, (arm, solver) in variants.items():
            with arithmetic(arm, args.device):
                outputs[name], elapsed = timed(lambda: solver.solve(y, operator, ids, generator), args.device)
            seconds[name].append(elapsed)
    reference = float(per_pixel_error(outputs["float32"].x_hat, x).mean())
    report = {}
    for name, (arm, solver) in variants.items():
        x_hat = outputs[name].x_hat.float()
        error = float(per_pixel_error(x_hat, x).mean())
        report[name] = {
            "trainer_precision": ARMS[arm][0],
            "matmul_precision": ARMS[arm][1],
            "compile": getattr(solver, "compile", False),
            "emulated": emulated(arm, args.device),
            "seconds": [round(t, 3) for t in seconds[name]],
            "speedup_over_float32": None
            if emulated(arm, args.device)
            # Python per product: not a speed
            else round(statistics.median(seconds["float32"]) / statistics.median(seconds[name]), 3),
            "mean_per_pixel_error": round(error, 6),
            "error_change": round(error / reference - 1, 5),
            "max_abs_difference_x_hat_vs_float32": round(float((x_hat - outputs["float32"].x_hat).abs().max()), 5),
        }
    return report


def end_to_end(args) -> dict:
    """Seconds of recover() (the paper protocol at m = 100 through the Lightning job) per arithmetic."""
    from csgm.recovery.run import recover

    report = {}
    for arm in arms_for(args.device):
        if emulated(arm, args.device):
            continue  # the job sets matmul_precision; emulation is for the solver arms only
        precision, matmul = ARMS[arm]
        with tempfile.TemporaryDirectory() as root:
            accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
            steps = [f"solver.iterations={args.iterations}"] if args.iterations else []
            cfg = compose(
                "recover",
                [
                    f"checkpoint={args.checkpoint}",
                    f"num_images={args.images}",
                    f"batch_size={args.images}",
                    "measurements=[100]",
                    f"solver={args.solver}",
                    f"dataset={args.dataset}",
                    *(f"dataset.{option}" for option in args.dataset_option),
                    *steps,
                    f"trainer.accelerator={accelerator}",
                    f"trainer.precision={precision}",
                    f"matmul_precision={matmul}",
                    f"paths.output_root={root}",
                    "logger=none",
                    "trainer.enable_progress_bar=false",
                    "save_images=0",
                ],
            )
            result, seconds = timed(lambda: recover(cfg, f"{root}/run"), args.device)
        (row,) = result["summary"]
        report[arm] = {
            "seconds": round(seconds, 3),
            "mean_per_pixel_error": round(row["mse_mean"], 6),
            "images": args.images,
        }
    return report


def markdown_tables(result: dict) -> str:
    """The tables that docs/RESULTS.md shows: the solver arms, then (if measured) the end-to-end runs."""
    columns = [
        "arithmetic",
        "`trainer.precision`",
        "`matmul_precision`",
        "`solver.compile`",
        "seconds (median)",
        "speed-up",
        "error",
        "change",
        "max pixel difference",
    ]
    lines = ["| " + " | ".join(columns) + " |", "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, arm in result["solver"].items():
        speedup = "emulated" if arm["emulated"] else f"{arm['speedup_over_float32']:.2f}×"
        lines.append(
            f"| {name} | {arm['trainer_precision']} | {arm['matmul_precision']} | {str(arm['compile']).lower()} | "
            f"{statistics.median(arm['seconds']):.2f} | {speedup} | {arm['mean_per_pixel_error']:.6f} | "
            f"{100 * arm['error_change']:+.3f}% | {arm['max_abs_difference_x_hat_vs_float32']:.4f} |"
        )
    tables = ["\n".join(lines)]
    if "end_to_end" in result:
        rows = ["| arithmetic | images | seconds | error |", "| --- | ---: | ---: | ---: |"]
        rows += [
            f"| {name} | {arm['images']} | {arm['seconds']:.1f} | {arm['mean_per_pixel_error']:.6f} |"
            for name, arm in result["end_to_end"].items()
        ]
        tables.append("\n".join(rows))
    return "\n\n".join(tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--markdown",
        type=json_file,
        default=None,
        metavar="JSON",
        help="print the RESULTS.md tables of a JSON result instead of measuring",
    )
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument(
        "--solver", default="csgm", help="a conf/solver config of the CSGM family, e.g. csgm_bank, or csgm_gn"
    )
    parser.add_argument("--iterations", type=int, default=None, help="override the solver's steps (tests)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--end-to-end", action="store_true", help="also time recover() per arithmetic")
    add_dataset_options(parser)
    args = parser.parse_args()
    if args.markdown:
        print(markdown_tables(args.markdown))
        return
    torch.set_num_threads(args.threads)
    if args.checkpoint == "latest":
        from csgm.recovery.paths import resolve_checkpoint

        args.checkpoint = resolve_checkpoint("latest", ROOT / "outputs")
    generator, operator, x, y, ids = mnist_problem(
        args.checkpoint, args.images, 100, device=args.device, dataset=dataset_config(args.dataset, args.dataset_option)
    )
    result = {
        "environment": environment(args.threads, args.device),
        "protocol": {
            "m": 100,
            "noise_std": 0.1,
            "images": args.images,
            "solver": args.solver,
            "iterations": args.iterations,
        },
        "solver": solver_arms(args, generator, operator, x, y, ids),
    }
    if args.end_to_end:
        result["end_to_end"] = end_to_end(args)
    emit(result)


if __name__ == "__main__":
    run_entry(main)
