"""Send a recovery run's table, curve and grids to Weights & Biases (one W&B run per job)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from csgm.reporting.loggers import logger_options

__all__ = ["log_recovery_to_wandb"]


def log_recovery_to_wandb(logger_cfg: dict, run_dir: Path, run_name: str, config: dict,
                          summary: Sequence[dict[str, Any]], images: dict[str, Path]) -> None:
    """Log the summary as a table and an error-versus-m line plot, and the PNGs as images; then finish."""
    import wandb

    run = wandb.init(name=run_name, dir=str(run_dir), config=config, reinit="finish_previous", **logger_options(logger_cfg))
    try:
        columns = list(summary[0]) if summary else ["m", "mse_mean"]
        table = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in summary])
        run.log({"summary": table,
                 "error_vs_m": wandb.plot.line(table, "m", "mse_mean", title="per-pixel error versus m"),
                 **{name: wandb.Image(str(path)) for name, path in images.items()}})
    finally:
        run.finish()
