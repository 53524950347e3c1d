"""Measurement noise: none, Gaussian, heavy-tailed Student-t; seeded per (run seed, operator, m, image id)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from csgm.errors import check_choice, check_range
from csgm.options import instantiate, resolve_target
from csgm.seeding import derive_seed

__all__ = ["Noise", "build_noise", "noise_class", "NOISES"]

NOISES = ("none", "gaussian", "student_t")


class Noise(nn.Module):
    """Adds i.i.d. noise to measurements. Each image's noise comes from its own seed
    (seed, operator, m, image id), so it does not depend on batch size, rank or device.
    """

    def __init__(self, kind: str = "gaussian", std: float = 0.1, df: float = 3.0) -> None:
        super().__init__()
        check_choice("noise", kind, NOISES)
        if kind != "none":
            check_range("noise.std", std, 0)
        if kind == "student_t":
            check_range("noise.df", df, 0, low_open=True)
        self.kind, self.std, self.df = kind, float(std), float(df)

    @property
    def is_zero(self) -> bool:
        return self.kind == "none" or self.std == 0.0

    def sample(self, size: int, image_ids: Sequence[int], key: tuple) -> torch.Tensor:
        """(len(image_ids), size) float64 noise on the CPU."""
        rows = []
        for image_id in image_ids:
            rng = np.random.default_rng(derive_seed("noise", *key, int(image_id)))
            if self.kind == "student_t":
                rows.append(self.std * rng.standard_t(self.df, size))
            else:
                rows.append(self.std * rng.standard_normal(size))
        return torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, size, dtype=torch.float64)

    def forward(self, y: torch.Tensor, image_ids: Sequence[int], key: tuple) -> torch.Tensor:
        """y + noise, with ``key`` = (seed, operator name, m)."""
        if self.is_zero:
            return y
        return y + self.sample(y.shape[1], image_ids, key).to(device=y.device, dtype=y.dtype)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, std={self.std}" + (f", df={self.df}" if self.kind == "student_t" else "")


def noise_class(cfg: dict) -> tuple[type[Noise], dict]:
    """The class of a conf/noise entry and the arguments the entry's name fixes: ``Noise`` with
    ``kind=name``, or a user's Noise subclass by ``_target_`` (no fixed arguments)."""
    if "_target_" in cfg:
        return resolve_target("noise", cfg, {}, Noise), {}
    check_choice("noise", cfg.get("name"), NOISES)
    return Noise, {"kind": cfg["name"]}


def build_noise(cfg: dict) -> Noise:
    """Noise from a conf/noise entry: {name, std, df}, or a user's Noise subclass by ``_target_``."""
    cls, fixed = noise_class(cfg)
    return instantiate("noise.", cls, cfg, **fixed)
