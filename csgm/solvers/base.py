"""The solver interface: measurements y, operator A (and a frozen generator G) -> x_hat per image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from csgm.errors import CsgmError
from csgm.generators import Generator
from csgm.operators import Operator

__all__ = ["Solver", "SolverOutput"]


@dataclass
class SolverOutput:
    """What a solver returns for a batch of B images."""

    x_hat: torch.Tensor                  # (B, C, H, W) in [0, 1]
    measurement_loss: torch.Tensor       # (B,) ||A x_hat - y||^2
    iterations: torch.Tensor             # (B,) iterations run for the kept estimate
    dropped_restarts: torch.Tensor       # (B,) restarts dropped as diverged (NaN/inf)
    z: torch.Tensor | None = None        # (B, k) latent of the kept estimate, for generative solvers
    converged: torch.Tensor | None = None  # (B,) bool, for solvers with a convergence test
    extra: dict = field(default_factory=dict)


class Solver:
    """Base class. ``needs_generator`` solvers receive the frozen G; all receive the run ``seed`` and
    stable ``image_ids`` so that every random draw is per image, never per batch. A solver with a
    ``tunable`` option set to ``auto`` has it chosen per m on the validation split (csgm.recovery.tuning).
    """

    name: str = "solver"
    needs_generator: bool = False
    needs_linear_operator: bool = False  # uses the adjoint A^T (proximal/sparse solvers)
    tunable: str | None = None          # the option that ``auto`` chooses on the validation split
    lambda_grid: list[float] = []       # its candidate values
    tuned: dict = {}                    # the values chosen on the validation split, recorded with results

    def check_operator(self, operator: Operator) -> None:
        """Refuse, in one line, an operator this solver cannot use (a nonlinear one for an adjoint-based solver)."""
        if self.needs_linear_operator and not operator.linear:
            raise CsgmError(f"solver {getattr(self, 'label', self.name)!r} needs a linear operator (it uses the adjoint A^T); "
                            f"operator {operator.name!r} is nonlinear: use a generative solver such as solver=csgm")

    def candidates(self) -> list[dict]:
        """The option settings the validation search compares (one per value of ``lambda_grid``)."""
        return [{self.tunable: value} for value in self.lambda_grid]

    def solve_candidates(self, candidates: Sequence[dict], build: Callable[[dict], Solver], y: torch.Tensor,
                         operator: Operator, image_ids: Sequence[int], generator: Generator | None = None,
                         seed: int = 0) -> list[torch.Tensor]:
        """x_hat (B, C, H, W) for every candidate setting; ``build(setting)`` makes that setting's solver.
        Solvers that can try all settings in one batched run override this."""
        return [build(setting).solve(y, operator, image_ids, generator, seed).x_hat for setting in candidates]

    def solve(self, y: torch.Tensor, operator: Operator, image_ids: Sequence[int],
              generator: Generator | None = None, seed: int = 0) -> SolverOutput:  # pragma: no cover - abstract
        raise NotImplementedError
