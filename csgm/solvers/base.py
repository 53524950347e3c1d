"""The solver interface: measurements y, operator A (and a frozen generator G) -> x_hat per image."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from csgm.errors import CsgmError
from csgm.generators import Generator
from csgm.measurement import MeasurementModel, as_measurement
from csgm.options import default_of
from csgm.operators import LinearOperator, Operator

__all__ = ["HealthLimits", "Solver", "SolverOutput"]


@dataclass
class SolverOutput:
    """What a solver returns for a batch of B images."""

    x_hat: torch.Tensor  # (B, C, H, W) in [0, 1]
    measurement_loss: torch.Tensor  # (B,) the data term of x_hat (||A x_hat - y||^2 for Gaussian noise)
    iterations: torch.Tensor  # (B,) iterations run for the kept estimate
    dropped_restarts: torch.Tensor  # (B,) restarts dropped as diverged (NaN/inf)
    z: torch.Tensor | None = None  # (B, k) latent of the kept estimate, for generative solvers
    converged: torch.Tensor | None = None  # (B,) bool, for solvers with a convergence test (else all converged)
    all_restarts_diverged: torch.Tensor | None = None  # (B,) bool: no finite estimate (else none failed)
    generator_evaluations: torch.Tensor | None = None  # (B,) calls of G per image (else 0)
    jvps: torch.Tensor | None = None  # (B,) Jacobian-vector products (forward mode) through G per image (else 0)
    vjps: torch.Tensor | None = None  # (B,) vector-Jacobian products (backward passes) through G per image: counted
    #                                      by the latent searches (csgm family, ilo, pgd, gauss_newton), else 0
    samples: torch.Tensor | None = None  # (B, S, C, H, W) posterior samples, for samplers
    pixel_std: torch.Tensor | None = None  # (B, C, H, W) posterior standard deviation per pixel, for samplers
    intervals: dict[float, tuple[torch.Tensor, torch.Tensor]] | None = None  # samplers: central (lower, upper)
    #                                                                       per pixel by level (0.5 ... 0.95)
    acceptance: torch.Tensor | None = None  # (B,) Metropolis acceptance rate, for MALA
    diagnostics: dict[str, torch.Tensor] | None = None  # (B,) per name, for samplers: rhat, ess_bulk, ess_tail (ArviZ,
    #                                                     worst latent coordinate) and draws (recorded per chain)
    start_loss: torch.Tensor | None = None  # (B,) the data term where the solver started (samplers: mean over chains
    #                                         of their starting points'), for the check that it did not rise

    def __post_init__(self) -> None:
        count = len(self.x_hat)
        if self.converged is None:
            self.converged = torch.ones(count, dtype=torch.bool)
        if self.all_restarts_diverged is None:
            self.all_restarts_diverged = torch.zeros(count, dtype=torch.bool)
        if self.generator_evaluations is None:
            self.generator_evaluations = torch.zeros(count, dtype=torch.long)
        if self.jvps is None:
            self.jvps = torch.zeros(count, dtype=torch.long)
        if self.vjps is None:
            self.vjps = torch.zeros(count, dtype=torch.long)

    def floating_as(self, dtype: torch.dtype) -> SolverOutput:
        """This output with its floating-point tensors in ``dtype`` (a mixed-precision solve's, in y's dtype)."""

        def cast(value):
            if isinstance(value, dict):
                return {k: cast(v) for k, v in value.items()}
            if isinstance(value, tuple):
                return tuple(cast(v) for v in value)
            return value.to(dtype) if isinstance(value, torch.Tensor) and value.is_floating_point() else value

        return dataclasses.replace(self, **{f.name: cast(getattr(self, f.name)) for f in dataclasses.fields(self)})


@dataclass(frozen=True)
class HealthLimits:
    """Where a solver's diagnostics stop being trusted; csgm.recovery.verdicts turns them into each row's status."""

    max_rhat: float = 1.1  # chains whose R-hat is above this have not mixed: not_converged
    min_ess: float = 20.0  # a bulk ESS below this is too few effective draws: not_converged
    min_acceptance: float = 0.05  # chains that accepted fewer proposals barely moved: unreliable
    min_draws: int = 10  # recorded draws per chain below this are too few to summarise: unreliable
    max_latent_scale: float = 100.0  # a latent with ||z|| above this times sqrt(k) ran off G's prior: unreliable


class Solver:
    """Base class. Solvers receive the measurement model (operator, noise and its likelihood; a bare
    operator means no noise), ``needs_generator`` ones the frozen G; all receive the run ``seed`` and
    stable ``image_ids`` so that every random draw is per image, never per batch. A solver with a
    ``tunable`` option set to ``auto`` has it chosen per m on the validation split (csgm.recovery.tuning).
    """

    name: str = "solver"
    needs_generator: bool = False
    needs_diffusion: bool = (
        False  # needs a diffusion prior (csgm.generators.diffusion): dps, diffusion_langevin, csgm_ddim
    )
    needs_linear_operator: bool = False  # uses the adjoint A^T (proximal/sparse solvers)
    accepts_quantized: bool = True  # such a solver may use a quantiser's linear part (quantisation as noise)
    tunable: str | None = None  # the option that ``auto`` chooses on the validation split
    grid_option: str = "lambda_grid"  # the option listing its candidate values
    prunes_search: bool = False  # its validation search may prune restarts (``search_copy``)
    health_limits: HealthLimits = HealthLimits()  # the thresholds of its rows' verdicts
    work_options: dict[str, int] = {}  # the options that set how much work it does, each with its least value

    @property
    def label(self) -> str:
        """The solver's name in results, tables and run folders: the config's ``label`` where it names the setting,
        else the solver's name joined with ``label_tags()``, so that a label never hides what ran (``csgm_mom5``:
        CSGM with the median of 5 means; ``lasso_dct``; ``langevin_mala``)."""
        given = getattr(self, "_label", None)
        if given not in (None, "", self.name):
            return given
        return "_".join([self.name, *self.label_tags()])

    @label.setter
    def label(self, label: str | None) -> None:
        self._label = label

    def label_tags(self) -> list[str]:
        """What sets this setting apart from the plain method, for a label left at the name (nothing here)."""
        return []

    def tag_unless_default(self, option: str, value: Any, tag: str) -> list[str]:
        """``[tag]`` when ``value`` of constructor option ``option`` differs from its default, else none."""
        return [tag] if value != default_of(type(self), option) else []

    @classmethod
    def shrunk_options(cls, options: dict[str, Any], scale: float) -> dict[str, Any]:
        """The options of a smoke test (``debug=quick``): each of ``work_options`` (given or its default) times
        ``scale``, rounded, and at least its least value."""
        return cls.shrunk_work(options, scale, cls.work_options)

    @classmethod
    def shrunk_work(cls, options: dict[str, Any], scale: float, work_options: dict[str, int]) -> dict[str, Any]:
        """``options`` with each of ``work_options`` (given or its default) times ``scale``, rounded, and at least
        its least value."""
        shrunk = dict(options)
        for key, least in work_options.items():
            value = options.get(key, default_of(cls, key))
            if isinstance(value, int) and not isinstance(value, bool):
                shrunk[key] = max(least, round(value * scale))
        return shrunk

    def check_operator(self, operator: Operator) -> None:
        """Refuse, in one line, an operator this solver cannot use (a nonlinear one for an adjoint-based solver;
        a quantised one is used through its linear part, the quantisation treated as noise)."""
        if self.needs_linear_operator and not (operator.linear or (operator.quantized and self.accepts_quantized)):
            raise CsgmError(
                f"solver {self.label!r} needs a linear operator (it uses the adjoint A^T); "
                f"operator {operator.name!r} is nonlinear: use a generative solver such as solver=csgm"
            )

    def require_generator(self, generator: Generator | None) -> Generator:
        """The generator of a solver that needs one, or one line saying how to give it."""
        if generator is None:
            raise CsgmError(f"the {self.label} solver needs a generator checkpoint (checkpoint=PATH)")
        return generator

    def accepted(self, measurement: MeasurementModel | Operator) -> MeasurementModel:
        """The measurement model (a bare operator: without noise) once its operator passed ``check_operator``."""
        measurement = as_measurement(measurement)
        self.check_operator(measurement.operator)
        return measurement

    def sampled(self, measurement: MeasurementModel | Operator) -> MeasurementModel:
        """The accepted measurement model of a solver that samples p(z | y), whose likelihood needs a known noise
        level, or one line saying how to give it."""
        measurement = self.accepted(measurement)
        if measurement.noise.std <= 0:
            raise CsgmError(
                f"solver {self.label!r} samples p(z | y), which needs a known noise level > 0; "
                "set noise=gaussian with noise.std > 0 (or another noise model)"
            )
        return measurement

    def linear_problem(
        self, measurement: MeasurementModel | Operator, y: torch.Tensor
    ) -> tuple[LinearOperator, torch.Tensor]:
        """(A, y) for a solver that needs a linear A: the operator itself, or a quantiser's linear part with the
        dequantised y (quantisation treated as noise)."""
        operator = self.accepted(measurement).operator
        return (operator, y) if operator.linear else (operator.linear_part, operator.dequantized(y))

    @property
    def needs_tuning(self) -> bool:
        """Whether the ``tunable`` option is ``auto`` (to be chosen on the validation split)."""
        return self.tunable is not None and getattr(self, self.tunable) == "auto"

    def candidates(self) -> list[dict]:
        """The option settings the validation search compares (one per value of the ``grid_option`` list)."""
        return [{self.tunable: value} for value in getattr(self, self.grid_option)]

    def with_options(self, **setting) -> Solver:
        """A copy of this solver with the options of one candidate setting (caches such as ||A|| are shared)."""
        unknown = [key for key in setting if not hasattr(self, key)]
        if unknown:
            raise CsgmError(f"solver {self.name!r} has no option {unknown[0]!r} to tune")
        solver = copy.copy(self)
        for key, value in setting.items():
            setattr(solver, key, value)
        return solver

    def search_copy(self, halving_every: int) -> Solver:
        """The solver that the validation search runs: this one (restart-based solvers override it)."""
        return self

    def solve_candidates(
        self,
        candidates: Sequence[dict],
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> list[torch.Tensor]:
        """x_hat (B, C, H, W) for every candidate setting. Solvers that can try all settings in one batched
        run override this."""
        return [
            self.with_options(**setting).solve(y, measurement, image_ids, generator, seed).x_hat
            for setting in candidates
        ]

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:  # pragma: no cover - abstract
        raise NotImplementedError
