"""Where recovery runs live: `checkpoint=latest`, and run folders named by what determines their results."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from csgm.errors import CsgmError

__all__ = ["resolve_checkpoint", "run_fingerprint", "register_resolvers", "results_defining", "FINGERPRINT_KEYS"]

FINGERPRINT_KEYS = ("dataset", "checkpoint", "input", "operator", "noise", "solver", "seed")
SPEED_ONLY_SOLVER_OPTIONS = ("flush_denormals", "compile")  # how fast, not what: a run may resume with them changed


def results_defining(solver_cfg: dict) -> dict:
    """The solver options that can change results: all but the speed-only ones."""
    return {k: v for k, v in solver_cfg.items() if k not in SPEED_ONLY_SOLVER_OPTIONS}


def resolve_checkpoint(value: str | None, output_root: str | Path) -> str | None:
    """``latest`` -> the newest ``last.ckpt`` written by train.py under ``output_root``; else ``value``."""
    if value != "latest":
        return value
    found = sorted(Path(output_root).glob("train*/**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CsgmError(f"checkpoint=latest found no checkpoints/last.ckpt under {str(output_root)!r}; "
                        "run `python train.py` first or pass checkpoint=PATH")
    return str(found[-1].resolve())


def run_fingerprint(cfg: Any) -> str:
    """8 hex digits over the settings that determine per-image results (not the m grid, the number of
    images or the trainer): re-running the same command finds the same folder and resumes it."""
    node = OmegaConf.to_container(cfg, resolve=False) if not isinstance(cfg, dict) else cfg
    keyed = {k: node.get(k) for k in FINGERPRINT_KEYS}
    if isinstance(keyed["solver"], dict):
        keyed["solver"] = results_defining(keyed["solver"])
    try:
        keyed["checkpoint"] = resolve_checkpoint(keyed["checkpoint"], node.get("paths", {}).get("output_root", "outputs"))
    except CsgmError:
        pass  # no checkpoint yet: recover() reports it in one line; the folder name need not
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()[:8]


def register_resolvers() -> None:
    """Register ``${csgm_fingerprint:}`` (run folders) and ``${csgm_sweep_mode:${sweep}}`` (an experiment
    that lists a sweep runs as a multirun without -m) for Hydra (idempotent)."""
    if not OmegaConf.has_resolver("csgm_fingerprint"):
        OmegaConf.register_new_resolver("csgm_fingerprint", lambda *, _root_: run_fingerprint(_root_), use_cache=False)
    if not OmegaConf.has_resolver("csgm_sweep_mode"):
        OmegaConf.register_new_resolver("csgm_sweep_mode", lambda sweep: "MULTIRUN" if sweep else "RUN")
