"""A recovery, assembled once: ``RecoverySpec.from_config(cfg)`` checks the config and builds every object the run
needs (solver, noise, data, generator and its digest, input source, operators per m, measurement models,
arithmetic, labels) before any work; ``identity()`` is the one identity that names the run folder (the Hydra
resolver computes the same function from the config), fills ``identity.json`` and keys the tuning cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from csgm.checks import check_recover_config
from csgm.cli import plain
from csgm.data import load_splits
from csgm.errors import CsgmError
from csgm.generators import Generator
from csgm.generators.checkpoint import check_generator_name, check_trained_on, load_generator
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_noise
from csgm.recovery.identity import run_identity
from csgm.recovery.quick import quick_config
from csgm.recovery.paths import resolve_checkpoint, uses_generator
from csgm.recovery.sources import InputSource, input_source
from csgm.solvers import Solver, build_solver

__all__ = ["RecoverySpec"]


def _load_generator(cfg: dict) -> tuple[Generator | None, dict]:
    if not uses_generator(cfg):
        return None, {"digest": None}
    checkpoint = resolve_checkpoint(cfg["checkpoint"], cfg["paths"]["output_root"])
    if checkpoint is None:
        raise CsgmError(
            f"solver {cfg['solver']['name']!r} needs a generator: pass checkpoint=PATH or checkpoint=latest"
        )
    generator, meta = load_generator(checkpoint)
    if cfg.get("generator") is not None:  # an experiment shared with train.py names it; it must be the checkpoint's
        check_generator_name(checkpoint, meta, cfg["generator"]["name"])
    return generator, {**meta, "checkpoint": checkpoint}


@dataclass(frozen=True)
class RecoverySpec:
    """Everything one recovery run needs, built and checked (``cfg`` is the resolved config it came from)."""

    cfg: dict
    solver: Solver
    noise: Noise
    splits: dict
    generator: Generator | None
    generator_meta: dict
    source: InputSource
    measurements: tuple[MeasurementModel, ...]
    arithmetic: tuple[str, str]  # (trainer.precision, matmul_precision): the solver's arithmetic
    solver_label: str  # results take the solver's own label (Solver.label: what ran)

    @classmethod
    def from_config(cls, cfg: Any) -> RecoverySpec:
        """Check ``cfg`` (one line per problem) and build the run's objects, in the order their errors are reported."""
        cfg = plain(cfg)
        check_recover_config(cfg)
        cfg = quick_config(cfg)
        torch.manual_seed(cfg["seed"])
        solver = build_solver(cfg["solver"])
        noise = build_noise(cfg["noise"])
        splits = load_splits(cfg["dataset"])
        generator, meta = _load_generator(cfg)
        source = input_source(cfg, splits, generator, meta)
        if generator is not None and (source.reads_dataset or solver.needs_tuning):  # G sees the dataset's images
            check_trained_on(meta["checkpoint"], meta, cfg["dataset"]["name"])
        measurements = tuple(MeasurementModel(operator, noise, cfg["seed"]) for operator in source.operators)
        source.check_measurements(measurements)
        for operator in source.operators:
            solver.check_operator(operator)
        return cls(
            cfg,
            solver,
            noise,
            splits,
            generator,
            meta,
            source,
            measurements,
            (cfg["trainer"]["precision"], cfg["matmul_precision"]),
            solver.label,
        )

    def identity(self) -> dict[str, Any]:
        """What determines the run's per-image results (csgm.recovery.identity.run_identity)."""
        return run_identity(self.cfg, self.generator_meta["digest"])
