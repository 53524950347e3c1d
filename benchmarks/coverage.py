"""Pixel intervals that cover on real digits: the raw latent sampler, the mismatch model and split-conformal scaling.

    python benchmarks/coverage.py --checkpoint CKPT [--val-images 30] [--test-images 30] [--m 25,100,400]
                                  [--write-tau TAU.pt] [--figure-prefix docs/img/coverage]
    python benchmarks/coverage.py --markdown docs/coverage.json [--figure-prefix P]  # the RESULTS.md table (figures)

Everything chosen is chosen on the validation split (its own measurement noise); the test digits are only
scored. Per m, on the paper's Gaussian measurements (noise 0.1):
  * tau: the per-pixel root mean square range error x - G(z_hat) of the validation digits, z_hat the MAP fit of
    G to the whole digit (``--write-tau`` saves it for ``solver.mismatch=PATH``);
  * raw: solver=hmc as configured; mismatch: the same with ``mismatch`` = that tau map;
  * conformal: for each arm and nominal level l, the factor q_l that scales every central interval about its
    midpoint so that a fraction l of the validation pixels is covered (the ceil((N+1) l)-th smallest of the
    N scores |x - centre| / half-width); the test coverage is then reported;
  * CSGM (conf/solver/csgm.yaml) on the same test measurements, for the error of the posterior mean.
Prints JSON per m and arm: coverage of the 50/80/90/95% central intervals on the test digits (mean and 95%
interval over images), mean 90% width, corr(std, |error|), posterior-mean error against CSGM's, the
conformal factors and the conformal coverage; with ``--figure-prefix`` a coverage-versus-m plot and a
reliability diagram per m.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

from common import ROOT, benchmark_parser, emit, environment, run_entry
from csgm.api import compose
from csgm.cli import plain
from csgm.data import load_splits
from csgm.files import atomic_write_bytes
from csgm.generators.checkpoint import check_trained_on, load_generator
from csgm.measurement import MeasurementModel
from csgm.metrics import mean_ci95, per_pixel_error, std_error_correlation
from csgm.operators import Noise, build_operator
from csgm.recovery.paths import resolve_checkpoint
from csgm.recovery.store import tensor_bytes
from csgm.seeding import seeded_rng
from csgm.solvers import build_solver
from csgm.solvers.hmc import HMCSolver, LatentPosterior
from csgm.solvers.langevin import quantile

LEVELS = (0.5, 0.8, 0.9, 0.95)
MIN_HALF_WIDTH = 1e-6  # conformal scores divide by the half-width: zero-width intervals count as this wide
PROJECTION_STD = 0.02  # the MAP fit's pixel noise: small enough that the prior barely pulls z_hat


def range_error_std(generator, images: torch.Tensor, ids: list[int], starts: int = 8) -> torch.Tensor:
    """Per-pixel RMS of x - G(z_hat) over ``images``, z_hat the best of ``starts`` Levenberg-Marquardt fits of G
    to each whole clean image (the identity operator's likelihood with noise PROJECTION_STD)."""
    model = MeasurementModel(
        build_operator({"name": "identity"}, generator.image_shape, seed=0, m=None), Noise("gaussian", PROJECTION_STD)
    )
    search = HMCSolver(chains=starts, mode_starts=starts, mode_steps=30, initial_temperature=100.0)
    target = LatentPosterior(
        generator, model, model.predict(images).repeat_interleave(starts, dim=0)
    )  # the clean digits
    z = torch.cat(
        [generator.sample_latents(1, seeded_rng("coverage-tau", int(i), s)) for i in ids for s in range(starts)]
    )
    z, _, _ = search.find_modes(z, target)
    best = target(z)[0].view(len(ids), starts).argmin(1) + torch.arange(len(ids)) * starts
    with torch.no_grad():
        fit = generator(z[best])
    return (images - fit).pow(2).mean(0).sqrt()


def posterior(solver: HMCSolver, generator, model: MeasurementModel, x: torch.Tensor, ids: list[int]) -> dict:
    """Pixel samples of one split's digits -> their mean, std and central intervals at every level."""
    y = model.measure(x, ids)
    samples = solver.sample(y, model, ids, generator, seed=0).images.clamp(0, 1)
    intervals = {level: (quantile(samples, (1 - level) / 2), quantile(samples, (1 + level) / 2)) for level in LEVELS}
    return {"mean": samples.mean(1), "std": samples.std(1, unbiased=False), "intervals": intervals}


def conformal_factor(result: dict, x: torch.Tensor, level: float) -> float:
    """Split conformal: the factor q on the half-widths that covers a fraction ``level`` of the pixels of x."""
    lower, upper = result["intervals"][level]
    centre, half = (lower + upper) / 2, ((upper - lower) / 2).clamp_min(MIN_HALF_WIDTH)
    scores = ((x - centre).abs() / half).flatten().sort().values
    rank = min(math.ceil((len(scores) + 1) * level), len(scores))
    return float(scores[rank - 1])


def covered(lower: torch.Tensor, upper: torch.Tensor, x: torch.Tensor) -> list[float]:
    return ((x >= lower) & (x <= upper)).double().flatten(1).mean(1).tolist()


def scaled(lower: torch.Tensor, upper: torch.Tensor, factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The interval scaled by ``factor`` about its midpoint, its half-width floored at MIN_HALF_WIDTH as in the
    scores (exactly itself at factor 1 otherwise), within [0, 1]; the factor is taken 1e-6 larger so that the
    score that chose it is covered despite rounding."""
    half = (upper - lower) / 2
    widen = factor * (1 + 1e-6) * half.clamp_min(MIN_HALF_WIDTH) - half
    return (lower - widen).clamp(0, 1), (upper + widen).clamp(0, 1)


def rounded(values: list[float], digits: int = 4) -> list[float]:
    return [round(v, digits) for v in mean_ci95(values)]


def score(val: dict, test: dict, x_val: torch.Tensor, x_test: torch.Tensor, csgm_mse: list[float]) -> dict:
    """One arm's test figures, raw and conformal."""
    mse = per_pixel_error(test["mean"].double(), x_test.double()).tolist()
    lower, upper = test["intervals"][0.9]
    arm = {
        "coverage": {str(level): rounded(covered(*test["intervals"][level], x_test)) for level in LEVELS},
        "width90": round(float((upper - lower).mean()), 5),
        "std_error_correlation": rounded(
            [v for v in std_error_correlation(test["std"], test["mean"], x_test).tolist() if math.isfinite(v)]
        ),
        "mse": rounded(mse, 5),
        "mse_over_csgm": round(sum(mse) / sum(csgm_mse), 3),
    }
    factors = {level: conformal_factor(val, x_val, level) for level in LEVELS}
    conformal = {level: scaled(*test["intervals"][level], factors[level]) for level in LEVELS}
    arm["conformal"] = {
        "factor": {str(level): round(factors[level], 3) for level in LEVELS},
        "coverage": {str(level): rounded(covered(*conformal[level], x_test)) for level in LEVELS},
        "width90": round(float((conformal[0.9][1] - conformal[0.9][0]).mean()), 5),
    }
    return arm


VERSIONS = {
    "raw": ("raw", None),
    "mismatch": ("mismatch", None),
    "conformal (raw)": ("raw", "conformal"),
    "conformal (mismatch)": ("mismatch", "conformal"),
}


def markdown_table(result: dict) -> str:
    """The RESULTS.md table: per m and version, the 90% coverage, its width and the posterior mean's error."""
    lines = [
        "| m | version | 90% coverage | 50 / 80 / 95% coverage | mean 90% width | conformal factor (90%) | "
        "corr(std, \\|error\\|) | error of the mean | ÷ CSGM's |",
        "| ---: | --- | --- | --- | ---: | ---: | --- | --- | ---: |",
    ]
    for row in result["table"]:
        for label, (arm, kind) in VERSIONS.items():
            base = row[arm]
            figures = base[kind] if kind else base
            cover = figures["coverage"]
            others = " / ".join(f"{cover[level][0]:.3f}" for level in ("0.5", "0.8", "0.95"))
            factor = f"{base['conformal']['factor']['0.9']:.2f}" if kind else ""
            correlation = "{:.3f} ± {:.3f}".format(*base["std_error_correlation"])
            error = "{:.5f} ± {:.5f}".format(*base["mse"])
            lines.append(
                f"| {row['m']} | {label} | {cover['0.9'][0]:.3f} ± {cover['0.9'][1]:.3f} | {others} | "
                f"{figures['width90']:.4f} | {factor} | {correlation} | {error} | {base['mse_over_csgm']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--val-images", type=int, default=30)
    parser.add_argument("--test-images", type=int, default=30)
    parser.add_argument("--m", default="25,100,400", help="comma-separated measurement counts")
    parser.add_argument("--noise-std", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write-tau", default=None, help="save the per-pixel tau map (for solver.mismatch=PATH)")
    parser.add_argument("--csgm-iterations", type=int, default=None, help="override CSGM's steps (tests)")
    parser.add_argument("--figure-prefix", default=None, help="write PREFIX_vs_m.png and PREFIX_reliability_m<m>.png")
    parser.add_argument("overrides", nargs="*", help="hmc solver overrides, e.g. solver.draws=600")
    args = parser.parse_args()
    if args.markdown:
        result = args.markdown
        print(markdown_table(result))
        if args.figure_prefix:
            write_figures(result["table"], args.figure_prefix)
        return
    torch.set_num_threads(args.threads)
    checkpoint = resolve_checkpoint(args.checkpoint, ROOT / "outputs")
    generator, meta = load_generator(checkpoint)
    check_trained_on(checkpoint, meta, "mnist10k", option=None)
    generator.eval().requires_grad_(False)
    splits = load_splits({"name": "mnist10k", "val_size": 1000, "test_size": 1000, "split_seed": 0})
    val_ids, test_ids = list(range(args.val_images)), list(range(args.test_images))
    x_val = torch.stack([splits["val"][i][0] for i in val_ids])
    x_test = torch.stack([splits["test"][i][0] for i in test_ids])
    start = time.perf_counter()
    tau = range_error_std(generator, x_val, val_ids)
    tau_path = Path(args.write_tau) if args.write_tau else Path("/tmp") / "csgm_coverage_tau.pt"
    atomic_write_bytes(tau_path, tensor_bytes(tau))
    solver_cfg = plain(compose("recover", ["solver=hmc", *args.overrides]))["solver"]
    arms = {"raw": build_solver(solver_cfg), "mismatch": build_solver({**solver_cfg, "mismatch": str(tau_path)})}
    csgm_cfg = plain(compose("recover", ["solver=csgm"]))["solver"]
    csgm = build_solver({**csgm_cfg, **({"iterations": args.csgm_iterations} if args.csgm_iterations else {})})
    table = []
    for m in map(int, args.m.split(",")):
        operator = build_operator({"name": "gaussian"}, generator.image_shape, seed=0, m=m)
        val_model = MeasurementModel(operator, Noise("gaussian", args.noise_std), seed=0, split="val")
        test_model = MeasurementModel(operator, Noise("gaussian", args.noise_std), seed=0)
        y_test = test_model.measure(x_test, test_ids)
        csgm_mse = per_pixel_error(
            csgm.solve(y_test, test_model, test_ids, generator, seed=0).x_hat.double(), x_test.double()
        ).tolist()
        row = {"m": m, "csgm_mse": rounded(csgm_mse, 5)}
        for name, solver in arms.items():
            val = posterior(solver, generator, val_model, x_val, val_ids)
            test = posterior(solver, generator, test_model, x_test, test_ids)
            row[name] = score(val, test, x_val, x_test, csgm_mse)
        table.append(row)
        print(f"m = {m} done after {time.perf_counter() - start:.0f} s", flush=True, file=sys.stderr)
    emit(
        {
            "environment": environment(args.threads, "cpu"),
            "protocol": {
                "val_images": args.val_images,
                "test_images": args.test_images,
                "noise_std": args.noise_std,
                "levels": LEVELS,
                "tau_mean": round(float(tau.mean()), 4),
                "tau_max": round(float(tau.max()), 4),
                "seconds": round(time.perf_counter() - start, 1),
            },
            "solver": solver_cfg,
            "table": table,
        }
    )
    if args.figure_prefix:
        write_figures(table, args.figure_prefix)


def write_figures(table: list[dict], prefix: str) -> None:
    """Coverage of the 90% intervals versus m (four versions) and a reliability diagram per m."""
    from csgm.reporting.plots import error_curves_png, reliability_diagram_png

    summary = []
    for row in table:
        for label, (arm, kind) in VERSIONS.items():
            figures = row[arm][kind] if kind else row[arm]
            mean, half = figures["coverage"]["0.9"]
            summary.append(
                {
                    "solver": label,
                    "operator": "gaussian",
                    "noise": "gaussian",
                    "noise_std": 0.1,
                    "m": row["m"],
                    "coverage90_mean": mean,
                    "coverage90_ci95": half,
                    "failed": 0,
                }
            )
    atomic_write_bytes(
        Path(f"{prefix}_vs_m.png"),
        error_curves_png(
            summary,
            metric="coverage90",
            log_y=False,
            title="coverage of the 90% pixel intervals on test digits (goal 0.9)",
        ),
    )
    for row in table:
        curves = {
            label: [
                (float(level), (row[arm][kind] if kind else row[arm])["coverage"][level][0])
                for level in row["raw"]["coverage"]
            ]
            for label, (arm, kind) in VERSIONS.items()
        }
        atomic_write_bytes(
            Path(f"{prefix}_reliability_m{row['m']}.png"),
            reliability_diagram_png(curves, f"pixel intervals on test digits, m = {row['m']}"),
        )


if __name__ == "__main__":
    run_entry(main)
