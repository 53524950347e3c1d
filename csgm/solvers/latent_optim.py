"""Optimisers for the rows of a latent batch with per-row state, so any subset of rows can step alone.

Rows that stopped (stalled, pruned or diverged) leave the batch: the generator is evaluated on the
active rows only, which is where early stopping and successive halving save work. The updates are
those of ``torch.optim.Adam`` / ``SGD`` (with or without momentum), row by row.
"""

from __future__ import annotations

import torch

from csgm.errors import check_choice

__all__ = ["LatentOptimizer", "OPTIMIZERS", "take_rows"]

OPTIMIZERS = ("adam", "sgd", "momentum")


class LatentOptimizer:
    """Adam (betas 0.9, 0.999, eps 1e-8), plain SGD or SGD with momentum on a (N, k) tensor."""

    def __init__(
        self,
        kind: str,
        like: torch.Tensor,
        momentum: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        check_choice("optimizer", kind, OPTIMIZERS)
        self.kind, self.momentum, self.betas, self.eps = kind, momentum, betas, eps
        self.first = torch.zeros_like(like) if kind in ("adam", "momentum") else None
        self.second = torch.zeros_like(like) if kind == "adam" else None
        self.steps = 0

    @torch.no_grad()
    def step(self, z: torch.Tensor, rows: torch.Tensor | None, grad: torch.Tensor, lr: float) -> None:
        """Update ``z[rows]`` (all rows if None) in place from their gradient."""
        self.steps += 1
        if self.kind == "sgd":
            update = lr * grad
        elif self.kind == "momentum":
            buffer = self.momentum * take_rows(self.first, rows) + grad
            _assign(self.first, rows, buffer)
            update = lr * buffer
        else:
            beta1, beta2 = self.betas
            first = beta1 * take_rows(self.first, rows) + (1 - beta1) * grad
            second = beta2 * take_rows(self.second, rows) + (1 - beta2) * grad * grad
            _assign(self.first, rows, first)
            _assign(self.second, rows, second)
            correction1, correction2 = 1 - beta1**self.steps, 1 - beta2**self.steps
            update = (lr / correction1) * first / (second.sqrt() / correction2**0.5 + self.eps)
        _assign(z, rows, take_rows(z, rows) - update)


def take_rows(tensor: torch.Tensor | None, rows: torch.Tensor | None) -> torch.Tensor | None:
    """``tensor[rows]``, or the whole tensor when ``rows`` is None (all rows active)."""
    return tensor if tensor is None or rows is None else tensor[rows]


def _assign(tensor: torch.Tensor, rows: torch.Tensor | None, value: torch.Tensor) -> None:
    if rows is None:
        tensor.copy_(value)
    else:
        tensor[rows] = value
