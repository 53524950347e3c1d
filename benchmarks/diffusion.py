"""A diffusion prior beside the paper's VAE on the paper's MNIST protocol: error, NFEs per image and seconds.

    python train.py generator=diffusion                                     # the prior (about an hour on 2 cores)
    python benchmarks/diffusion.py --checkpoint RUN/checkpoints/last.ckpt --vae VAE.ckpt > docs/diffusion.json
    python benchmarks/diffusion.py --markdown docs/diffusion.json           # the RESULTS.md table
    python benchmarks/diffusion.py --merge A.json B.json > C.json          # one JSON of runs of one protocol
    python benchmarks/diffusion.py --markdown C.json D.json --figure F.png --beside docs/generators.json  # one plot
    python benchmarks/diffusion.py --markdown C.json --versus docs/coverage.json  # intervals beside hmc's

Gaussian A with N(0, 1) entries, noise std 0.1 (``--experiment paper_mnist``), the first --images test digits,
m in --measurements, through recover.py's own code (run folders under --output-root; ``auto`` options chosen on
the validation split): the diffusion solvers dps, diffusion_langevin and csgm_ddim on the diffusion checkpoint,
and --vae-solver (csgm_bank) on the VAE. Per curve point: the per-pixel error (mean, 95% interval), PSNR, network
evaluations (NFEs; for the VAE, evaluations of G) and solver seconds per image (the mean over images of each
batch's time per image); for the samplers, their interval coverages, pixel std and corr(std, |error|).
``--accelerator gpu`` runs recover.py on the GPU; ``--experiment paper_mnist_phase`` (or ``paper_mnist_one_bit``)
takes that experiment's operator and noise instead (its m values and solvers are not used); ``--set KEY=VALUE``
adds a recover.py override to every run.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Sequence

import torch

from common import curve_config, emit, environment, json_file, run_entry
from csgm.cli import plain
from csgm.generators.checkpoint import checkpoint_digest
from csgm.recovery.run import recover
from csgm.results import COVERAGE_LEVELS, coverage_column
from csgm.reporting.plots import error_curves_png
from csgm.files import atomic_write_bytes

DIFFUSION_SOLVERS = ("dps", "diffusion_langevin", "csgm_ddim")


def curve(
    checkpoint: str,
    solver: str,
    measurements: list[int],
    images: int,
    output_root: str,
    accelerator: str = "cpu",
    overrides: Sequence[str] = (),
    experiment: str = "paper_mnist",
) -> tuple[list[dict], dict]:
    """One solver's curve points, from recover.py's summary and per-image rows, and the run's measurement model
    (operator, noise and its std)."""
    cfg, run_dir = curve_config(
        experiment,
        checkpoint,
        solver,
        measurements,
        images,
        output_root,
        [f"trainer.accelerator={accelerator}", *overrides],
    )
    result = recover(cfg, run_dir)
    with open(run_dir / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    points = []
    for summary in result["summary"]:
        mine = [r for r in rows if int(r["m"]) == int(summary["m"])]
        point = {
            "m": summary["m"],
            "mse_mean": round(summary["mse_mean"], 6),
            "mse_ci95": round(summary["mse_ci95"], 6),
            "psnr_mean": round(summary["psnr_mean"], 3),
            "nfe_per_image": round(sum(int(r["generator_evaluations"]) for r in mine) / len(mine), 1),
            "seconds_per_image": round(sum(float(r["seconds"]) for r in mine) / len(mine), 3),
            "images": summary["images"],
            "failed": summary["failed"],
            "params": summary["params"],
        }
        if summary.get("coverage90_mean") not in (None, ""):  # a sampler: its intervals and std map
            for column in (*map(coverage_column, COVERAGE_LEVELS), "pixel_std", "std_error_correlation"):
                point[column] = round(float(summary[f"{column}_mean"]), 4)
        points.append(point)
    settings = plain(cfg)
    noise = settings["noise"]
    return points, {
        "operator": settings["operator"]["name"],
        "noise": noise["name"],
        "noise_std": noise.get("std", 0.0),
    }


def markdown(result: dict) -> str:
    """The RESULTS.md table: one row per (solver, m)."""
    lines = [
        "| prior | solver | m | per-pixel error (95% CI) | PSNR | NFEs / image | s / image |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, entry in result["curves"].items():
        for p in entry["points"]:
            lines.append(
                f"| {entry['prior']} | {label} | {p['m']} | {p['mse_mean']:.4f} ± {p['mse_ci95']:.4f} | "
                f"{p['psnr_mean']:.1f} | {p['nfe_per_image']:.0f} | {p['seconds_per_image']:.3f} |"
            )
    return "\n".join(lines)


def coverage_table(result: dict, latent: dict) -> str:
    """The diffusion samplers' pixel intervals beside the latent sampler's (a coverage.py JSON: raw, with the
    mismatch term, split-conformal) at the m values both measured: coverage per level, corr(std, |error|), error."""
    levels = [str(level) for level in COVERAGE_LEVELS]
    head = " | ".join(f"{round(100 * level)}%" for level in COVERAGE_LEVELS)
    lines = [f"| m | sampler | {head} | corr(std, error) | error |", "|---:|---|" + "---:|" * (len(levels) + 2)]
    latent_name = latent["solver"]["label"]
    by_m = {entry["m"]: entry for entry in latent["table"]}
    for label, entry in result["curves"].items():
        for p in entry["points"]:
            if "coverage90" not in p or p["m"] not in by_m:
                continue
            cells = " | ".join(f"{p[coverage_column(float(level))]:.3f}" for level in levels)
            lines.append(
                f"| {p['m']} | {label} ({entry['prior']}) | {cells} | {p['std_error_correlation']:.2f} | "
                f"{p['mse_mean']:.4f} |"
            )
            row = by_m[p["m"]]
            arms = {
                f"{latent_name} (raw)": (row["raw"], True),
                f"{latent_name} + mismatch": (row["mismatch"], True),
                f"{latent_name} raw + split conformal": (row["raw"]["conformal"], False),
            }
            for name, (arm, has_own) in arms.items():
                cells = " | ".join(f"{arm['coverage'][level][0]:.3f}" for level in levels)
                corr = f"{arm['std_error_correlation'][0]:.2f}" if has_own else "—"
                error = f"{arm['mse'][0]:.4f}" if has_own else "—"
                lines.append(f"| {p['m']} | {name} (VAE) | {cells} | {corr} | {error} |")
    return "\n".join(lines)


def merged(results: Sequence[dict]) -> dict:
    """One result of runs of the same protocol on the same machine (each solver's curve once), seconds summed."""
    for part in ("protocol", "environment"):
        kinds = {json.dumps(r[part], sort_keys=True) for r in results}
        if len(kinds) != 1:
            raise SystemExit(f"--merge: the JSON files have different {part}s ({sorted(kinds)}); merge like with like")
    curves: dict[str, dict] = {}
    for result in results:
        for label, entry in result["curves"].items():
            if label in curves:
                raise SystemExit(f"--merge: the solver {label!r} is in more than one file; keep one of its runs")
            curves[label] = entry
    return {
        "environment": results[0]["environment"],
        "protocol": results[0]["protocol"],
        "curves": curves,
        "seconds": round(sum(r["seconds"] for r in results), 1),
    }


def figure(results: Sequence[dict], beside: dict | None) -> bytes:
    """Error versus m of every curve of ``results`` and of ``beside`` (a generators.py JSON: its CSGM and Lasso
    curves on the same protocol), one plot."""
    protocol = results[0]["protocol"]
    model = {
        "operator": protocol["operator"],
        "noise": protocol.get("noise", "gaussian"),
        "noise_std": protocol["noise_std"],
    }
    curves = {f"{label} ({entry['prior']})": entry["points"] for r in results for label, entry in r["curves"].items()}
    curves.update((beside or {}).get("curves", {}))
    rows = [{**point, "solver": label, **model} for label, points in curves.items() for point in points]
    return error_curves_png(rows, title=f"{protocol['images']} test digits, {protocol['operator']} A")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", nargs="+", type=json_file, metavar="JSON", help="print the tables")
    parser.add_argument("--merge", nargs="+", type=json_file, metavar="JSON", help="print them as one JSON")
    parser.add_argument(
        "--versus", type=json_file, metavar="JSON", help="with --markdown: a coverage.py JSON to compare"
    )
    parser.add_argument("--figure", metavar="PNG", help="with --markdown: also write the error curves here")
    parser.add_argument("--beside", type=json_file, metavar="JSON", help="with --figure: generators.py curves to add")
    parser.add_argument("--checkpoint", help="a generator=diffusion checkpoint")
    parser.add_argument("--vae", help="the paper's VAE checkpoint (its curve beside the diffusion prior's)")
    parser.add_argument("--vae-solver", default="csgm_bank")
    parser.add_argument("--solvers", default=",".join(DIFFUSION_SOLVERS))
    parser.add_argument("--measurements", default="25,100,400")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output-root", default="outputs/benchmarks/diffusion")
    parser.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--experiment", default="paper_mnist", help="paper_mnist_phase, paper_mnist_one_bit, ...")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recover.py override of every run (the VAE's too)",
    )
    args = parser.parse_args()
    if args.merge:
        emit(merged(args.merge))
        return
    if args.markdown:
        results = args.markdown
        print("\n\n".join(markdown(result) for result in results))
        if args.versus:
            latent = args.versus
            print("\n" + "\n\n".join(coverage_table(result, latent) for result in results))
        if args.figure:
            atomic_write_bytes(Path(args.figure), figure(results, args.beside))
        return
    torch.set_num_threads(args.threads)
    measurements = [int(m) for m in args.measurements.split(",")]
    start = time.perf_counter()
    runs = [("diffusion", args.checkpoint, s) for s in args.solvers.split(",") if s]
    if args.vae:
        runs.append(("VAE", args.vae, args.vae_solver))
    if not runs:
        raise SystemExit("diffusion.py: nothing to run; give --solvers (dps, diffusion_langevin, csgm_ddim) or --vae")
    curves = {}
    for prior, checkpoint, solver in runs:
        begun = time.perf_counter()
        points, model = curve(
            checkpoint, solver, measurements, args.images, args.output_root, args.accelerator, args.set, args.experiment
        )
        curves[solver] = {
            "prior": prior,
            "checkpoint_digest": checkpoint_digest(checkpoint),
            "points": points,
            "seconds": round(time.perf_counter() - begun, 1),
        }
    emit(
        {
            "environment": environment(args.threads, "cuda" if args.accelerator == "gpu" else "cpu"),
            "protocol": {
                "dataset": "mnist10k",
                "experiment": args.experiment,
                **model,  # every run's: the experiment's, with the same overrides
                "measurements": measurements,
                "images": args.images,
                "overrides": args.set,
            },
            "curves": curves,
            "seconds": round(time.perf_counter() - start, 1),
        }
    )


if __name__ == "__main__":
    run_entry(main)
