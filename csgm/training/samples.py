"""A callback that saves a grid of samples from a fixed latent batch after every epoch."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torchvision.utils import make_grid, save_image

from csgm.files import atomic_path
from csgm.seeding import seeded_rng

__all__ = ["SampleGrid"]


class SampleGrid(pl.Callback):
    """Writes ``samples.png`` (latest) and ``samples/epoch_XXXX.png`` from G(z_fixed); logs it to W&B if used."""

    def __init__(self, out_dir: str | Path, num_samples: int = 64, seed: int = 0) -> None:
        self.out_dir = Path(out_dir)
        self.num_samples = num_samples
        self.seed = seed
        self.latest: Path = self.out_dir / "samples.png"

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        generator = module.trained_generator()
        z = generator.sample_latents(self.num_samples, seeded_rng("samples", self.seed))
        was_training = generator.training
        generator.eval()
        images = generator(z.to(module.device)).cpu()
        generator.train(was_training)
        grid = make_grid(images, nrow=int(self.num_samples**0.5), padding=2, pad_value=1.0)
        (self.out_dir / "samples").mkdir(parents=True, exist_ok=True)
        save_image(grid, self.out_dir / "samples" / f"epoch_{trainer.current_epoch:04d}.png")
        with atomic_path(self.latest) as tmp:
            save_image(grid, tmp)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image("samples", images=[grid], step=trainer.global_step)
