"""Save and rebuild a generator from a checkpoint alone (architecture + weights + data shape), and
identify a generator by its content: a hash of its architecture and weights, not of the file's path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from csgm.errors import CsgmError
from csgm.files import cached_digest
from csgm.generators.base import Generator, LatentGaussian

__all__ = ["generator_payload", "load_generator", "generator_digest", "checkpoint_digest", "CHECKPOINT_KEY"]

CHECKPOINT_KEY = "csgm_generator"
PAYLOAD_KEYS = ("name", "arch", "image_shape", "latent_dim", "dataset", "state_dict")


def generator_payload(generator: Generator, name: str, arch: dict, dataset: str, training: str = "") -> dict[str, Any]:
    """Everything needed to rebuild ``generator`` without any config: stored under ``CHECKPOINT_KEY``. ``training``
    names the method that trained it (for reports; the weights identify the generator)."""
    return {
        "name": name,
        "arch": dict(arch),
        "image_shape": list(generator.image_shape),
        "latent_dim": generator.latent_dim,
        "dataset": dataset,
        "training": training,
        "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
    }


def generator_digest(payload: dict[str, Any]) -> str:
    """sha256 of a generator payload's architecture, image shape and weights (16 hex digits): two
    checkpoints with the same generator have the same digest wherever they are stored."""
    digest = hashlib.sha256(json.dumps({k: payload[k] for k in ("name", "arch", "image_shape")}, sort_keys=True,
                                       default=str).encode())
    for key in sorted(payload["state_dict"]):
        tensor = payload["state_dict"][key].detach().cpu()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _read_payload(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if path.is_dir():
        raise CsgmError(f"checkpoint {str(path)!r} is a folder; pass checkpoint=PATH to the .ckpt file inside it "
                        "(train.py writes checkpoints/last.ckpt), or checkpoint=latest")
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
    missing = [k for k in PAYLOAD_KEYS if not isinstance(payload, dict) or k not in payload]
    if missing or not isinstance(payload["state_dict"], dict):
        raise CsgmError(f"checkpoint {str(path)!r} has an incomplete {CHECKPOINT_KEY!r} entry (missing {missing or ['state_dict']}); "
                        "re-run train.py to write a complete checkpoint")
    return payload


def load_generator(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Generator, dict[str, Any]]:
    """Rebuild the frozen generator (eval mode, no grad) saved by train.py; returns (G, metadata).
    The metadata include ``digest``, the generator's content hash."""
    from csgm.generators import build_generator

    path = Path(path).expanduser()
    payload = _read_payload(path, map_location)
    generator = build_generator(payload["name"], payload["arch"], payload["image_shape"])
    if "latent_map.mean" in payload["state_dict"]:  # trained on another latent law (GLO): its fitted Gaussian
        generator.latent_map = LatentGaussian(payload["state_dict"]["latent_map.mean"], payload["state_dict"]["latent_map.scale_tril"])
    try:
        generator.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CsgmError(f"checkpoint {str(path)!r} holds weights that do not fit its own architecture ({first}); "
                        "re-run train.py") from None
    generator.eval().requires_grad_(False)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    meta["digest"] = generator_digest(payload)
    return generator, meta


def checkpoint_digest(path: str | Path, cache_file: str | Path | None = None) -> str:
    """``generator_digest`` of a checkpoint file, cached per file identity (``csgm.files.cached_digest``)."""
    return cached_digest(path, cache_file, lambda file: generator_digest(_read_payload(file)))
