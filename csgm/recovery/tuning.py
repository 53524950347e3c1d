"""Choose a solver's ``auto`` hyperparameter per m on the validation split (never on test images).

For every m of the grid, each candidate setting of the solver (``Solver.candidates``) recovers the first
``num_images`` validation images from their own seeded measurements; the candidate with the lowest
mean per-pixel error wins. With ``halving_every`` > 0 a restart-based solver's search halves its restarts
every that many steps (``Solver.search_copy``): ranking candidates needs less work than the final run.
Candidates are copies of the solver object (``Solver.with_options``), so no solver is rebuilt from its config
and caches such as ||A|| are computed once. Choices are cached as
JSON per (dataset, operator, noise, solver, m, seed, checkpoint, images, search pruning) under ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import math
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from csgm.errors import CsgmError
from csgm.files import atomic_write_bytes
from csgm.generators import Generator
from csgm.measurement import MeasurementModel, as_measurement
from csgm.metrics import match_norm, per_pixel_error
from csgm.operators import Operator
from csgm.solvers import Solver

__all__ = ["validation_errors", "tune_per_m"]


def validation_errors(
    solver: Solver,
    candidates: Sequence[dict],
    x: torch.Tensor,
    y: torch.Tensor,
    measurement: MeasurementModel | Operator,
    generator: Generator | None,
    seed: int,
) -> list[float]:
    """Mean per-pixel error of every candidate setting (a dict of solver options) on (x, y) (of x_hat rescaled to
    ||x|| for measurements that lose the norm, as results report)."""
    estimates = solver.solve_candidates(candidates, y, measurement, list(range(len(x))), generator, seed)
    scale_free = as_measurement(measurement).operator.scale_invariant
    return [float(per_pixel_error(match_norm(x_hat, x) if scale_free else x_hat, x).mean()) for x_hat in estimates]


def _check_search(solver: Solver, candidates: list[dict], val_images: torch.Tensor) -> None:
    grid = solver.grid_option
    if not candidates:
        raise CsgmError(f"solver.{solver.tunable}=auto needs candidates: set solver.{grid}, e.g. [0.01,0.1,1,10]")
    if len(val_images) == 0:
        raise CsgmError(
            f"solver.{solver.tunable}=auto needs validation images, but the val split is empty; "
            f"set dataset.val_size > 0 and tuning.num_images > 0, or give solver.{solver.tunable} a number"
        )
    values = getattr(solver, grid)
    if any(not 0 < v < math.inf for v in values):
        raise CsgmError(f"solver.{grid}={values} must hold numbers > 0")


def tune_per_m(
    solver: Solver,
    measurements: Sequence[MeasurementModel],
    val_images: torch.Tensor,
    generator: Generator | None,
    seed: int,
    cache_dir: Path,
    context: dict[str, Any],
    halving_every: int = 0,
) -> list[tuple[Solver, dict]]:
    """(solver, chosen options) per measurement model of the grid: ``solver`` itself when nothing is ``auto``,
    else a copy with the option chosen on ``val_images`` (measured with the validation split's noise).
    ``context`` (the results-defining config: solver, dataset, operator, noise, generator) keys the cache."""
    if not solver.needs_tuning:
        return [(solver, {})] * len(measurements)
    candidates = solver.candidates()
    _check_search(solver, candidates, val_images)
    searcher = solver.search_copy(halving_every)
    search = {} if searcher is solver else {"search_halving_every": searcher.halving_every}
    chosen = []
    ids = list(range(len(val_images)))
    for test_model in measurements:
        model = MeasurementModel(test_model.operator, test_model.noise, seed, split="validation")
        key = {"format": 2, "m": model.operator.m, "seed": seed, "images": len(val_images), **search, **context}
        path = cache_dir / (
            hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16] + ".json"
        )
        if path.is_file():
            choice = json.loads(path.read_text())["value"]
        else:
            y = model.measure(val_images, ids)
            errors = validation_errors(searcher, candidates, val_images, y, model, generator, seed)
            choice = candidates[min(range(len(errors)), key=errors.__getitem__)]
            record = {"value": choice, "option": solver.tunable, "candidates": candidates, "errors": errors, "key": key}
            atomic_write_bytes(path, json.dumps(record, indent=1, default=str).encode())
        chosen.append((solver.with_options(**choice), dict(choice)))
    return chosen
