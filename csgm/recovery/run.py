"""One recovery job: ``run(spec, run_dir)`` solves the spec's grid into the run folder's results store (locked, its
identity checked, resumed) and returns the result; ``recover`` is the whole command: spec, run, artifacts."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from filelock import FileLock, Timeout
from torch.utils.data import DataLoader

from csgm.measurement import MeasurementModel
from csgm.precision import lightning_precision, solver_arithmetic
from csgm.recovery.console import ProgressLine, choices_line, plan_line
from csgm.recovery.module import RecoveryModule
from csgm.recovery.identity import check_identity, tuning_context
from csgm.recovery.result import RecoveryResult
from csgm.recovery.spec import RecoverySpec
from csgm.recovery.store import ResultsStore
from csgm.recovery.tuning import tune_per_m
from csgm.recovery.writer import ShardWriter
from csgm.reporting.artifacts import write_artifacts
from csgm.solvers import Solver
from csgm.trainer import build_trainer

__all__ = ["recover", "run"]


def recover(cfg: Any, run_dir: str | Path) -> dict[str, Any]:
    """Run the configured recovery grid and write its tables and artifacts; returns the summary rows and the paths
    written (empty on the other ranks of a cluster job)."""
    spec = RecoverySpec.from_config(cfg)
    result = run(spec, run_dir)
    if result is None:
        return {}
    try:
        paths = write_artifacts(spec.cfg, result)
    except BaseException:
        for data in result.files.values():  # the merge's complete temporary files that never took their place
            if isinstance(data, Path):
                data.unlink(missing_ok=True)
        raise
    return {"summary": result.merged.summary, "rows": len(result.merged.rows), "paths": paths}


def _rank_zero() -> bool:
    """Whether this process is rank 0 of its job (always, outside a cluster job): the one that prints and locks."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock (rank 0 of a cluster job only): a second identical command waits for the
    first one, then finds its work done; nothing is computed twice."""
    if not _rank_zero():
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(
            f"csgm: run folder {str(run_dir)!r} is busy (another recover.py is writing it); waiting for it to finish",
            file=sys.stderr,
            flush=True,
        )
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def run(spec: RecoverySpec, run_dir: str | Path) -> RecoveryResult | None:
    """The spec's grid in ``run_dir`` (locked, its identity checked, resumed): the merged results with the table
    files still to write, on rank 0; None on the other ranks."""
    run_dir = Path(run_dir)
    with _run_lock(run_dir):
        identity = spec.identity()
        check_identity(run_dir, identity)
        return _run(spec, run_dir, identity)


def _tuned(
    spec: RecoverySpec, measurements: list[MeasurementModel], identity: dict, device: torch.device
) -> list[tuple[Solver, dict]]:
    """The validation search's (solver, choice) per measurement model, run on the job's device in its arithmetic
    (G and the operators go back to the CPU afterwards, where the trainer expects them)."""
    cfg, splits, generator = spec.cfg, spec.splits, spec.generator
    val_count = min(cfg["tuning"]["num_images"], len(splits["val"]))
    if val_count < cfg["tuning"]["num_images"] and _rank_zero():
        print(
            f"csgm: warning: tuning.num_images={cfg['tuning']['num_images']} but the validation split of "
            f"{cfg['dataset']['name']} has {val_count} images; tuning on those {val_count} (raise dataset.val_size "
            "for more)",
            file=sys.stderr,
            flush=True,
        )
    val_images = (
        torch.stack([splits["val"][i][0] for i in range(val_count)])
        if val_count
        else torch.zeros(0, *spec.source.image_shape)
    )
    context = tuning_context(identity)  # the cache key derives from the run's one identity
    modules = [module for module in (generator, *(model.operator for model in measurements)) if module is not None]
    try:
        for module in modules:
            module.to(device)
        with solver_arithmetic(*spec.arithmetic, device=device):
            return tune_per_m(
                spec.solver,
                measurements,
                val_images.to(device),
                generator,
                cfg["seed"],
                Path(cfg["paths"]["output_root"]) / "tuning",
                context,
                cfg["tuning"]["halving_every"],
            )
    finally:
        for module in modules:
            module.to("cpu")


def _run(spec: RecoverySpec, run_dir: Path, identity: dict) -> RecoveryResult | None:
    """The work of ``run`` once the run folder is locked and its identity checked."""
    cfg, source, measurements = spec.cfg, spec.source, list(spec.measurements)
    operators = [model.operator for model in measurements]
    store = ResultsStore(run_dir)
    done = store.done()
    pairs = [(j, i) for j, op in enumerate(operators) for i in range(source.count) if (op.m, i) not in done]
    pending = sorted({j for j, _ in pairs})  # only m values with work left need their hyperparameters
    shown = cfg["trainer"].get("enable_progress_bar", True) and _rank_zero()
    if shown:
        print(
            plan_line(
                spec.solver_label,
                operators[0].name,
                spec.noise.label,
                [op.m for op in operators],
                source.count,
                cfg["input"],
                len(pairs),
                run_dir,
            ),
            file=sys.stderr,
            flush=True,
        )
    callbacks = [ShardWriter(store), *([ProgressLine([op.m for op in operators], len(pairs))] if shown else [])]
    trainer = build_trainer(
        {**cfg["trainer"], "precision": lightning_precision(spec.arithmetic[0]), "enable_progress_bar": False},
        inference_mode=False,
        logger=False,
        default_root_dir=str(run_dir),
        callbacks=callbacks,
        enable_checkpointing=False,
    )
    settings = [(spec.solver, {})] * len(operators)
    if spec.solver.needs_tuning and pending:
        tuned = _tuned(spec, [measurements[j] for j in pending], identity, trainer.strategy.root_device)
        for j, setting in zip(pending, tuned):
            settings[j] = setting
        if shown:
            print(choices_line([(operators[j].m, settings[j][1]) for j in pending]), file=sys.stderr, flush=True)
    labels = {"solver": spec.solver_label, "noise": cfg["noise"].get("name", "noise")}
    module = RecoveryModule(
        spec.generator, settings, measurements, cfg["seed"], source.mode, labels=labels, arithmetic=spec.arithmetic
    )
    if pairs:  # one loader per m: a batch never spans two m, so an interrupt loses at most one batch of one m
        loaders = [
            DataLoader(
                source.items([pair for pair in pairs if pair[0] == j]),
                batch_size=cfg["batch_size"],
                shuffle=False,
                num_workers=cfg["num_workers"],
            )
            for j in pending
        ]
        trainer.predict(module, dataloaders=loaders, return_predictions=False)
    if not trainer.is_global_zero:
        return None
    requested_m = [op.m for op in operators]
    in_grids = min(cfg["save_images"], source.count)  # estimates kept in memory: those of the grids (all without
    # ground truth: each is written as an image)
    merged = store.merge(
        lambda m, image_id: m in requested_m and image_id < source.count,
        (lambda m, image_id: image_id < in_grids) if source.has_ground_truth else None,
    )
    return RecoveryResult(
        run_dir,
        merged,
        merged.files(run_dir),
        source.count,
        requested_m,
        source.originals if source.has_ground_truth else None,
        source.original_label,
        spec.solver_label,
        operators[0].name,
        spec.noise.label,
        spec.noise.std,
    )
