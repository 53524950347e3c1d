"""An experiment's table as JSON: per-pixel error (mean, 95% interval), PSNR and SSIM per solver and point.

    python benchmarks/quality.py [--experiment paper_mnist] [--checkpoint latest] [--images 100 | --full]
                                 [--solvers lasso,csgm] [OVERRIDE ...] > docs/quality.json

It runs exactly `python recover.py experiment=NAME` (same configs, same jobs of the experiment's sweep,
same resumable run folders under --output-root); ``--solvers`` replaces the sweep's solver list. With
Lasso and CSGM in the table it adds the measurement ratio between them at equal error: the m at which
each curve (linearly interpolated) first reaches --target-error; for every other solver, the m from which it
beats CSGM (``baseline_beats_csgm_from_m``, the crossing of the interpolated curves). ``--markdown`` prints the table that
docs/RESULTS.md shows instead (the test of RESULTS.md renders it from the committed JSON).
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from common import ROOT, emit, environment, json_file, run_entry
from csgm.api import compose
from csgm.cli import plain
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


def curves_cross(first: list[tuple[int, float]], second: list[tuple[int, float]]) -> float | None:
    """The smallest m where the error curve ``second`` reaches ``first`` (both piecewise linear over their common
    m values): where a baseline starts to win. None if it never does (or wins from the first common m, as the
    smallest m)."""
    a, b = dict(first), dict(second)
    common = sorted(set(a) & set(b))
    gaps = [(m, b[m] - a[m]) for m in common]
    if gaps and gaps[0][1] <= 0:
        return float(gaps[0][0])
    for (m0, g0), (m1, g1) in zip(gaps, gaps[1:]):
        if g1 <= 0:
            return m0 + g0 / (g0 - g1) * (m1 - m0)
    return None


def markdown_table(result: dict) -> str:
    """The RESULTS.md table of a JSON result: one row per x value (m, or the noise std when it varies), one
    column per solver, per-pixel error mean ± 95% interval."""
    table = result["table"]
    x = "noise_std" if len({row["noise_std"] for rows in table.values() for row in rows}) > 1 else "m"
    xs = sorted({row[x] for rows in table.values() for row in rows})
    lines = [
        f"| {'noise std' if x == 'noise_std' else 'm'} | " + " | ".join(table) + " |",
        "| ---: | " + " | ".join("---" for _ in table) + " |",
    ]
    for value in xs:
        cells = []
        for rows in table.values():
            row = next((r for r in rows if r[x] == value), None)
            cells.append("" if row is None else f"{row['mse_mean']:.5f} ± {row['mse_ci95']:.5f}")
        lines.append(f"| {value:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def posterior_columns(row: dict) -> dict:
    """A sampler's summary columns (coverage of the 90% intervals, mean pixel std, single-sample error,
    acceptance), rounded; none for point estimators."""
    names = ("coverage90_mean", "pixel_std_mean", "sample_mse_mean", "acceptance_mean", "std_error_correlation_mean")
    return {name: round(row[name], 5) for name in names if row.get(name) is not None}


def sweep_jobs(sweep: dict, solvers: str | None) -> list[list[str]]:
    """The overrides of every job of an experiment's sweep (the cartesian product of its comma lists)."""
    grid = {key: str(values).split(",") for key, values in sweep.items()}
    if solvers:
        grid["solver"] = solvers.split(",")
    keys = list(grid)
    return [[f"{k}={v}" for k, v in zip(keys, combo)] for combo in itertools.product(*(grid[k] for k in keys))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="paper_mnist")
    parser.add_argument(
        "--markdown",
        type=json_file,
        default=None,
        metavar="JSON",
        help="print the RESULTS.md table of a JSON file this script wrote, and stop",
    )
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--full", action="store_true", help="all 1000 test images of the bundled split")
    parser.add_argument("--solvers", default=None, help="replace the sweep's solvers, e.g. lasso,csgm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target-error", type=float, default=0.05)
    parser.add_argument("--output-root", default=str(ROOT / "outputs"))
    parser.add_argument("overrides", nargs="*", help="more recover.py overrides, e.g. solver.iterations=300")
    args = parser.parse_args()
    if args.markdown:
        print(markdown_table(args.markdown))
        return
    torch.set_num_threads(args.threads)
    images = 1000 if args.full else args.images
    common = [
        f"experiment={args.experiment}",
        f"checkpoint={args.checkpoint}",
        f"num_images={images}",
        f"paths.output_root={args.output_root}",
        "trainer.enable_progress_bar=false",
        "logger=none",
    ]
    sweep = plain(compose("recover", common))["sweep"]
    table, settings, timings = {}, {}, {}
    for job in sweep_jobs(sweep, args.solvers):
        cfg = compose("recover", [*common, *job, *args.overrides])
        resolved = plain(cfg)
        label = resolved["solver"]["label"]
        start = time.perf_counter()
        result = recover(cfg, f"{args.output_root}/recover/{resolved['run_name']}")
        timings[label] = round(timings.get(label, 0.0) + time.perf_counter() - start, 1)
        settings[label] = resolved["solver"]
        table.setdefault(label, []).extend(
            {
                "m": row["m"],
                "noise_std": row["noise_std"],
                "mse_mean": round(row["mse_mean"], 6),
                "mse_ci95": round(row["mse_ci95"], 6),
                "psnr_mean": round(row["psnr_mean"], 3),
                "ssim_mean": round(row["ssim_mean"], 4),
                "images": row["images"],
                "failed": row["failed"],
                "params": row["params"],
                **posterior_columns(row),
            }
            for row in result["summary"]
        )
    ratios = {}
    single_noise = len({row["noise_std"] for rows in table.values() for row in rows}) == 1
    if "lasso" in table and "csgm" in table and single_noise:
        lasso_m = crossing([(r["m"], r["mse_mean"]) for r in table["lasso"]], args.target_error)
        csgm_m = crossing([(r["m"], r["mse_mean"]) for r in table["csgm"]], args.target_error)
        ratios = {
            "target_error": args.target_error,
            "lasso_m": lasso_m,
            "csgm_m": csgm_m,
            "lasso_over_csgm": round(lasso_m / csgm_m, 2) if lasso_m and csgm_m else None,
        }
    curves = {label: [(r["m"], r["mse_mean"]) for r in rows] for label, rows in table.items()}
    crossings = {
        label: curves_cross(curves["csgm"], curve)
        for label, curve in curves.items()
        if label != "csgm" and "csgm" in curves and single_noise
    }
    emit(
        {
            "environment": environment(args.threads, "cpu"),
            "protocol": {
                "experiment": args.experiment,
                "overrides": args.overrides,
                "images": images,
                "sweep": sweep,
                "noise": resolved["noise"],
                "operator": resolved["operator"],
                "input": resolved["input"],
                "measurements": resolved["measurements"],
                "tuning_images": resolved["tuning"]["num_images"],
            },
            "solvers": settings,
            "seconds": timings,
            "table": table,
            "equal_error_measurement_ratio": ratios,
            "baseline_beats_csgm_from_m": crossings,
        }
    )


if __name__ == "__main__":
    run_entry(main)
