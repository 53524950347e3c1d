"""The training sampler: PyTorch's shuffling order, with each epoch's seed remembered so that an epoch can resume."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import RandomSampler

__all__ = ["ResumableRandomSampler"]


class ResumableRandomSampler(RandomSampler):
    """``RandomSampler(data)`` (no replacement) in exactly its order: each epoch's permutation comes from a seed drawn
    from the global torch RNG. The seed is kept in ``epoch_seed``; ``resume_at(seed, skip)`` makes the next epoch
    replay that permutation from position ``skip`` (an epoch interrupted after ``skip`` samples)."""

    def __init__(self, data_source) -> None:
        super().__init__(data_source)
        self.epoch_seed: int | None = None
        self._resume: tuple[int, int] | None = None

    def resume_at(self, seed: int, skip: int) -> None:
        """Start the next epoch with the permutation of ``seed``, leaving out its first ``skip`` indices."""
        self._resume = (int(seed), int(skip))

    def __iter__(self) -> Iterator[int]:
        if self._resume is None:
            seed, skip = int(torch.empty((), dtype=torch.int64).random_().item()), 0  # RandomSampler's own draw
        else:
            (seed, skip), self._resume = self._resume, None
        self.epoch_seed = seed
        order = torch.randperm(len(self.data_source), generator=torch.Generator().manual_seed(seed))
        yield from order[skip:].tolist()
