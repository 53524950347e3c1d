"""``debug=quick``: any recovery, experiment or sweep shrunk to a smoke test by one setting (``quick`` in the
config): at most ``images`` test and validation images, ``m_values`` m values spread over the grid, and every
solver's work options (``Solver.work_options``: iterations, restarts, steps, draws, ...) times ``work``. The solver
options it changes change the results, so they are part of the run's identity: the folder name and the spec both
take the shrunk config from ``quick_config``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["quick_config", "spread"]


def spread(grid: list, count: int) -> list:
    """At most ``count`` values of ``grid``, evenly spread from its first to its last."""
    if len(grid) <= count:
        return list(grid)
    if count == 1:
        return [grid[0]]
    return [grid[round(i * (len(grid) - 1) / (count - 1))] for i in range(count)]


def quick_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` shrunk by its ``quick`` setting, or ``cfg`` itself without one; keys it does not hold stay absent."""
    quick = cfg.get("quick")
    if not quick:
        return cfg
    from csgm.solvers import solver_class

    shrunk = dict(cfg)
    shrunk["solver"] = solver_class(cfg["solver"]).shrunk_options(cfg["solver"], quick["work"])
    if "num_images" in cfg:
        shrunk["num_images"] = min(cfg["num_images"], quick["images"])
    if isinstance(cfg.get("measurements"), list):
        shrunk["measurements"] = spread(cfg["measurements"], quick["m_values"])
    if cfg.get("tuning"):
        shrunk["tuning"] = {**cfg["tuning"], "num_images": min(cfg["tuning"]["num_images"], quick["images"])}
    return shrunk
