"""Diffusion training: the denoising loss falls through the module's own step, the moving average is what is
saved, held-out draws are per image, and train.py writes a checkpoint that rebuilds the prior alone."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from csgm.generators import UNetDiffusion
from csgm.generators.checkpoint import CHECKPOINT_KEY, checkpoint_digest, load_generator
from csgm.training import DiffusionModule
from tests.helpers import TINY_GENERATORS, TINY_TRAIN, run_script, summary_lines
from tests.training.test_learning import digits

ARCH = {"channels": [8, 16], "norm_groups": 4, "timesteps": 100, "sample_steps": 2}


def fixed_loss(module: DiffusionModule, batch: torch.Tensor) -> float:
    t, eps = module.seeded_draws(batch, range(len(batch)), "check")
    with torch.no_grad():
        return float(module.denoising_loss(batch, t, eps).mean())


def test_denoising_loss_falls_through_the_modules_own_step():
    pl.seed_everything(0, verbose=False)
    module = DiffusionModule("diffusion", ARCH, (1, 28, 28), ema_decay=0.9)
    optimizer = module.configure_optimizers()
    batch = digits(64)
    before = fixed_loss(module, batch)
    for _ in range(40):
        loss = module.training_step((batch, torch.arange(64)), 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = fixed_loss(module, batch)
    assert after < 0.5 * before, (before, after)  # ~1.0 (predicting 0 for eps ~ N(0, I)) -> ~0.2


def test_the_moving_average_is_the_saved_generator():
    torch.manual_seed(0)
    module = DiffusionModule("diffusion", ARCH, (1, 8, 8), ema_decay=0.5)
    start = [p.clone() for p in module.ema.parameters()]
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(1.0)
    module.update_average()  # step 0: decay min(0.5, 1 / 10) = 0.1
    for average, weight, first in zip(module.ema.parameters(), module.generator.parameters(), start):
        torch.testing.assert_close(average, 0.1 * first + 0.9 * weight)
    assert module.trained_generator() is module.ema and isinstance(module.ema, UNetDiffusion)


def test_held_out_draws_depend_on_the_image_id_only():
    module = DiffusionModule("diffusion", ARCH, (1, 8, 8))
    x = torch.rand(4, 1, 8, 8)
    t, eps = module.seeded_draws(x, [3, 5, 7, 9], "val")
    t_alone, eps_alone = module.seeded_draws(x[2:3], [7], "val")
    assert int(t[2]) == int(t_alone[0]) and torch.equal(eps[2], eps_alone[0])


def train_tiny_diffusion(tmp_path: Path, *extra: str):
    """train.py on a tiny diffusion prior with a CSV logger; the finished process."""
    overrides = [o for o in TINY_TRAIN if not o.startswith("logger=")]
    return run_script(
        "train.py",
        *overrides,
        "generator=diffusion",
        *TINY_GENERATORS["diffusion"],
        *extra,
        "logger=csv",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )


def test_train_diffusion_end_to_end(tmp_path):
    result = train_tiny_diffusion(tmp_path)
    assert result.returncode == 0, result.stderr
    summary = summary_lines(result)
    assert Path(summary["samples"]).is_file() and 0 < float(summary["test/loss"]) < 2
    generator, meta = load_generator(summary["checkpoint"])
    assert isinstance(generator, UNetDiffusion) and generator.latent_dim == 784 and generator.sample_steps == 3
    assert meta["training"] == "denoising" and meta["digest"] == checkpoint_digest(summary["checkpoint"])
    saved = torch.load(summary["checkpoint"], map_location="cpu", weights_only=True)
    ema = {k[len("ema.") :]: v for k, v in saved["state_dict"].items() if k.startswith("ema.")}
    payload = saved[CHECKPOINT_KEY]["state_dict"]
    assert payload.keys() == ema.keys() and all(torch.equal(payload[k], ema[k]) for k in ema)  # the average is saved


def test_train_diffusion_on_two_cpu_processes(tmp_path):
    """DDP (gloo, 2 processes): both ranks step, rank 0 writes the moving average, and the test loss is the
    held-out one of the checkpoint that rebuilds the prior alone."""
    result = train_tiny_diffusion(tmp_path, "trainer=ddp")
    assert result.returncode == 0, result.stderr
    summary = summary_lines(result)
    assert int(summary["world_size"]) == 2 and int(summary["global_step"]) == 4
    assert 0 < float(summary["test/loss"]) < 2
    generator, meta = load_generator(summary["checkpoint"])
    assert isinstance(generator, UNetDiffusion) and meta["digest"] == checkpoint_digest(summary["checkpoint"])
