"""Solvers: x_hat from measurements y = A x + noise. All share ``Solver.solve``."""

from __future__ import annotations

from csgm.components import Group
from csgm.solvers.base import HealthLimits, Solver, SolverOutput
from csgm.solvers.biht import BIHTSolver
from csgm.solvers.csgm import CSGMSolver
from csgm.solvers.csgm_ddim import CSGMDDIMSolver
from csgm.solvers.diffusion_langevin import DiffusionLangevinSolver
from csgm.solvers.dip import DIPSolver
from csgm.solvers.dps import DPSSolver
from csgm.solvers.gauss_newton import GaussNewtonSolver
from csgm.solvers.hmc import HMCSolver
from csgm.solvers.ilo import ILOSolver
from csgm.solvers.langevin import LangevinSolver
from csgm.solvers.lasso import LassoSolver
from csgm.solvers.pgd import PGDSolver
from csgm.solvers.sparse_gen import SparseGenSolver
from csgm.solvers.wirtinger import WirtingerFlowSolver

__all__ = ["SOLVERS", "SOLVER", "HealthLimits", "Solver", "SolverOutput", "build_solver", "solver_class"]

SOLVERS: dict[str, type[Solver]] = {
    cls.name: cls
    for cls in (
        CSGMSolver,
        LassoSolver,
        SparseGenSolver,
        WirtingerFlowSolver,
        BIHTSolver,
        LangevinSolver,
        PGDSolver,
        ILOSolver,
        DIPSolver,
        GaussNewtonSolver,
        HMCSolver,
        DPSSolver,
        DiffusionLangevinSolver,
        CSGMDDIMSolver,
    )
}

SOLVER = Group("solver", SOLVERS, Solver)


def solver_class(cfg: dict) -> type[Solver]:
    """The class of a conf/solver entry: ``SOLVERS[name]`` or a user's ``_target_``."""
    return SOLVER.cls(cfg)


def build_solver(cfg: dict) -> Solver:
    """Build the solver of a conf/solver entry ({name, label, options...}); a solver may pass options on
    to its parent (sparse_gen -> csgm), and those are checked too."""
    return SOLVER.build(cfg)
