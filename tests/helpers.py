"""Shared test helpers: compose configs with tiny settings, run the entry points, build fake data."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig
from PIL import Image

from csgm.api import compose
from csgm.recovery.identity import register_resolvers
from tests.preloaded import run_python

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
register_resolvers()

# solver.compile=true needs a C++ compiler on CPU (torch.compile's inductor backend builds C++ kernels)
requires_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "g++")) is None
    and shutil.which("c++") is None
    and shutil.which("clang++") is None,
    reason="solver.compile=true needs a C++ compiler and none is on PATH (install g++, e.g. apt-get install g++)",
)

TINY_TRAIN = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "logger=none",
    "num_samples=4",
]
# every generator config (conf/generator/*.yaml) at a tiny size
TINY_GENERATORS = {
    "vae": ["generator.arch.hidden_dims=[32]"],
    "glo": ["generator.arch.hidden_dims=[32]"],
    "dcgan": ["generator.arch.base_channels=4", "generator.training.disc_base_channels=4"],
    "flow": ["generator.arch.coupling_layers=2", "generator.arch.hidden_channels=8"],
    "diffusion": [
        "generator.arch.channels=[8,8]",
        "generator.arch.norm_groups=4",
        "generator.arch.timesteps=50",
        "generator.arch.sample_steps=3",
    ],
}
TINY_RECOVER = [
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "logger=none",
    "solver.iterations=30",
    "solver.restarts=2",
    "num_images=6",
    "save_images=4",
]


def compose_config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose conf/<name>.yaml with overrides, as Hydra would for the entry point."""
    return compose(name, overrides, CONF)


def conf_options(group: str) -> list[str]:
    """Every option of a config group (file stems of conf/<group>/*.yaml)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def run_script(script: str, *overrides: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python <script> overrides...`` from ``cwd`` offline with W&B disabled; never raises. A preloaded
    Python (tests/preloaded.py) serves it: the same run as a fresh interpreter's, without its seconds of imports."""
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return run_python(str(ROOT / script), list(overrides), cwd=cwd, env=env, timeout=timeout)


def crash_on_solve(monkeypatch: pytest.MonkeyPatch, solver_class: type, call: int) -> dict[str, int]:
    """Make ``solver_class.solve`` raise RuntimeError("simulated crash") on its ``call``-th call. Returns the call
    counter ``{"count": calls so far}``: set it far below ``call`` to count later calls without a crash."""
    calls = {"count": 0}
    original_solve = solver_class.solve

    def crashing_solve(self, *args, **kwargs):
        calls["count"] += 1
        if calls["count"] == call:
            raise RuntimeError("simulated crash")
        return original_solve(self, *args, **kwargs)

    monkeypatch.setattr(solver_class, "solve", crashing_solve)
    return calls


def write_images(
    folder: Path, count: int, size: tuple[int, int], mode: str = "RGB", suffix: str = ".png", seed: int = 0
) -> list[Path]:
    """``count`` random images of ``size`` (width, height) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        path = folder / f"{i:06d}{suffix}"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
        paths.append(path)
    return paths


def make_fake_celeba(root: Path, per_split: tuple[int, int, int] = (8, 3, 3)) -> Path:
    """A tiny tree in torchvision's CelebA layout (178x218 JPEGs + list_eval_partition.txt)."""
    base = root / "celeba"
    total = sum(per_split)
    paths = write_images(base / "img_align_celeba", total, (178, 218), suffix=".jpg")
    labels = [0] * per_split[0] + [1] * per_split[1] + [2] * per_split[2]
    (base / "list_eval_partition.txt").write_text("".join(f"{p.name} {s}\n" for p, s in zip(paths, labels)))
    return root


def summary_lines(result: subprocess.CompletedProcess) -> dict[str, Any]:
    """The 'key value' lines a train.py run prints at the end."""
    out = {}
    for line in result.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            out[parts[0]] = parts[1].strip()
    return out
