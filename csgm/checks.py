"""The whole check of an entry point's resolved configuration, once, before any work: the top-level schema and
cross-key rules (csgm.config), then every group entry by its ``Group`` (csgm.components)."""

from __future__ import annotations

from csgm.config import (
    check_recover_rules,
    check_recover_schema,
    check_train_rules,
    check_train_schema,
    validate_evaluate_config,
)
from csgm.data import DATASET
from csgm.operators import NOISE, OPERATOR
from csgm.reporting.loggers import LOGGER
from csgm.solvers import SOLVER
from csgm.trainer import check_trainer
from csgm.training import check_generator_config

__all__ = ["check_recover_config", "check_train_config", "check_evaluate_config"]


def check_recover_config(cfg: dict) -> None:
    """A resolved recover.py config; the first problem raises a one-line CsgmError."""
    check_recover_schema(cfg)
    if cfg.get("generator") is not None:  # G comes from the checkpoint; a shared experiment may name it
        check_generator_config(cfg["generator"])
    for group in (DATASET, OPERATOR, NOISE, SOLVER):
        group.check(cfg[group.key])
    check_trainer(cfg["trainer"])
    check_recover_rules(cfg)  # after the trainer's own check, which names a value Lightning does not know
    LOGGER.check(cfg["logger"])


def check_train_config(cfg: dict) -> None:
    """A resolved train.py config; the first problem raises a one-line CsgmError."""
    check_train_schema(cfg)
    DATASET.check(cfg["dataset"])
    check_generator_config(cfg["generator"])
    check_trainer(cfg["trainer"])
    LOGGER.check(cfg["logger"])
    check_train_rules(cfg)


def check_evaluate_config(cfg: dict) -> None:
    """A resolved csgm.evaluate config; the first problem raises a one-line CsgmError."""
    validate_evaluate_config(cfg)
    DATASET.check(cfg["dataset"])
