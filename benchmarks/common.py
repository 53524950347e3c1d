"""Shared set-up of the benchmark scripts: threads, the trained VAE, MNIST test images, measurements."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csgm.data import load_splits  # noqa: E402
from csgm.generators.checkpoint import load_generator  # noqa: E402
from csgm.measurement import MeasurementModel  # noqa: E402
from csgm.operators import Noise, build_operator  # noqa: E402
from csgm.recovery.paths import resolve_checkpoint  # noqa: E402


def environment(threads: int, device: str) -> dict[str, Any]:
    """Record what the numbers were measured on."""
    info = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or "unknown", "threads": threads, "device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def timed(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    """(result, seconds), synchronising CUDA around the call."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def mnist_problem(checkpoint: str, count: int, m: int, noise_std: float = 0.1, seed: int = 0, split: str = "test",
                  device: str = "cpu"):
    """(G, A, x, y, ids): the paper's MNIST protocol on the first ``count`` images of a split."""
    generator, _ = load_generator(resolve_checkpoint(checkpoint, ROOT / "outputs"))
    dataset = load_splits({"name": "mnist10k", "val_size": 1000, "test_size": 1000, "split_seed": 0})[split]
    ids = list(range(count))
    x = torch.stack([dataset[i][0] for i in ids])
    operator = build_operator({"name": "gaussian"}, generator.image_shape, seed=seed, m=m)
    y = MeasurementModel(operator, Noise("gaussian", noise_std), seed).measure(x, ids)
    return generator.to(device), operator.to(device), x.to(device), y.to(device), ids


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=1))
