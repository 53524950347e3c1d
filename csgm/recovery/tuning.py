"""Choose a solver's ``auto`` hyperparameter per m on the validation split (never on test images).

For every m of the grid, each candidate setting of the solver (``Solver.candidates``) recovers the first
``num_images`` validation images from their own seeded measurements; the candidate with the lowest
mean per-pixel error wins. Choices are cached as JSON per (dataset, operator, noise, solver, m,
seed, checkpoint, images) under ``cache_dir`` and recorded with every result row.
"""

from __future__ import annotations

import hashlib
import math
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from csgm.errors import CsgmError
from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.metrics import per_pixel_error
from csgm.operators import Noise, Operator
from csgm.recovery.paths import results_defining
from csgm.files import atomic_write_bytes
from csgm.solvers import Solver, build_solver

__all__ = ["validation_errors", "tune_per_m"]


def validation_errors(solver_cfg: dict, candidates: Sequence[dict], x: torch.Tensor, y: torch.Tensor,
                      operator: Operator, generator: Generator | None, seed: int) -> list[float]:
    """Mean per-pixel error of every candidate setting (a dict of solver options) on (x, y)."""
    solver = build_solver(solver_cfg)
    estimates = solver.solve_candidates(candidates, lambda setting: build_solver({**solver_cfg, **setting}), y, operator,
                                        list(range(len(x))), generator, seed)
    return [float(per_pixel_error(x_hat, x).mean()) for x_hat in estimates]


def tune_per_m(solver_cfg: dict, operators: Sequence[Operator], val_images: torch.Tensor, noise: Noise,
               generator: Generator | None, seed: int, cache_dir: Path, context: dict[str, Any]) -> list[Solver]:
    """One solver per operator of the grid, with the ``auto`` option chosen on ``val_images``."""
    solver = build_solver(solver_cfg)
    if solver.tunable is None or getattr(solver, solver.tunable) != "auto":
        return [solver] * len(operators)
    candidates = solver.candidates()
    if not candidates:
        raise CsgmError(f"solver.{solver.tunable}=auto needs candidates: set solver.lambda_grid, e.g. [0.01,0.1,1,10]")
    if len(val_images) == 0:
        raise CsgmError(f"solver.{solver.tunable}=auto needs validation images, but the val split is empty; "
                        f"set dataset.val_size > 0 and tuning.num_images > 0, or give solver.{solver.tunable} a number")
    if any(not 0 < v < math.inf for v in solver.lambda_grid):
        raise CsgmError(f"solver.lambda_grid={solver.lambda_grid} must hold numbers > 0")
    solvers = []
    ids = list(range(len(val_images)))
    solver_key = results_defining({k: v for k, v in solver_cfg.items() if k != "label"})
    for operator in operators:
        key = {"format": 2, "solver": solver_key, "m": operator.m, "seed": seed, "images": len(val_images), **context}
        path = cache_dir / (hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16] + ".json")
        if path.is_file():
            choice = json.loads(path.read_text())["value"]
        else:
            y = MeasurementModel(operator, noise, seed, split="validation").measure(val_images, ids)
            errors = validation_errors(solver_cfg, candidates, val_images, y, operator, generator, seed)
            choice = candidates[min(range(len(errors)), key=errors.__getitem__)]
            record = {"value": choice, "option": solver.tunable, "candidates": candidates, "errors": errors, "key": key}
            atomic_write_bytes(path, json.dumps(record, indent=1, default=str).encode())
        tuned = build_solver({**solver_cfg, **choice})
        tuned.tuned = dict(choice)
        solvers.append(tuned)
    return solvers
