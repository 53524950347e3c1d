"""Save and rebuild a generator from a checkpoint alone (architecture + weights + data shape)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from csgm.errors import CsgmError
from csgm.generators.base import Generator

__all__ = ["generator_payload", "load_generator", "CHECKPOINT_KEY"]

CHECKPOINT_KEY = "csgm_generator"


def generator_payload(generator: Generator, name: str, arch: dict, dataset: str) -> dict[str, Any]:
    """Everything needed to rebuild ``generator`` without any config: stored under ``CHECKPOINT_KEY``."""
    return {
        "name": name,
        "arch": dict(arch),
        "image_shape": list(generator.image_shape),
        "latent_dim": generator.latent_dim,
        "dataset": dataset,
        "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
    }


def load_generator(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Generator, dict[str, Any]]:
    """Rebuild the frozen generator (eval mode, no grad) saved by train.py; returns (G, metadata)."""
    from csgm.generators import build_generator

    path = Path(path).expanduser()
    if not path.is_file():
        raise CsgmError(f"checkpoint {str(path)!r} does not exist; pass checkpoint=PATH to a .ckpt written by train.py (or checkpoint=latest)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CsgmError(f"checkpoint {str(path)!r} is not a readable torch checkpoint ({type(exc).__name__}); "
                        "it may be truncated or corrupt: re-run train.py or pick another checkpoint") from None
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt:
        raise CsgmError(f"checkpoint {str(path)!r} has no {CHECKPOINT_KEY!r} entry; it was not written by csgm's train.py")
    payload = ckpt[CHECKPOINT_KEY]
    generator = build_generator(payload["name"], payload["arch"], payload["image_shape"])
    generator.load_state_dict(payload["state_dict"])
    generator.eval().requires_grad_(False)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return generator, meta
