"""The gradient of the latent objective, eager (autograd) or compiled (torch.compile of a torch.func transform).

The compiled form fuses the elementwise work around the generator's matrix products (activations, their
derivatives, the residual) into a few kernels; on the paper's MNIST VAE it was 1.02-1.10x faster on one
CPU core across runs (benchmarks/speed.py). Shapes are dynamic, so restarts leaving the batch never
recompile; a new operator shape (another m) or new solver weights recompile once (a fraction of a second).
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from csgm.errors import CsgmError

__all__ = ["Objective", "latent_gradient"]

# objective(z, y, measurement, generator, deviation) -> (per-sample objective, measurement loss, residual)
Objective = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
_RECOMPILE_LIMIT = 256  # distinct measurement shapes and solver weights one process may compile for


def _eager(objective: Objective, z, y, measurement, generator, deviation):
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        total, _, residual = objective(z, y, measurement, generator, deviation)
        (grad,) = torch.autograd.grad(total.sum(), z)
    return grad, total.detach(), residual.detach()


def _functional(objective: Objective, z, y, measurement, generator, deviation):
    def summed(z: torch.Tensor):
        total, _, residual = objective(z, y, measurement, generator, deviation)
        return total.sum(), (total, residual)

    grad, (_, (total, residual)) = torch.func.grad_and_value(summed, has_aux=True)(z)
    return grad, total, residual


@functools.cache
def _compiled() -> Callable:
    """One compiled function per process: its cache of compiled graphs serves every solver."""
    return torch.compile(_functional, dynamic=True)


def _recompile_limit_option() -> str:
    config = torch._dynamo.config
    return "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.7


def latent_gradient(
    objective: Objective,
    z: torch.Tensor,
    y: torch.Tensor,
    measurement,
    generator,
    deviation: torch.Tensor | None,
    compile: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(d sum(objective) / dz, per-sample objective, residual)`` for a batch of latents z."""
    if not compile:
        return _eager(objective, z, y, measurement, generator, deviation)
    try:
        with torch._dynamo.config.patch(**{_recompile_limit_option(): _RECOMPILE_LIMIT}):
            return _compiled()(objective, z, y, measurement, generator, deviation)
    except torch._dynamo.exc.BackendCompilerFailed as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CsgmError(
            f"solver.compile=true could not compile the objective on {z.device.type} ({reason}); "
            "it needs a C++ compiler on CPU (or Triton on GPU): install one or set solver.compile=false"
        ) from exc
