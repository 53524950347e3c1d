"""A torch file of stacked per-(m, image id) tensors, built item by item without holding the items in memory."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from csgm.files import temporary_file

__all__ = ["StackedFile"]


class StackedFile:
    """``{"keys": (N, 2) long, name: (N, ...) per name}`` for ``target``, the rows in the order of ``keys``.

    Each name's stack lives in a memory-mapped temporary file beside ``target`` (never read as a result), filled by
    ``put`` a batch of items at a time, so the process holds no copy of the N items (the kernel pages the mapping out as it
    needs); ``finish`` saves the torch file, as ``torch.save`` of the stacked tensors would, to a temporary name for
    ``atomic_write_files`` and removes the buffers. A name given in ``empty`` and never put is saved as that tensor.
    """

    def __init__(self, target: Path, keys: list[tuple[int, int]], empty: dict[str, torch.Tensor] | None = None) -> None:
        self.target, self.keys, self.empty = Path(target), keys, dict(empty or {})
        self.stacks: dict[str, torch.Tensor] = {}
        self._buffers: list[Path] = []

    def put(self, name: str, indices: list[int], values: torch.Tensor) -> None:
        """Store ``values`` (one item per index, every item of a name shaped alike) as items ``indices`` of ``name``."""
        if name not in self.stacks:
            shape = tuple(values.shape[1:])
            buffer = temporary_file(self.target.with_name(f"{self.target.stem}-{name}.buffer"))
            self._buffers.append(buffer)
            count = len(self.keys) * int(torch.Size(shape).numel())
            _reserve(buffer, count * values.element_size(), self.target)
            self.stacks[name] = torch.from_file(str(buffer), shared=True, size=count, dtype=values.dtype).view(
                len(self.keys), *shape
            )
        self.stacks[name][torch.tensor(indices, dtype=torch.long)] = values

    def finish(self) -> Path:
        """The complete, synced torch file under a temporary name beside ``target``; the buffers are removed."""
        out = temporary_file(self.target)
        try:
            keys = torch.tensor(self.keys, dtype=torch.long).view(-1, 2)
            torch.save({"keys": keys, **self.empty, **self.stacks}, out)
            with open(out, "rb+") as handle:
                os.fsync(handle.fileno())
            return out
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the buffers (the items put so far are lost)."""
        self.stacks.clear()
        for buffer in self._buffers:
            buffer.unlink(missing_ok=True)
        self._buffers.clear()


def _reserve(path: Path, size: int, target: Path) -> None:
    """Give ``path`` its ``size`` bytes on disk before it is memory-mapped: a full disk is then an OSError naming
    ``target`` here, not a SIGBUS when a page of the mapping is written."""
    with open(path, "rb+") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(target)) from None
