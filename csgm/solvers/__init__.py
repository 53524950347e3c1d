"""Solvers: x_hat from measurements y = A x + noise. All share ``Solver.solve``."""

from __future__ import annotations

import inspect

from csgm.errors import CsgmError, check_choice
from csgm.solvers.base import Solver, SolverOutput
from csgm.solvers.csgm import CSGMSolver

__all__ = ["SOLVERS", "Solver", "SolverOutput", "build_solver"]

SOLVERS: dict[str, type[Solver]] = {cls.name: cls for cls in (CSGMSolver,)}


def build_solver(cfg: dict) -> Solver:
    """Build the solver of a conf/solver entry ({name, label, options...})."""
    check_choice("solver", cfg["name"], SOLVERS)
    cls = SOLVERS[cfg["name"]]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    options = {k: v for k, v in cfg.items() if k != "name"}
    unknown = set(options) - accepted
    if unknown:
        raise CsgmError(f"unknown options {sorted(unknown)} for solver {cfg['name']!r}; it accepts {sorted(accepted)}")
    return cls(**options)
