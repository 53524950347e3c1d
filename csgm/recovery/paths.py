"""Where recovery runs find their inputs: ``checkpoint=latest`` and the cache of file digests."""

from __future__ import annotations

from pathlib import Path

from csgm.errors import CsgmError

__all__ = ["resolve_checkpoint", "uses_generator", "digest_cache_file"]


def resolve_checkpoint(value: str | None, output_root: str | Path) -> str | None:
    """``latest`` -> the newest ``last.ckpt`` written by train.py under ``output_root``; else ``value``."""
    if value != "latest":
        return value
    found = sorted(Path(output_root).glob("train*/**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CsgmError(
            f"checkpoint=latest found no checkpoints/last.ckpt under {str(output_root)!r}; "
            "run `python train.py` first or pass checkpoint=PATH"
        )
    return str(found[-1].resolve())


def uses_generator(cfg: dict) -> bool:
    """Whether the run needs the generator (a generative solver, or images drawn from G)."""
    from csgm.solvers import solver_class

    return cfg.get("input") == "gen_span" or solver_class(cfg["solver"]).needs_generator


def digest_cache_file(cfg: dict) -> Path:
    """Where content digests of checkpoints and input files are cached (so large files are hashed once)."""
    return Path(cfg["paths"]["output_root"]) / "cache" / "file_digests.json"
