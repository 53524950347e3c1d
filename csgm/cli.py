"""Shared parts of the entry points: config to plain dicts, one-line errors, run folders."""

from __future__ import annotations

import functools
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from csgm.errors import CsgmError

__all__ = ["plain", "report_errors", "hydra_run_dir", "quiet_third_party"]


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_third_party() -> None:
    """Hide third-party noise that says nothing about the run (adverts, internal deprecations)."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropAdverts())


def plain(cfg: DictConfig | dict | None) -> Any:
    """Resolve an OmegaConf node into plain Python containers."""
    if cfg is None or isinstance(cfg, (dict, list)):
        return cfg
    return OmegaConf.to_container(cfg, resolve=True)


def report_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a CsgmError into one line on stderr and exit status 2 (no traceback wall)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CsgmError as exc:
            print(f"csgm: error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper


def hydra_run_dir() -> Path:
    """The output folder Hydra made for this job."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)
