"""A Hydra callback that turns the jobs of an experiment sweep into one report (curves, table, grid)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from csgm.files import atomic_write_bytes

__all__ = ["SweepReport", "report_dir", "register_run"]


def report_dir(cfg: Any) -> Path:
    """Where the report of experiment ``cfg['report_name']`` lives."""
    return Path(cfg["paths"]["output_root"]) / "reports" / str(cfg["report_name"])


def register_run(
    cfg: dict, run_dir: Path, solver_label: str, measurements: list[int], images: int, noise_std: float
) -> None:
    """Record ``run_dir`` (with the m values and image count of this request) as the curve of its
    (solver, operator, noise, input) in the experiment's report; a re-run with other settings replaces
    that curve instead of adding a stale one. A run folder shared by two experiments keeps all rows;
    each report reads only its own request; ``solver_label`` is the solver's (what ran), ``noise_std`` the
    run's noise level."""
    key = f"{solver_label}-{cfg['operator']['name']}-{cfg['noise']['name']}-{noise_std:g}-{cfg['input']}"
    marker = report_dir(cfg) / "runs" / f"{key}.json"
    atomic_write_bytes(
        marker, json.dumps({"run": str(run_dir.resolve()), "m": measurements, "images": images}).encode()
    )


class SweepReport(Callback):
    """After a multirun with ``report_name`` set: ``python -m csgm.report`` over its registered runs."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.get("report_name"):
            return
        from csgm.reporting.experiment_report import build_report

        folder = report_dir(config)
        requests = [json.loads(p.read_text()) for p in sorted((folder / "runs").glob("*.json"))]
        if requests:
            build_report([(Path(r["run"]), r) for r in requests], folder, x=str(config.get("report_x", "m")))
