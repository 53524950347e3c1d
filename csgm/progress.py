"""Progress a person can read: a solver's loop reports its steps, whoever runs the solver shows them.

Solvers call :func:`report_steps` once per iteration of their main loop; it does nothing unless the caller
installed a listener with :func:`listening` (the recovery's progress line does, for the batch it is solving).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

__all__ = ["report_steps", "listening"]

_LISTENER: contextvars.ContextVar[Callable[[int, int], None] | None] = contextvars.ContextVar(
    "csgm_progress", default=None
)


def report_steps(done: int, total: int) -> None:
    """``done`` of ``total`` steps of the running solve are finished (a no-op when nobody listens)."""
    listener = _LISTENER.get()
    if listener is not None:
        listener(done, total)


@contextlib.contextmanager
def listening(listener: Callable[[int, int], None]) -> Iterator[None]:
    """Within the block, the solvers' :func:`report_steps` calls go to ``listener(done, total)``."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)
