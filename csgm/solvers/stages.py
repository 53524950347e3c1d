"""Second-order stages inside other solvers: the options of ``csgm.solvers.gauss_newton`` nested under one key
(ILO's and Sparse-Gen's ``first_stage``, PGD's ``projection``) in place of an Adam latent search, whose options
may then not be given."""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from csgm.errors import CsgmError
from csgm.options import instantiate
from csgm.solvers.base import Solver
from csgm.solvers.csgm import CSGMSolver
from csgm.solvers.gauss_newton import GaussNewtonSolver

__all__ = ["StagedCSGMSolver", "second_order_stage", "shrunk_with_stage"]


def second_order_stage(
    key: str, options: Mapping[str, Any], replaced: Mapping[str, Any], search: str, config: str
) -> GaussNewtonSolver:
    """The second-order stage of ``solver.<key>`` options; ``replaced`` holds the options given for the Adam
    ``search`` it replaces (refused: they would have no effect), ``config`` the solver config that sets the stage."""
    if replaced:
        name = sorted(replaced)[0]
        raise CsgmError(
            f"solver.{name}={replaced[name]!r} sets {search}, which solver.{key} replaces; drop it "
            f"(solver={config} has a second-order {search.removeprefix('the Adam ')} and no Adam options)"
        )
    name = options.get("name", GaussNewtonSolver.name)
    if name != GaussNewtonSolver.name:
        raise CsgmError(f"solver.{key}.name={name!r} must be {GaussNewtonSolver.name!r} (second-order steps)")
    try:
        return instantiate(f"solver.{key}.", GaussNewtonSolver, {k: v for k, v in options.items() if k != "name"})
    except CsgmError as exc:  # the stage's own checks name its keys solver.KEY: here they sit one level down
        raise CsgmError(re.sub(rf"\bsolver\.(?!{key}\.)", f"solver.{key}.", str(exc))) from None


def shrunk_with_stage(
    cls: type[Solver], options: dict[str, Any], scale: float, key: str, replaced: Iterable[str]
) -> dict[str, Any]:
    """A smoke test's options of a solver whose ``key`` holds a second-order stage: the stage's work shrinks, and
    the solver's own work options except the ``replaced`` Adam ones (which stay absent)."""
    stage = GaussNewtonSolver.shrunk_options(dict(options[key]), scale)
    skipped = set(replaced)
    kept = {name: least for name, least in cls.work_options.items() if name not in skipped}
    return cls.shrunk_work({**options, key: stage}, scale, kept)


class StagedCSGMSolver(CSGMSolver):
    """A solver built on CSGM's latent search (ILO, Sparse-Gen) whose ``first_stage`` options replace that Adam
    search by second-order steps (``self.first_stage``; None keeps CSGM's)."""

    replaced_search = "the Adam latent search"  # as the refusal of a replaced option names it
    staged_config = ""  # the solver config with a second-order first stage

    def __init__(self, first_stage: Mapping[str, Any] | None = None, **csgm_options) -> None:
        super().__init__(**{k: v for k, v in csgm_options.items() if k == "label" or not first_stage})
        adam_options = {k: v for k, v in csgm_options.items() if k != "label"}
        self.first_stage = (
            second_order_stage("first_stage", first_stage, adam_options, self.replaced_search, self.staged_config)
            if first_stage
            else None
        )

    @classmethod
    def shrunk_options(cls, options: dict[str, Any], scale: float) -> dict[str, Any]:
        """A smoke test's options: with a second-order ``first_stage``, that stage's work shrinks instead of the
        unused Adam options."""
        if not options.get("first_stage"):
            return super().shrunk_options(options, scale)
        return shrunk_with_stage(cls, options, scale, "first_stage", CSGMSolver.work_options)

    def search_copy(self, halving_every: int) -> Solver:
        """The validation search's solver: a second-order first stage has no restarts to halve."""
        return self if self.first_stage else super().search_copy(halving_every)
