"""A diffusion prior beside the paper's VAE on the paper's MNIST protocol: error, NFEs per image and seconds.

    python train.py generator=diffusion                                     # the prior (about an hour on 2 cores)
    python benchmarks/diffusion.py --checkpoint RUN/checkpoints/last.ckpt --vae VAE.ckpt > docs/diffusion.json
    python benchmarks/diffusion.py --markdown docs/diffusion.json           # the RESULTS.md table

Gaussian A with N(0, 1) entries, noise std 0.1, the first --images test digits, m in --measurements, through
recover.py's own code (run folders under --output-root; ``auto`` options chosen on the validation split): the
diffusion solvers dps, diffusion_langevin and csgm_ddim on the diffusion checkpoint, and --vae-solver (csgm_bank)
on the VAE. Per curve point: the per-pixel error (mean, 95% interval), PSNR, network evaluations (NFEs; for the
VAE, evaluations of G) and solver seconds per image (the mean over images of each batch's time per image).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch

from common import emit, environment, run_entry
from csgm.api import compose
from csgm.cli import plain
from csgm.generators.checkpoint import checkpoint_digest
from csgm.recovery.run import recover

DIFFUSION_SOLVERS = ("dps", "diffusion_langevin", "csgm_ddim")


def curve(checkpoint: str, solver: str, measurements: list[int], images: int, output_root: str) -> list[dict]:
    """One solver's curve points, from recover.py's summary and per-image rows."""
    cfg = compose(
        "recover",
        [
            "experiment=paper_mnist",
            "~generator",  # the checkpoint brings its own generator
            f"checkpoint='{checkpoint}'",
            f"solver={solver}",
            f"measurements=[{','.join(map(str, measurements))}]",
            f"num_images={images}",
            f"paths.output_root={output_root}",
            "trainer.enable_progress_bar=false",
            "logger=none",
        ],
    )
    run_dir = Path(f"{output_root}/recover/{plain(cfg)['run_name']}")
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
        if summary.get("coverage90_mean") not in (None, ""):
            point["coverage90"] = round(float(summary["coverage90_mean"]), 4)
            point["pixel_std"] = round(float(summary["pixel_std_mean"]), 4)
        points.append(point)
    return points


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
                f"{p['psnr_mean']:.1f} | {p['nfe_per_image']:.0f} | {p['seconds_per_image']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=argparse.FileType(), default=None, metavar="JSON")
    parser.add_argument("--checkpoint", help="a generator=diffusion checkpoint")
    parser.add_argument("--vae", help="the paper's VAE checkpoint (its curve beside the diffusion prior's)")
    parser.add_argument("--vae-solver", default="csgm_bank")
    parser.add_argument("--solvers", default=",".join(DIFFUSION_SOLVERS))
    parser.add_argument("--measurements", default="25,100,400")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output-root", default="outputs/benchmarks/diffusion")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.load(args.markdown)))
        return
    torch.set_num_threads(args.threads)
    measurements = [int(m) for m in args.measurements.split(",")]
    start = time.perf_counter()
    runs = [("diffusion", args.checkpoint, s) for s in args.solvers.split(",") if s]
    if args.vae:
        runs.append(("VAE", args.vae, args.vae_solver))
    curves = {}
    for prior, checkpoint, solver in runs:
        begun = time.perf_counter()
        points = curve(checkpoint, solver, measurements, args.images, args.output_root)
        curves[solver] = {
            "prior": prior,
            "checkpoint_digest": checkpoint_digest(checkpoint),
            "points": points,
            "seconds": round(time.perf_counter() - begun, 1),
        }
    emit(
        {
            "environment": environment(args.threads, "cpu"),
            "protocol": {
                "dataset": "mnist10k",
                "operator": "gaussian",
                "noise_std": 0.1,
                "measurements": measurements,
                "images": args.images,
            },
            "curves": curves,
            "seconds": round(time.perf_counter() - start, 1),
        }
    )


if __name__ == "__main__":
    run_entry(main)
