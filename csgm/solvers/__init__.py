"""Solvers: x_hat from measurements y = A x + noise. All share ``Solver.solve``."""

from __future__ import annotations

import inspect

from csgm.errors import check_choice, check_options
from csgm.solvers.base import Solver, SolverOutput
from csgm.solvers.csgm import CSGMSolver
from csgm.solvers.lasso import LassoSolver
from csgm.solvers.sparse_gen import SparseGenSolver

__all__ = ["SOLVERS", "Solver", "SolverOutput", "build_solver"]

SOLVERS: dict[str, type[Solver]] = {cls.name: cls for cls in (CSGMSolver, LassoSolver, SparseGenSolver)}


def build_solver(cfg: dict) -> Solver:
    """Build the solver of a conf/solver entry ({name, label, options...})."""
    check_choice("solver", cfg["name"], SOLVERS)
    cls = SOLVERS[cfg["name"]]
    accepted = set()
    for klass in cls.__mro__:  # a solver may pass options on to its parent (sparse_gen -> csgm)
        if klass is Solver:
            break
        accepted |= set(inspect.signature(klass.__init__).parameters) - {"self", "csgm_options"}
    options = {k: v for k, v in cfg.items() if k != "name"}
    check_options(f"solver {cfg['name']!r}", options, accepted)
    return cls(**options)
