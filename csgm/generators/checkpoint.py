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
from csgm.seeding import seeded_rng

__all__ = [
    "CHECKPOINT_KEY",
    "check_generator_name",
    "check_trained_on",
    "check_weights",
    "checkpoint_digest",
    "generator_digest",
    "generator_payload",
    "load_generator",
    "read_checkpoint",
]

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
    digest = hashlib.sha256(
        json.dumps({k: payload[k] for k in ("name", "arch", "image_shape")}, sort_keys=True, default=str).encode()
    )
    for key in sorted(payload["state_dict"]):
        tensor = payload["state_dict"][key].detach().cpu()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _where(path: Path) -> str:
    """The prefix of every message about a checkpoint: ``checkpoint 'PATH':``."""
    return f"checkpoint {str(path)!r}:"


def _check_metadata(path: Path, payload: dict[str, Any]) -> None:
    """The types of the payload's metadata (a hand-edited or foreign file fails here, not deep in a constructor)."""
    shape = payload["image_shape"]
    if not (
        isinstance(shape, (list, tuple))
        and len(shape) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
    ):
        raise CsgmError(
            f"{_where(path)} image_shape={shape!r} must be [channels, height, width] (three integers "
            ">= 1); re-run train.py to write a valid checkpoint"
        )
    latent_dim = payload["latent_dim"]
    if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
        raise CsgmError(f"{_where(path)} latent_dim={latent_dim!r} must be an integer >= 1; re-run train.py")
    for key, kind in (("name", str), ("dataset", str), ("arch", dict), ("state_dict", dict)):
        if not isinstance(payload[key], kind):
            raise CsgmError(
                f"{_where(path)} {key}={payload[key]!r} must be a {'string' if kind is str else 'mapping'}; "
                "re-run train.py"
            )
    check_weights(path, payload["state_dict"])


def check_weights(path: Path, state_dict: dict[str, Any]) -> None:
    """Every entry of ``state_dict`` is a tensor, and floating-point ones are finite (one line naming the first)."""
    for key, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise CsgmError(
                f"{_where(path)} weight {key!r} holds a value of type {type(tensor).__name__}, not a "
                "tensor; re-run train.py"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            kinds = " and ".join(k for k, hit in (("NaN", tensor.isnan().any()), ("inf", tensor.isinf().any())) if hit)
            raise CsgmError(
                f"{_where(path)} weight {key!r} holds {kinds} ({bad} of {tensor.numel()} values); the "
                "training diverged: use an earlier checkpoint or re-train (e.g. with a lower "
                "generator.training.lr)"
            )


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: nothing in the file runs; a folder, a missing, unreadable or
    truncated file, or one holding Python objects, fails in one line starting with ``checkpoint 'PATH':``."""
    if path.is_dir():
        raise CsgmError(
            f"{_where(path)} it is a folder; pass checkpoint=PATH to the .ckpt file inside it "
            "(train.py writes checkpoints/last.ckpt), or checkpoint=latest"
        )
    if not path.is_file():
        raise CsgmError(
            f"{_where(path)} the file does not exist; pass checkpoint=PATH to a .ckpt written by "
            "train.py (or checkpoint=latest)"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        if "Unsupported global" in str(exc):  # weights_only refused a class or function: nothing ran
            raise CsgmError(
                f"{_where(path)} it holds Python objects besides tensors and plain data, which are not "
                "loaded (nothing in the file runs); save the generator with train.py"
            ) from None
        raise CsgmError(
            f"{_where(path)} the file is not a readable torch checkpoint ({type(exc).__name__}); "
            "it may be truncated or corrupt: re-run train.py or pick another checkpoint"
        ) from None


def _read_payload(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    ckpt = read_checkpoint(path, map_location)
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt:
        raise CsgmError(f"{_where(path)} it has no {CHECKPOINT_KEY!r} entry; it was not written by csgm's train.py")
    payload = ckpt[CHECKPOINT_KEY]
    missing = [k for k in PAYLOAD_KEYS if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise CsgmError(
            f"{_where(path)} it has an incomplete {CHECKPOINT_KEY!r} entry (missing {missing}); "
            "re-run train.py to write a complete checkpoint"
        )
    _check_metadata(path, payload)
    return payload


def _check_outputs(path: Path, generator: Generator) -> None:
    """G at a few fixed standard-normal latents must give finite images with a finite, non-zero gradient in z: finite
    but huge weights (1e30) overflow, or saturate G so that no latent search can move."""
    z = generator.sample_latents(4, seeded_rng("checkpoint_check", 0)).requires_grad_(True)
    with torch.enable_grad():
        images = generator(z)
        (gradient,) = torch.autograd.grad(images.sum(), z) if images.requires_grad else (torch.zeros_like(z),)
    if bool(torch.isfinite(images).all()) and bool(torch.isfinite(gradient).all()) and bool(gradient.any()):
        return
    what = "NaN or inf images" if not bool(torch.isfinite(images).all()) else "images that do not vary with the latent"
    largest = {
        k: float(v.abs().max()) for k, v in generator.state_dict().items() if v.is_floating_point() and v.numel()
    }
    key = max(largest, key=largest.__getitem__)
    raise CsgmError(
        f"{_where(path)} its generator gives {what} for standard-normal latents (largest weight "
        f"{largest[key]:.3g} in {key!r}): the training diverged; use an earlier checkpoint or re-train"
    )


def load_generator(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Generator, dict[str, Any]]:
    """Rebuild the frozen generator (eval mode, no grad) saved by train.py; returns (G, metadata).
    The metadata include ``digest``, the generator's content hash. Every refusal is one line that starts with
    ``checkpoint 'PATH':``."""
    from csgm.generators import build_generator

    path = Path(path).expanduser()
    payload = _read_payload(path, map_location)
    try:
        generator = build_generator(payload["name"], payload["arch"], payload["image_shape"])
    except CsgmError as exc:
        raise CsgmError(f"{_where(path)} its generator cannot be rebuilt ({exc}); re-run train.py") from None
    if generator.latent_dim != payload["latent_dim"]:
        raise CsgmError(
            f"{_where(path)} latent_dim={payload['latent_dim']} does not match its generator's "
            f"{generator.latent_dim} (from its arch); re-run train.py"
        )
    if "latent_map.mean" in payload["state_dict"]:  # trained on another latent law (GLO): its fitted Gaussian
        generator.latent_map = LatentGaussian(
            payload["state_dict"]["latent_map.mean"], payload["state_dict"]["latent_map.scale_tril"]
        )
    try:
        generator.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        first = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]  # the first concrete mismatch
        raise CsgmError(
            f"{_where(path)} it holds weights that do not fit its own architecture ({first}); re-run train.py"
        ) from None
    generator.eval().requires_grad_(False)
    _check_outputs(path, generator)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    meta["digest"] = generator_digest(payload)
    return generator, meta


def check_trained_on(path: str | Path, meta: dict[str, Any], dataset: str, option: str | None = "dataset={}") -> None:
    """Refuse images of ``dataset`` for a generator trained on another one (its images would fit in shape, and the
    results would be silently wrong); ``option`` spells the fix for the command at hand (``--dataset {}``; None
    for a command whose dataset is fixed)."""
    trained = meta["dataset"]
    if trained != dataset:
        fix = (
            f"pass {option.format(trained)} (or a checkpoint trained on {dataset})"
            if option
            else (f"pass a checkpoint trained on {dataset}")
        )
        raise CsgmError(
            f"{_where(Path(path))} its generator was trained on dataset {trained!r}, but the images come from "
            f"dataset {dataset!r}; {fix}"
        )


def check_generator_name(path: str | Path, meta: dict[str, Any], name: str) -> None:
    """Refuse a ``generator=NAME`` choice that contradicts the checkpoint's generator (which is what runs)."""
    if meta["name"] != name:
        raise CsgmError(
            f"{_where(Path(path))} it holds a {meta['name']!r} generator, but generator={name} was chosen; "
            f"drop the generator choice (the checkpoint defines it) or pass a {name} checkpoint"
        )


def checkpoint_digest(path: str | Path, cache_file: str | Path | None = None) -> str:
    """``generator_digest`` of a checkpoint file, cached per file identity (``csgm.files.cached_digest``)."""
    return cached_digest(path, cache_file, lambda file: generator_digest(_read_payload(file)))
