"""Send a recovery run to Weights & Biases: one W&B run per job, the error curve as scalars over a step
metric (m, or the noise level for noise sweeps) so the runs of a sweep overlay in W&B's default line
panels, grouped by experiment or sweep, with a flat config that the run table can filter and sort."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from csgm.recovery.identity import IDENTITY_FILE
from csgm.results import POSTERIOR_COLUMNS
from csgm.reporting.loggers import logger_options

__all__ = ["log_recovery_to_wandb", "flat_config", "SweepGroup", "CURVE_METRICS"]

CURVE_METRICS = (
    "mse_mean",
    "mse_ci95",
    "psnr_mean",
    "psnr_ci95",
    "ssim_mean",
    "ssim_ci95",
    "images",
    "failed",
    "not_converged",
    "unreliable",
    "misfit",
    "overfit",
    "standardised_residual_mean",
    *(f"{c}_mean" for c in POSTERIOR_COLUMNS),
)  # samplers' columns are None otherwise
_GROUP_ENV = "CSGM_SWEEP_GROUP"


class SweepGroup(Callback):
    """Hydra callback: every job of one multirun gets the same W&B group (the experiment's name, or
    ``sweep-<start time>`` for a plain ``-m`` sweep)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ[_GROUP_ENV] = str(config.get("report_name") or time.strftime("sweep-%Y-%m-%d_%H-%M-%S"))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.pop(_GROUP_ENV, None)


def flat_config(node: Any, prefix: str = "") -> dict[str, Any]:
    """{'solver.lr': 0.01, ...}: nested dicts flattened with dots (lists kept as values)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flat_config(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}"))
    return out


def log_recovery_to_wandb(
    logger_cfg: dict,
    run_dir: Path,
    config: dict,
    summary: Sequence[dict[str, Any]],
    noise: str,
    images: dict[str, Path],
) -> None:
    """Log the curve (one step per point of ``config['report_x']``), the summary table and the PNGs; then finish.
    The W&B run's id is the run folder's fingerprint, so re-running a recovery resumes its W&B run."""
    import wandb

    options = logger_options(logger_cfg)
    options["group"] = options["group"] or config.get("report_name") or os.environ.get(_GROUP_ENV)
    x = config.get("report_x", "m")
    solver = config["solver"].get("label") or config["solver"].get("name")
    name = f"{solver} | {config['operator'].get('name')} | {noise}"
    fingerprint = json.loads((run_dir / IDENTITY_FILE).read_text())["fingerprint"]
    run = wandb.init(
        name=name,
        dir=str(run_dir),
        config=flat_config(config),
        job_type="recover",
        id=f"recover-{fingerprint}",
        resume="allow",
        reinit="finish_previous",
        **options,
    )
    try:
        run.define_metric(x)
        for metric in CURVE_METRICS:
            run.define_metric(metric, step_metric=x)
        for row in sorted(summary, key=lambda r: float(r[x])):
            run.log({x: row[x], **{metric: row[metric] for metric in CURVE_METRICS if row.get(metric) is not None}})
        columns = list(summary[0]) if summary else ["m", "mse_mean"]
        table = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in summary])
        run.log({"summary": table, **{key: wandb.Image(str(path)) for key, path in images.items()}})
    finally:
        run.finish()
