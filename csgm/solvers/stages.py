"""Second-order stages inside other solvers: the options of ``csgm.solvers.gauss_newton`` nested under one key
(ILO's ``first_stage``, PGD's ``projection``) in place of an Adam latent search, whose options may then not be
given."""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from csgm.errors import CsgmError
from csgm.options import instantiate
from csgm.solvers.base import Solver
from csgm.solvers.gauss_newton import GaussNewtonSolver

__all__ = ["second_order_stage", "shrunk_with_stage"]


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
