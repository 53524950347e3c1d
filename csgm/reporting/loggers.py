"""Experiment loggers: csv (default), wandb (offline unless the user says online), none."""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger

from csgm.errors import CsgmError, check_choice

__all__ = ["build_logger", "finish_wandb", "wandb_options", "LOGGERS"]

LOGGERS = ("csv", "wandb", "none")
WANDB_MODES = ("offline", "online", "disabled")


def build_logger(cfg: dict, run_dir: str | Path, run_name: str) -> Logger | bool:
    """Lightning logger for ``cfg['name']``; W&B files go to ``run_dir/wandb``."""
    check_choice("logger", cfg["name"], LOGGERS)
    if cfg["name"] == "csv":
        return CSVLogger(save_dir=str(run_dir), name="csv", version="")
    if cfg["name"] == "none":
        return False
    return WandbLogger(name=run_name, save_dir=str(run_dir), **wandb_options(cfg))


def wandb_options(cfg: dict) -> dict:
    """The W&B run options of a conf/logger entry (project, entity, group, tags, mode), mode checked."""
    mode = cfg.get("mode", "offline")
    if mode not in WANDB_MODES:
        raise CsgmError(f"logger.mode={mode!r} is not a W&B mode; use one of {', '.join(WANDB_MODES)}")
    return {"project": cfg.get("project", "csgm"), "entity": cfg.get("entity"), "group": cfg.get("group"),
            "tags": list(cfg.get("tags") or []), "mode": mode}


def finish_wandb() -> None:
    """Close the active W&B run, if any, so the next multirun job starts a new one."""
    import sys

    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
