"""What a recovery shows a person on the console (rank 0 only): the plan before any work, the options the
validation search chose per m, and one progress line while the solver runs (m, images done, solver steps,
elapsed time and an estimate of the time left)."""

from __future__ import annotations

import sys
import time
from typing import Any, Sequence, TextIO

import pytorch_lightning as pl

from csgm.progress import listening

__all__ = ["ProgressLine", "plan_line", "choices_line"]


def plan_line(
    solver: str, operator: str, noise: str, ms: Sequence[int], count: int, source: str, todo: int, run_dir: Any
) -> str:
    """One line: what the run will do and where it writes, before the first (slow) step."""
    work = "all done, merging" if todo == 0 else f"{todo} (m, image) pairs to solve"
    return (
        f"csgm: {solver} | {operator} | {noise} | m = {', '.join(map(str, ms))} | {count} {source} images | "
        f"{work} -> {run_dir}"
    )


def choices_line(chosen: Sequence[tuple[int, dict]]) -> str:
    """One line: the options the validation search chose per m, e.g. ``lambda_l1 = 0.01 (m = 25), ...``."""
    parts = [
        ", ".join(
            f"{key} = {value:g}" if isinstance(value, float) else f"{key} = {value}" for key, value in options.items()
        )
        + f" (m = {m})"
        for m, options in chosen
        if options
    ]
    return "csgm: chosen on validation images: " + "; ".join(parts)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressLine(pl.Callback):
    """One console line, rewritten in place at most every ``interval`` seconds: the m values of the batch being
    solved, images done of the run's total, the solver's step, the time so far and an estimate of the time left
    (from the fraction of images done, counting the running batch by its solver steps)."""

    def __init__(self, ms: Sequence[int], total: int, stream: TextIO | None = None, interval: float = 0.5) -> None:
        self.ms, self.total, self.interval = list(ms), int(total), float(interval)
        self.stream = stream if stream is not None else sys.stderr
        self.done, self.started, self.shown_at = 0, 0.0, 0.0
        self._batch: tuple[str, int] = ("", 0)
        self._listening: Any = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_predict_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        _, ids, grid_index = batch
        ms = ", ".join(str(self.ms[j]) for j in sorted(set(grid_index.tolist())))
        self._batch = (ms, len(ids))
        if trainer.is_global_zero:
            self._listening = listening(self.steps)
            self._listening.__enter__()
            self.steps(0, 0, force=True)

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.done += self._batch[1]
        self._batch = (self._batch[0], 0)
        if self._listening is not None:
            self._listening.__exit__(None, None, None)
            self._listening = None
            self.steps(1, 1, force=True)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and self.shown_at:
            self.stream.write("\n")
            self.stream.flush()

    def steps(self, step: int, total: int, force: bool = False) -> None:
        """The running solve is at ``step`` of ``total``: rewrite the line (throttled)."""
        now = time.perf_counter()
        if not force and now - self.shown_at < self.interval:
            return
        self.shown_at = now
        ms, count = self._batch
        within = count * min(step / max(total, 1), 1.0)
        fraction = min((self.done + within) / max(self.total, 1), 1.0)
        elapsed = now - self.started
        left = f", {_clock(elapsed * (1 - fraction) / fraction)} left" if 0 < fraction < 1 else ""
        solving = (f" | m = {ms}: " + (f"step {step}/{total}" if total else "starting")) if count else ""
        self.stream.write(f"\rrecovered {self.done}/{self.total}{solving} | {_clock(elapsed)}{left}\033[K")
        self.stream.flush()
