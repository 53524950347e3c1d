"""The Lightning Trainer of both jobs (training and recovery), with one-line errors for refused settings."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from csgm.errors import CsgmError
from csgm.options import check_call

__all__ = ["build_trainer", "check_trainer"]


def check_trainer(trainer_cfg: dict) -> None:
    """The keys and types of a conf/trainer entry against ``pl.Trainer``'s signature."""
    check_call("trainer.", pl.Trainer, trainer_cfg)


def build_trainer(trainer_cfg: dict, **extra: Any) -> pl.Trainer:
    """``pl.Trainer(**trainer_cfg, **extra)``; a setting Lightning refuses fails in one line."""
    try:
        return pl.Trainer(**trainer_cfg, **extra)
    except Exception as exc:  # MisconfigurationException and friends
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CsgmError(
            f"the trainer settings are refused by Lightning: {reason}; see conf/trainer/*.yaml "
            "(e.g. trainer.accelerator=cpu)"
        ) from None
