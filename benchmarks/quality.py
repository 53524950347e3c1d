"""The paper_mnist table as JSON: per-pixel error (mean, 95% interval), PSNR and SSIM per solver and m.

    python benchmarks/quality.py [--checkpoint latest] [--images 100 | --full] [--solvers lasso,csgm,csgm_reg,sparse_gen] [OVERRIDE ...]

It runs exactly `python recover.py experiment=paper_mnist` (same configs, same resumable run folders
under --output-root), then adds the measurement ratio between Lasso and CSGM at equal error: the m at
which each curve (linearly interpolated) first reaches --target-error.
"""

from __future__ import annotations

import argparse
import time

import torch

from common import ROOT, emit, environment
from csgm.cli import plain
from csgm.recovery.paths import register_resolvers
from csgm.recovery.run import recover


def crossing(points: list[tuple[int, float]], target: float) -> float | None:
    """Smallest m at which the piecewise-linear error curve reaches ``target`` (None if it never does)."""
    points = sorted(points)
    if points[0][1] <= target:
        return float(points[0][0])
    for (m0, e0), (m1, e1) in zip(points, points[1:]):
        if e1 <= target:
            return m0 + (e0 - target) / (e0 - e1) * (m1 - m0)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--full", action="store_true", help="all 1000 test images of the bundled split")
    parser.add_argument("--solvers", default="lasso,csgm,csgm_reg,sparse_gen")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target-error", type=float, default=0.05)
    parser.add_argument("--output-root", default=str(ROOT / "outputs"))
    parser.add_argument("overrides", nargs="*", help="more recover.py overrides, e.g. solver.iterations=300")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    register_resolvers()
    from hydra import compose, initialize_config_dir

    images = 1000 if args.full else args.images
    table, settings, timings = {}, {}, {}
    for solver in args.solvers.split(","):
        overrides = ["experiment=paper_mnist", f"solver={solver}", f"checkpoint={args.checkpoint}", f"num_images={images}",
                     f"paths.output_root={args.output_root}", "trainer.enable_progress_bar=false", "logger=none", *args.overrides]
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("recover", overrides=overrides)
        resolved = plain(cfg)
        run_dir = f"{args.output_root}/recover/{resolved['run_name']}"
        start = time.perf_counter()
        result = recover(cfg, run_dir)
        timings[solver] = round(time.perf_counter() - start, 1)
        settings[solver] = resolved["solver"]
        table[resolved["solver"]["label"]] = [
            {"m": row["m"], "mse_mean": round(row["mse_mean"], 6), "mse_ci95": round(row["mse_ci95"], 6),
             "psnr_mean": round(row["psnr_mean"], 3), "ssim_mean": round(row["ssim_mean"], 4), "images": row["images"],
             "params": row["params"]} for row in result["summary"]]
    ratios = {}
    if "lasso" in table and "csgm" in table:
        lasso_m = crossing([(r["m"], r["mse_mean"]) for r in table["lasso"]], args.target_error)
        csgm_m = crossing([(r["m"], r["mse_mean"]) for r in table["csgm"]], args.target_error)
        ratios = {"target_error": args.target_error, "lasso_m": lasso_m, "csgm_m": csgm_m,
                  "lasso_over_csgm": round(lasso_m / csgm_m, 2) if lasso_m and csgm_m else None}
    emit({"environment": environment(args.threads, "cpu"),
          "protocol": {"experiment": "paper_mnist", "overrides": args.overrides, "images": images, "noise_std": resolved["noise"]["std"],
                       "operator": resolved["operator"], "measurements": resolved["measurements"],
                       "tuning_images": resolved["tuning"]["num_images"]},
          "solvers": settings, "seconds": timings, "table": table, "equal_error_measurement_ratio": ratios})


if __name__ == "__main__":
    main()
