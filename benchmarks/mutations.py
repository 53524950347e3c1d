"""Mutation check: do the tests catch realistic single-line bugs? (Not part of the CI run.)

    nice -n 10 python benchmarks/mutations.py [--only ID ...] [--tests NODE ...] [--timeout 300] [--no-baseline]
    python benchmarks/mutations.py --list

Each mutation is (id, file, exact source snippet, replacement, covering tests): the snippet must occur exactly
once in the file, so the list survives line shifts and a stale entry fails loudly. The script copies the
working tree (tracked and untracked, not ignored files) to a temporary folder once, checks that the covering
tests pass there unmutated (the baseline), then for each mutation rewrites the file in the copy, runs only its
covering tests (``OMP_NUM_THREADS=1``, ``-x``, a per-mutation timeout) and restores the file in a ``finally``;
the working tree itself is never written. A mutation is caught when pytest fails (or times out); it survives
when the tests pass. Prints JSON: per mutation its status and seconds, caught / total and the survivors.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LIKELIHOOD = "tests/test_likelihood_answers.py"
MEASUREMENT = "tests/test_measurement.py"
NOISE = "tests/operators/test_noise.py"
SCALES = "tests/operators/test_absolute_scales.py"
KNOWN = "tests/operators/test_known_answers.py"
FLOOR = "tests/solvers/test_quality_floor.py"
OBJECTIVES = "tests/training/test_objectives.py"
GLO = "tests/training/test_glo.py"
FLOW = "tests/generators/test_flow.py"


def floor(*options: str) -> list[str]:
    """The quality-floor cases of the given solver configs (pytest node ids)."""
    return [f"{FLOOR}::test_every_solver_reaches_the_known_answer[{option}]" for option in options]


def floor_test(name: str) -> str:
    return f"{FLOOR}::{name}"


@dataclass(frozen=True)
class Mutation:
    id: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    bug: str


def mutation(id: str, file: str, find: str, replace: str, tests: list[str], bug: str) -> Mutation:
    return Mutation(id, file, find, replace, tuple(tests), bug)


MUTATIONS = [
    # likelihoods and noise
    mutation(
        "quantised_cells_swapped",
        "csgm/operators/quantize.py",
        "return torch.where(y > 0, zero, -inf), torch.where(y > 0, inf, zero)",
        "return torch.where(y > 0, -inf, zero), torch.where(y > 0, zero, inf)",
        [LIKELIHOOD],
        "each 1-bit measurement scored by the probability of the opposite sign",
    ),
    mutation(
        "poisson_rate_term_dropped",
        "csgm/operators/noise.py",
        "return 2 * (rate - y + torch.xlogy(y, y) - torch.xlogy(y, rate)).sum(1)",
        "return 2 * (-y + torch.xlogy(y, y) - torch.xlogy(y, rate)).sum(1)",
        [LIKELIHOOD],
        "a term of the Poisson deviance dropped",
    ),
    mutation(
        "poisson_constant_dropped",
        "csgm/operators/noise.py",
        "return 2 * (rate - y + torch.xlogy(y, y) - torch.xlogy(y, rate)).sum(1)",
        "return 2 * (rate - y - torch.xlogy(y, rate)).sum(1)",
        [LIKELIHOOD],
        "the deviance's y log y term dropped (no longer 0 at the data)",
    ),
    mutation(
        "quantised_noise_level_ignored",
        "csgm/operators/likelihood.py",
        "return interval_data_term(prediction, *self.operator.cell(y), self.noise.std)",
        "return interval_data_term(prediction, *self.operator.cell(y), 1.0)",
        [LIKELIHOOD],
        "the noise level ignored in the quantised likelihood",
    ),
    mutation(
        "student_t_constant_off",
        "csgm/operators/noise.py",
        "return self.std**2 * (self.df + 1) * torch.log1p(",
        "return self.std**2 * self.df * torch.log1p(",
        [LIKELIHOOD],
        "Student-t's (df + 1) written df",
    ),
    mutation(
        "student_t_scale_without_df",
        "csgm/operators/noise.py",
        "(prediction - y).pow(2) / (self.df * self.std**2)).sum(1)",
        "(prediction - y).pow(2) / self.std**2).sum(1)",
        [LIKELIHOOD],
        "Student-t residual scaled by sigma^2 instead of df sigma^2",
    ),
    mutation(
        "interval_term_factor",
        "csgm/operators/likelihood.py",
        "return 2 * std**2 * nll.sum(1)",
        "return std**2 * nll.sum(1)",
        [LIKELIHOOD],
        "the interval term not scaled by 2 sigma^2",
    ),
    mutation(
        "interval_upper_tail_sign",
        "csgm/operators/likelihood.py",
        "torch.where(high_open, torch.special.log_ndtr(-a), two_sided)",
        "torch.where(high_open, torch.special.log_ndtr(a), two_sided)",
        [LIKELIHOOD],
        "P(value > a) written Phi(a)",
    ),
    mutation(
        "quantiser_cell_off_by_one",
        "csgm/operators/quantize.py",
        "torch.inf), -self.range + (index + 1) * self.step",
        "torch.inf), -self.range + (index + 2) * self.step",
        [LIKELIHOOD],
        "a quantiser cell two steps wide",
    ),
    mutation(
        "sign_scale_not_fixed_to_sqrt_m",
        "csgm/operators/likelihood.py",
        "prediction.shape[1] ** 0.5 / prediction.norm(dim=1, keepdim=True).clamp_min(1e-12)",
        "1.0 / prediction.norm(dim=1, keepdim=True).clamp_min(1e-12)",
        [LIKELIHOOD],
        "1-bit predictions normalised to norm 1 instead of sqrt(m)",
    ),
    mutation(
        "validation_shares_test_noise_key",
        "csgm/measurement.py",
        'return key if self.split == "test" else (*key, self.split)',
        "return key",
        [LIKELIHOOD],
        "the validation split sharing the test split's noise stream (measurement key)",
    ),
    mutation(
        "validation_search_uses_test_split",
        "csgm/recovery/tuning.py",
        'model = MeasurementModel(test_model.operator, test_model.noise, seed, split="validation")',
        "model = MeasurementModel(test_model.operator, test_model.noise, seed)",
        [LIKELIHOOD],
        "the validation search measuring with the test split's noise stream",
    ),
    mutation(
        "student_t_noise_std_ignored",
        "csgm/operators/noise.py",
        "return self.std * rng.standard_t(self.df, size)",
        "return rng.standard_t(self.df, size)",
        [NOISE, LIKELIHOOD],
        "Student-t noise drawn at unit scale",
    ),
    mutation(
        "poisson_level_inverted",
        "csgm/operators/noise.py",
        "return self.scale**-0.5",
        "return self.scale**0.5",
        [MEASUREMENT],
        "the Poisson noise level sqrt(scale) instead of 1 / sqrt(scale)",
    ),
    mutation(
        "poisson_counts_unscaled",
        "csgm/operators/noise.py",
        "self._rng(key, i).poisson(self.scale * row) / self.scale",
        "self._rng(key, i).poisson(row) / self.scale",
        [MEASUREMENT, LIKELIHOOD],
        "photon counts drawn at rate A x instead of scale * A x",
    ),
    # operators
    mutation(
        "srht_scaled_for_unpadded_size",
        "csgm/operators/structured.py",
        "self.scale = math.sqrt(self.padded) / (",
        "self.scale = math.sqrt(self.n) / (",
        [SCALES],
        "the SRHT scaled for the unpadded size when n is not a power of two",
    ),
    mutation(
        "random_convolution_scale",
        "csgm/operators/structured.py",
        "self.scale = math.sqrt(self.n) / (math.sqrt(self.m)",
        "self.scale = math.sqrt(self.m) / (math.sqrt(self.m)",
        [SCALES],
        "random convolution rows of squared norm m instead of n",
    ),
    mutation(
        "dither_not_recorded",
        "csgm/operators/quantize.py",
        "return self.linear_part(x) + self.tau.to(x.dtype if x.is_floating_point() else self.tau.dtype)",
        "return self.linear_part(x)",
        [SCALES],
        "a dithered quantiser recording undithered values",
    ),
    mutation(
        "dither_one_sided",
        "csgm/operators/quantize.py",
        '2 * torch.rand(self.m, generator=seeded_rng("dither", seed, self.m), dtype=torch.float64) - 1',
        'torch.rand(self.m, generator=seeded_rng("dither", seed, self.m), dtype=torch.float64)',
        [SCALES],
        "dither drawn from U[0, D] instead of U[-D, D]",
    ),
    mutation(
        "phase_retrieval_signed",
        "csgm/operators/phase_retrieval.py",
        "return (x.flatten(1).to(self.matrix.dtype) @ self.matrix.T).abs()",
        "return x.flatten(1).to(self.matrix.dtype) @ self.matrix.T",
        [SCALES],
        "phase retrieval keeping the sign",
    ),
    mutation(
        "gaussian_normalised_by_m",
        "csgm/operators/gaussian.py",
        "matrix /= math.sqrt(m)",
        "matrix /= m",
        [SCALES],
        "normalize dividing by m instead of sqrt(m)",
    ),
    mutation(
        "fourier_not_orthonormal",
        "csgm/operators/fourier.py",
        'coeffs = torch.fft.fft2(x, norm="ortho").flatten(2)[..., self.kept]',
        "coeffs = torch.fft.fft2(x).flatten(2)[..., self.kept]",
        [SCALES],
        "the forward FFT without the orthonormal scaling",
    ),
    mutation(
        "superres_sampling_phase",
        "csgm/operators/superres.py",
        "return conv_same(x, self.kernel)[..., ::f, ::f].flatten(1)",
        "return conv_same(x, self.kernel)[..., 1::f, 1::f].flatten(1)",
        [SCALES],
        "super-resolution sampling the blurred image off by one pixel",
    ),
    mutation(
        "blur_kernel_width",
        "csgm/operators/blur.py",
        "g = torch.exp(-(t**2) / (2 * sigma**2))",
        "g = torch.exp(-(t**2) / sigma**2)",
        [SCALES],
        "the Gaussian kernel of width sigma / sqrt(2)",
    ),
    mutation(
        "superres_average_scale",
        "csgm/operators/superres.py",
        "return F.avg_pool2d(x, f).flatten(1)",
        "return F.avg_pool2d(x, f).flatten(1) * f",
        [SCALES],
        "block sums scaled by f instead of averages",
    ),
    # solvers
    mutation(
        "pgd_step_sign",
        "csgm/solvers/pgd.py",
        "v = x + eta * operator.adjoint(target - operator(x))",
        "v = x - eta * operator.adjoint(target - operator(x))",
        floor("pgd"),
        "a PGD step with the wrong sign",
    ),
    mutation(
        "pgd_step_not_normalised",
        "csgm/solvers/pgd.py",
        "eta = self.step / operator.norm_squared()",
        "eta = self.step / operator.m",
        floor("pgd"),
        "the PGD step over m instead of ||A||^2",
    ),
    mutation(
        "mala_reverse_density_wrong_point",
        "csgm/solvers/langevin.py",
        "backward = (z - proposal - eta * new_grad).pow(2).sum(1) / (4 * eta[:, 0])",
        "backward = (z - proposal - eta * grad).pow(2).sum(1) / (4 * eta[:, 0])",
        [floor_test("test_mala_acceptance_of_one_step_is_the_hand_computed_metropolis_test"), *floor("mala")],
        "MALA's reverse-proposal density computed at the wrong point",
    ),
    mutation(
        "mala_proposal_variance",
        "csgm/solvers/langevin.py",
        "forward = (proposal - z - eta * grad).pow(2).sum(1) / (4 * eta[:, 0])",
        "forward = (proposal - z - eta * grad).pow(2).sum(1) / (2 * eta[:, 0])",
        [floor_test("test_mala_acceptance_of_one_step_is_the_hand_computed_metropolis_test")],
        "the proposal density with variance eta instead of 2 eta",
    ),
    mutation(
        "mala_ratio_sign",
        "csgm/solvers/langevin.py",
        "log_ratio = torch.nan_to_num(new_value - value - backward + forward, nan=-torch.inf)",
        "log_ratio = torch.nan_to_num(new_value - value + backward - forward, nan=-torch.inf)",
        [floor_test("test_mala_acceptance_of_one_step_is_the_hand_computed_metropolis_test")],
        "the Hastings correction with the wrong sign",
    ),
    mutation(
        "langevin_noise_scale",
        "csgm/solvers/langevin.py",
        "proposal = z + eta * grad + torch.sqrt(2 * eta) * draws[:, :k]",
        "proposal = z + eta * grad + torch.sqrt(eta) * draws[:, :k]",
        [floor_test("test_mala_acceptance_of_one_step_is_the_hand_computed_metropolis_test"), *floor("langevin")],
        "Langevin noise of variance eta instead of 2 eta",
    ),
    mutation(
        "langevin_prior_weight",
        "csgm/solvers/langevin.py",
        "value = -measurement.data_term(measurement.predict(x), y) / scale - 0.5 * z.pow(2).sum(1)",
        "value = -measurement.data_term(measurement.predict(x), y) / scale - z.pow(2).sum(1)",
        [floor_test("test_mala_acceptance_of_one_step_is_the_hand_computed_metropolis_test"), *floor("langevin")],
        "the N(0, I) prior's log-density doubled",
    ),
    mutation(
        "dip_regulariser_sign",
        "csgm/solvers/dip.py",
        "loss = loss + self.tv_weight * total_variation(x)",
        "loss = loss - self.tv_weight * total_variation(x)",
        [floor_test("test_dip_total_variation_weight_smooths_the_fit")],
        "a regulariser's sign in CS-DIP",
    ),
    mutation(
        "csgm_lambda_z_as_l1",
        "csgm/solvers/csgm.py",
        "total = self.l2_weight * data + self.lambda_z * z.pow(2).sum(1)",
        "total = self.l2_weight * data + self.lambda_z * z.abs().sum(1)",
        floor("csgm_reg", "csgm_flow"),
        "the Gaussian prior on z written as an l1 penalty",
    ),
    mutation(
        "csgm_l1_term_squared",
        "csgm/solvers/csgm.py",
        "total = total + self.l1_weight * residual.abs().sum(1)",
        "total = total + self.l1_weight * residual.pow(2).sum(1)",
        [floor_test("test_csgm_l1_data_term_ignores_gross_outliers")],
        "the l1 data term squared",
    ),
    mutation(
        "csgm_restart_pick",
        "csgm/solvers/csgm.py",
        "pick = (torch.arange(batch) * restarts + best_restart).to(z_final.device)",
        "pick = (torch.arange(batch) + best_restart).to(z_final.device)",
        [floor_test("test_csgm_keeps_the_restart_with_the_lowest_data_term"), *floor("csgm")],
        "the kept restart indexed without the image's offset",
    ),
    mutation(
        "csgm_restart_worst",
        "csgm/solvers/csgm.py",
        'best = torch.where(finite, losses, torch.full_like(losses, float("inf"))).argmin(1)',
        'best = torch.where(finite, losses, torch.full_like(losses, float("inf"))).argmax(1)',
        [floor_test("test_csgm_keeps_the_restart_with_the_lowest_data_term"), *floor("csgm")],
        "the restart with the highest loss kept",
    ),
    mutation(
        "lasso_threshold_sign",
        "csgm/solvers/proximal.py",
        "return torch.sign(v) * torch.clamp(v.abs() - threshold, min=0.0)",
        "return torch.sign(v) * torch.clamp(v.abs() + threshold, min=0.0)",
        floor("lasso", "lasso_dct"),
        "soft thresholding that grows coefficients",
    ),
    mutation(
        "fista_gradient_sign",
        "csgm/solvers/lasso.py",
        "gradient = basis.analysis(operator.adjoint(operator(basis.synthesis(v)) - y_run))",
        "gradient = basis.analysis(operator.adjoint(y_run - operator(basis.synthesis(v))))",
        floor("lasso"),
        "FISTA's gradient with the wrong sign",
    ),
    mutation(
        "biht_mismatch_sign",
        "csgm/solvers/biht.py",
        "mismatch = signs - torch.where(x @ matrix.T + tau > 0, 1.0, -1.0).to(y.dtype)",
        "mismatch = torch.where(x @ matrix.T + tau > 0, 1.0, -1.0).to(y.dtype) - signs",
        floor("biht"),
        "BIHT's sign mismatch reversed",
    ),
    mutation(
        "wirtinger_spectral_norm",
        "csgm/solvers/wirtinger.py",
        "scale = torch.sqrt(n * intensities.sum(1) / matrix.pow(2).sum())",
        "scale = torch.sqrt(intensities.sum(1) / matrix.pow(2).sum())",
        [floor_test("test_wirtinger_spectral_start_has_the_norm_the_intensities_imply"), *floor("wirtinger_flow")],
        "the spectral start scaled without n",
    ),
    mutation(
        "sparse_gen_deviation_step_sign",
        "csgm/solvers/sparse_gen.py",
        "return torch.cat([soft_threshold(coefficients - step * gradient, step * lam), lam], 1)",
        "return torch.cat([soft_threshold(coefficients + step * gradient, step * lam), lam], 1)",
        floor("sparse_gen"),
        "the sparse deviation stepping up its gradient",
    ),
    mutation(
        "ilo_radius_ignored",
        "csgm/solvers/ilo.py",
        "offset.copy_(project_l1_ball(offset, radius))",
        "offset.copy_(project_l1_ball(offset, 0 * radius))",
        floor("ilo"),
        "the intermediate layer never leaving CSGM's solution",
    ),
    # training
    mutation(
        "glo_projection_removed",
        "csgm/training/glo.py",
        "self.codes.copy_(project_codes(self.codes, self.hparams.projection))",
        "pass",
        [OBJECTIVES],
        "GLO codes no longer projected after a step",
    ),
    mutation(
        "glo_sphere_as_ball",
        "csgm/training/glo.py",
        'return codes / (norms if projection == "sphere" else norms.clamp_min(1.0))',
        "return codes / norms.clamp_min(1.0)",
        [OBJECTIVES],
        "projection onto the sphere done as into the ball",
    ),
    mutation(
        "vae_kl_logvar_sign",
        "csgm/training/vae.py",
        "kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)",
        "kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 + logvar).sum(1)",
        [OBJECTIVES],
        "the VAE's KL with the wrong sign of the log variance",
    ),
    mutation(
        "vae_reparameterisation_variance",
        "csgm/training/vae.py",
        "z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()",
        "z = mu + torch.randn_like(mu) * logvar.exp()",
        [OBJECTIVES],
        "z drawn with the variance as its standard deviation",
    ),
    mutation(
        "vae_gaussian_constant",
        "csgm/training/vae.py",
        "x[0].numel() * math.log(gaussian_std * math.sqrt(2 * math.pi))",
        "x[0].numel() * math.log(gaussian_std)",
        [OBJECTIVES],
        "the Gaussian likelihood's normalising constant incomplete",
    ),
    mutation(
        "flow_logit_log_det_sign",
        "csgm/generators/flow.py",
        "log_det = (math.log(1 - 2 * self.alpha) - p.log() - (-p).log1p()).flatten(1).sum(1)",
        "log_det = (math.log(1 - 2 * self.alpha) + p.log() + (-p).log1p()).flatten(1).sum(1)",
        [OBJECTIVES],
        "the logit's log-determinant with the wrong sign",
    ),
    mutation(
        "flow_scale_log_det",
        "csgm/generators/flow.py",
        "return u.flatten(1), log_det + self.log_scale.sum()",
        "return u.flatten(1), log_det",
        [OBJECTIVES],
        "the final affine map's log-determinant left out",
    ),
    mutation(
        "flow_coupling_log_det_sign",
        "csgm/generators/flow.py",
        "return torch.cat([kept, changed * log_scale.exp() + shift], 1), log_scale.flatten(1).sum(1)",
        "return torch.cat([kept, changed * log_scale.exp() + shift], 1), -log_scale.flatten(1).sum(1)",
        [OBJECTIVES],
        "a coupling's log-determinant with the wrong sign",
    ),
]


def copy_tree(destination: Path) -> None:
    """Copy the working tree's tracked and untracked (not ignored) files: uncommitted work is what is tested."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_tests(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float, str]:
    """('passed' | 'failed' | 'timeout', seconds, the last lines of the output) of pytest on ``tests`` in ``tree``."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(tree),
        "WANDB_MODE": "disabled",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, ""
    tail = "\n".join(result.stdout.strip().splitlines()[-3:])
    return ("passed" if result.returncode == 0 else "failed"), time.perf_counter() - start, tail


def apply(tree: Path, item: Mutation) -> str:
    """Write the mutated file into ``tree``; return the original text (raises if the snippet is not there once)."""
    path = tree / item.file
    original = path.read_text()
    count = original.count(item.find)
    if count != 1:
        raise ValueError(f"mutation {item.id}: the snippet occurs {count} times in {item.file} (expected once)")
    path.write_text(original.replace(item.find, item.replace))
    return original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="mutation ids to run (default: all)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per pytest run")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the covering tests")
    parser.add_argument(
        "--tests",
        nargs="*",
        default=None,
        help="run these tests (pytest node ids) instead of each mutation's covering tests",
    )
    parser.add_argument("--list", action="store_true", help="print the mutations as JSON and exit")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.only is None or m.id in args.only]
    if args.only is not None and len(chosen) != len(set(args.only)):
        raise SystemExit(f"unknown mutation ids: {sorted(set(args.only) - {m.id for m in chosen})}")
    if args.tests is not None:
        chosen = [dataclasses.replace(m, tests=tuple(args.tests)) for m in chosen]
    if args.list:
        listing = [{"id": m.id, "file": m.file, "bug": m.bug, "tests": list(m.tests)} for m in chosen]
        print(json.dumps(listing, indent=1))
        return
    ids = [m.id for m in MUTATIONS]
    if len(set(ids)) != len(ids):
        raise SystemExit("mutation ids must be unique")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    report: dict = {
        "commit": commit,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "timeout_s": args.timeout,
    }
    with tempfile.TemporaryDirectory(prefix="csgm-mutations-") as folder:
        tree = Path(folder)
        copy_tree(tree)
        for item in chosen:  # every snippet is checked before any test runs
            (tree / item.file).write_text(apply(tree, item))
        if not args.no_baseline:
            covering = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            status, seconds, tail = run_tests(tree, covering, args.timeout * 4)
            report["baseline"] = {"status": status, "seconds": round(seconds, 1), "tests": list(covering)}
            if status != "passed":
                print(json.dumps(report, indent=1))
                raise SystemExit(f"the covering tests do not pass unmutated:\n{tail}")
        results = []
        for item in chosen:
            original = apply(tree, item)
            try:
                status, seconds, tail = run_tests(tree, item.tests, args.timeout)
            finally:
                (tree / item.file).write_text(original)
            caught = status != "passed"
            results.append(
                {
                    "id": item.id,
                    "file": item.file,
                    "bug": item.bug,
                    "status": status,
                    "caught": caught,
                    "seconds": round(seconds, 1),
                    "tests": list(item.tests),
                    **({} if caught else {"output": tail}),
                }
            )
            print(f"{item.id}: {status} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    caught = sum(r["caught"] for r in results)
    report.update(
        {
            "total": len(results),
            "caught": caught,
            "caught_fraction": round(caught / len(results), 3) if results else None,
            "survivors": [r["id"] for r in results if not r["caught"]],
            "results": results,
        }
    )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
