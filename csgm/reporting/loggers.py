"""Experiment loggers: csv (default), wandb (offline unless the user says online), none."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal, Sequence

from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from csgm.components import Group

__all__ = [
    "build_logger",
    "log_final_checkpoint",
    "finish_wandb",
    "logger_options",
    "wandb_options",
    "LOGGERS",
    "LOGGER",
]


def _no_options() -> dict:
    return {}


def wandb_options(
    project: str = "csgm",
    entity: str | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    mode: Literal["offline", "online", "disabled"] = "offline",
) -> dict:
    """The W&B run options of a conf/logger entry (project, entity, group, tags, mode)."""
    return {"project": project, "entity": entity, "group": group, "tags": list(tags), "mode": mode}


LOGGERS = {"csv": _no_options, "wandb": wandb_options, "none": _no_options}
LOGGER = Group("logger", LOGGERS)


class _ContinuingWriter(ExperimentWriter):
    """Appends to the run's metrics.csv instead of deleting it: under ddp_spawn the workers write the training and
    validation rows, and the main process, which tests the model afterwards, opens a second writer on the same file."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = sorted(csv.DictReader(handle).fieldnames or [])


class RunCSVLogger(CSVLogger):
    """Lightning's CSVLogger, but every writer of a run adds to the same metrics.csv (one folder per run)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment


def logger_options(cfg: dict) -> dict:
    """The checked options of a conf/logger entry (one line naming an unknown key or a bad value)."""
    return LOGGER.build(cfg)


def build_logger(
    cfg: dict, run_dir: str | Path, run_name: str, run_id: str | None = None, hyperparameters: dict | None = None
) -> Logger | bool:
    """Lightning logger for ``cfg['name']``; W&B files go to ``run_dir/wandb`` (``run_id``: the W&B run to continue)
    and W&B gets the run's whole config as its hyperparameters. (The csv logger writes no hyperparameters here: under
    ddp_spawn its writer must first be opened once the workers have written metrics.csv.)"""
    options = logger_options(cfg)
    if cfg["name"] == "none":
        return False
    if cfg["name"] == "csv":
        return RunCSVLogger(save_dir=str(run_dir), name="csv", version="")
    logger = WandbLogger(name=run_name, save_dir=str(run_dir), id=run_id, **options)
    if hyperparameters:
        logger.log_hyperparams(hyperparameters)
    return logger


def log_final_checkpoint(logger: Logger | bool, path: str | Path) -> None:
    """W&B keeps a finished training run's checkpoint as a ``model`` artifact (offline: uploaded by ``wandb sync``)."""
    if isinstance(logger, WandbLogger):
        import wandb

        artifact = wandb.Artifact(name=f"model-{logger.experiment.id}", type="model")
        artifact.add_file(str(path), name=Path(path).name)
        logger.experiment.log_artifact(artifact, aliases=["latest"])


def finish_wandb() -> None:
    """Close the active W&B run, if any, so the next multirun job starts a new one."""
    import sys

    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
