"""Fixtures: offline, CPU-only, deterministic; a tiny trained VAE checkpoint shared by the session."""

from __future__ import annotations

import os

os.environ.setdefault("WANDB_MODE", "disabled")

import pytest
import torch

from tests.helpers import TINY_TRAIN, compose_config

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def vae_checkpoint(tmp_path_factory) -> str:
    """A VAE trained for a few hundred steps on the bundled MNIST (seconds on CPU)."""
    from csgm.training.run import train

    run_dir = tmp_path_factory.mktemp("vae_run")
    cfg = compose_config("train", [*TINY_TRAIN, "trainer.max_epochs=4", "trainer.limit_train_batches=40"])
    return train(cfg, run_dir)["checkpoint"]


@pytest.fixture(scope="session")
def diffusion_checkpoint(tmp_path_factory) -> str:
    """A tiny diffusion prior trained for a few steps (its quality does not matter: recovery plumbing only)."""
    from csgm.training.run import train
    from tests.helpers import TINY_GENERATORS

    run_dir = tmp_path_factory.mktemp("diffusion_run")
    cfg = compose_config("train", [*TINY_TRAIN, "generator=diffusion", *TINY_GENERATORS["diffusion"]])
    return train(cfg, run_dir)["checkpoint"]
