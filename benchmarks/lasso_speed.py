"""Batched FISTA Lasso versus scikit-learn's Lasso image by image, at the same error; prints JSON.

    python benchmarks/lasso_speed.py [--images 100] [--m 100] [--threads 1]

Both solve min_x 0.5 ||A x - y||^2 + lambda ||x||_1 (scikit-learn's alpha = lambda / m) on the paper's
MNIST protocol (Gaussian A with N(0, 1) entries, noise 0.1), for lambda chosen on the validation
split by csgm's own procedure and for a fixed smaller lambda with a less sparse, slower solution.
"""

from __future__ import annotations

import argparse
import warnings

import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso

from common import add_dataset_options, dataset_config, emit, environment, mnist_problem, timed, run_entry
from csgm.measurement import MeasurementModel
from csgm.metrics import per_pixel_error
from csgm.operators import Noise
from csgm.recovery.tuning import validation_errors
from csgm.solvers import build_solver
from csgm.solvers.lasso import LassoSolver

GRID = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]


def compare_lasso(checkpoint: str, images: int, m: int, dataset: dict | None = None) -> dict:
    """Batched FISTA and scikit-learn on the same problem, for the validation lambda and for lambda = 0.3."""
    _, operator, x, y, ids = mnist_problem(checkpoint, images, m, dataset=dataset)
    _, _, x_val, _, val_ids = mnist_problem(checkpoint, 20, m, split="val", dataset=dataset)
    y_val = MeasurementModel(operator, Noise("gaussian", 0.1), 0, split="validation").measure(x_val, val_ids)
    cfg = {"name": "lasso", "lambda_l1": "auto", "lambda_grid": GRID}
    errors = validation_errors(build_solver(cfg), [{"lambda_l1": v} for v in GRID], x_val, y_val, operator, None, 0)
    tuned = GRID[min(range(len(GRID)), key=errors.__getitem__)]
    matrix = operator.to_dense().double().numpy()
    result = {"images": len(ids), "m": m, "cases": {}}
    for name, lam in (("validation_lambda", tuned), ("lambda_0.3", 0.3)):
        solver = LassoSolver(lambda_l1=lam)
        out, ours = timed(lambda: solver.solve(y, operator, ids), "cpu")
        ours_error = float(per_pixel_error(out.x_hat, x).mean())

        def sklearn_all():
            estimates = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                for row in y.double().numpy():
                    model = Lasso(alpha=lam / m, fit_intercept=False, max_iter=10000).fit(matrix, row)
                    estimates.append(torch.from_numpy(model.coef_).float())
            return torch.stack(estimates).view_as(x).clamp(0, 1)

        reference, theirs = timed(sklearn_all, "cpu")
        theirs_error = float(per_pixel_error(reference, x).mean())
        result["cases"][name] = {
            "lambda": lam,
            "fista_seconds": round(ours, 3),
            "sklearn_seconds": round(theirs, 3),
            "speedup": round(theirs / ours, 2),
            "fista_error": round(ours_error, 6),
            "sklearn_error": round(theirs_error, 6),
            "error_ratio": round(ours_error / theirs_error, 4),
            "fista_iterations_max": int(out.iterations.max()),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--m", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", default="latest")
    add_dataset_options(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = dataset_config(args.dataset, args.dataset_option)
    emit(
        {
            "environment": environment(args.threads, "cpu"),
            **compare_lasso(args.checkpoint, args.images, args.m, dataset),
        }
    )


if __name__ == "__main__":
    run_entry(main)
