"""The commands ``csgm-train``, ``csgm-recover`` and ``csgm-evaluate`` (console scripts of the installed
package), which ``python train.py``, ``python recover.py`` and ``python -m csgm.evaluate`` run as well.

Each is a Hydra application over the configs of :func:`csgm.cli.config_path`: the repository's ``conf/`` in a
clone, the packaged ``csgm.conf`` in an installed wheel, so both behave alike.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import hydra
from omegaconf import DictConfig

from csgm.cli import config_path, hydra_run_dir, report_errors, run_entry

__all__ = ["train_command", "recover_command", "evaluate_command"]


def _command(config_name: str, job: Callable[[DictConfig], Any]) -> None:
    """Run ``job`` as the Hydra application of ``<config_name>.yaml`` with the command line's overrides."""
    main = hydra.main(version_base="1.3", config_path=config_path(), config_name=config_name)(report_errors(job))
    run_entry(main)


def _train(cfg: DictConfig) -> None:
    from csgm.training.resume import compose_resumed
    from csgm.training.run import train

    cfg, overrides = compose_resumed(cfg)
    summary = train(cfg, hydra_run_dir(), overrides)
    width = max(map(len, summary))
    print("\n".join(f"{key:<{width}}  {value}" for key, value in summary.items()), flush=True)
    if "interrupted" in summary:
        sys.exit(130)  # the shell's code for a run stopped by Ctrl-C (also used after a SIGTERM)


def _recover(cfg: DictConfig) -> float | None:
    """Run the recovery and print its table; returns what a hyperparameter sweeper (Optuna) minimises: the mean
    per-pixel error over the m grid (None without ground truth, and on the other processes of a DDP job)."""
    from csgm.recovery.run import recover
    from csgm.reporting.table import format_summary

    result = recover(cfg, hydra_run_dir())
    if not result:
        return None
    print(format_summary(result["summary"]))
    for name, path in result["paths"].items():
        print(f"{name:<14} {path}")
    errors = [row["mse_mean"] for row in result["summary"] if row.get("mse_mean") is not None]
    return sum(errors) / len(errors) if errors else None


def _evaluate(cfg: DictConfig) -> None:
    from csgm.evaluation.run import evaluate, format_evaluation

    result = evaluate(cfg, hydra_run_dir())
    print(format_evaluation(result["numbers"]))
    for name, path in result["paths"].items():
        print(f"{name:<11} {path}")


def train_command() -> Any:
    """``csgm-train [experiment=NAME] [group=option ...] [key=value ...]``: train a generator; ``resume=RUN_FOLDER``
    continues an interrupted run."""
    from csgm.run_folders import register_train_resolvers

    register_train_resolvers()
    return _command("train", _train)


def recover_command() -> Any:
    """``csgm-recover [experiment=NAME] [group=option ...] [key=value ...]``: recover images from measurements."""
    from csgm.recovery.identity import register_resolvers

    register_resolvers()
    return _command("recover", _recover)


def evaluate_command() -> Any:
    """``csgm-evaluate checkpoint=PATH [num_images=100]``: evaluate a generator for compressed sensing."""
    return _command("evaluate", _evaluate)
