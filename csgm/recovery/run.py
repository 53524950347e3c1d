"""One recovery job: checkpoint + test images + operator/noise/solver + m grid -> results store, plot, grids."""

from __future__ import annotations

import io
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from filelock import FileLock, Timeout
from torch.utils.data import DataLoader, Dataset, Subset

from csgm.cli import plain
from csgm.checks import check_recover_config
from csgm.data import load_splits
from csgm.errors import CsgmError
from csgm.files import atomic_write_files
from csgm.generators import Generator
from csgm.generators.checkpoint import load_generator
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_noise, build_operator
from csgm.precision import lightning_precision, precision_identity, solver_arithmetic
from csgm.recovery.grid import measurement_grid
from csgm.recovery.measured import MeasuredItems, load_array, measured_operator
from csgm.recovery.module import RecoveryModule, WorkItems, gen_span_images
from csgm.recovery.paths import check_identity, resolve_checkpoint, results_defining, run_identity, uses_generator
from csgm.recovery.store import ResultsStore, tensor_bytes
from csgm.recovery.tuning import tune_per_m
from csgm.recovery.writer import ShardWriter
from csgm.reporting.plots import error_curves_png, image_png, image_rows_png
from csgm.reporting.sweep import register_run
from csgm.reporting.wandb_log import log_recovery_to_wandb
from csgm.solvers import Solver, build_solver
from csgm.trainer import build_trainer

__all__ = ["recover"]



def _images(cfg: dict, splits: dict) -> Subset:
    split = "test" if cfg["input"] == "gen_span" else cfg["input"]
    dataset = splits[split]
    count = cfg["num_images"]
    if not 1 <= count <= len(dataset):
        raise CsgmError(f"num_images={count} is out of range; the {split} split of {cfg['dataset']['name']} has {len(dataset)} images")
    return Subset(dataset, range(count))


def _originals_payload(originals: Callable[[list[int]], torch.Tensor], count: int) -> dict[str, torch.Tensor]:
    """The first ``count`` ground-truth images with their ids (``originals.pt``) for grids and reports."""
    ids = list(range(count))
    images = originals(ids).detach().cpu().float() if count else torch.zeros(0)
    return {"ids": torch.tensor(ids, dtype=torch.long), "images": images}


def _grid_rows(x_hat: dict[tuple[int, int], torch.Tensor], originals: dict[str, torch.Tensor],
               original_label: str) -> tuple[list[torch.Tensor], list[str]]:
    """Originals on top, then one row per m of this run (an m shown only when all shown images are done),
    with the row labels."""
    ids = originals["ids"].tolist()
    if not ids:
        return [], []
    rows, labels = [originals["images"]], [original_label]
    for m in sorted({m for m, _ in x_hat}):
        if all((m, i) in x_hat for i in ids):
            rows.append(torch.stack([x_hat[(m, i)] for i in ids]))
            labels.append(f"m = {m}")
    return (rows, labels) if len(rows) > 1 else ([], [])


def _posterior_rows(merged, originals: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[str]]:
    """For samplers: originals on top, then per m the posterior mean, two samples and the std map (scaled to
    its maximum over the shown images, which the label gives)."""
    ids = originals["ids"].tolist()
    rows, labels = [originals["images"]], ["original"]
    for m in sorted({m for m, _ in merged.posterior}):
        if not ids or not all((m, i) in merged.posterior for i in ids):
            continue
        rows.append(torch.stack([merged.x_hat[(m, i)] for i in ids]))
        labels.append(f"m = {m}: mean")
        samples = torch.stack([merged.posterior[(m, i)]["samples"] for i in ids])
        for s in range(min(2, samples.shape[1])):
            rows.append(samples[:, s])
            labels.append("sample")
        std = torch.stack([merged.posterior[(m, i)]["pixel_std"] for i in ids])
        peak = float(std.max()) or 1.0
        rows.append(std / peak)
        labels.append(f"std (max {peak:.2f})")
    return (rows, labels) if len(rows) > 1 else ([], [])


@contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock (rank 0 of a cluster job only): a second identical command waits for the
    first one, then finds its work done; nothing is computed twice."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"csgm: run folder {str(run_dir)!r} is busy (another recover.py is writing it); waiting for it to finish",
              file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@dataclass
class _Source:
    """What a run recovers: ``count`` images (ids 0..count-1), the work items for (grid index, id) pairs, and
    the ground truth by ids (None for a user's own measurements)."""

    count: int
    items: Callable[[list[tuple[int, int]]], Dataset]
    originals: Callable[[list[int]], torch.Tensor] | None


def _load_generator(cfg: dict) -> tuple[Generator | None, dict]:
    if not uses_generator(cfg):
        return None, {"digest": None}
    checkpoint = resolve_checkpoint(cfg["checkpoint"], cfg["paths"]["output_root"])
    if checkpoint is None:
        raise CsgmError(f"solver {cfg['solver']['name']!r} needs a generator: pass checkpoint=PATH or checkpoint=latest")
    generator, meta = load_generator(checkpoint)
    return generator, {**meta, "checkpoint": checkpoint}


def _dataset_source(cfg: dict, splits: dict, generator: Generator | None, meta: dict) -> tuple[_Source, tuple, list]:
    """Test/val images of the dataset (or G(z*) for gen_span), measured with every m of the grid."""
    images = _images(cfg, splits)
    image_shape = tuple(images[0][0].shape)
    if generator is not None and tuple(generator.image_shape) != image_shape:
        raise CsgmError(f"checkpoint {meta['checkpoint']!r} makes {'x'.join(map(str, generator.image_shape))} images "
                        f"(trained on {meta['dataset']!r}) but dataset {cfg['dataset']['name']!r} has "
                        f"{'x'.join(map(str, image_shape))}; use a checkpoint trained on this dataset")
    operators: list = []
    for m in measurement_grid(cfg["measurements"], cfg["operator"]):  # one operator per m count (0.5 and 392 are one m)
        operator = build_operator(cfg["operator"], image_shape, cfg["seed"], m)
        if all(operator.m != other.m for other in operators):
            operators.append(operator)
    if cfg["input"] == "gen_span":
        originals = lambda ids: gen_span_images(generator, ids, cfg["seed"])  # noqa: E731
    else:
        originals = lambda ids: torch.stack([images[i][0] for i in ids])  # noqa: E731
    return _Source(len(images), lambda pairs: WorkItems(images, pairs), originals), image_shape, operators


def _file_source(cfg: dict, splits: dict, generator: Generator | None) -> tuple[_Source, tuple, list]:
    """A user's own measurements: rows of ``file.y``, A from ``file.matrix`` or the operator config; the
    image shape is the generator's (or the dataset's, for solvers without one)."""
    y = load_array(cfg["file"].get("y"), "file.y")
    if cfg["num_images"] > len(y):
        raise CsgmError(f"num_images={cfg['num_images']} but file.y has {len(y)} rows (one per image); "
                        f"set num_images={len(y)} or fewer")
    image_shape = tuple(generator.image_shape) if generator is not None else tuple(splits["test"][0][0].shape)
    grid = measurement_grid(cfg["measurements"], cfg["operator"])
    operator = measured_operator(cfg["file"], cfg["operator"], grid, image_shape, cfg["seed"], y)
    items = lambda pairs: MeasuredItems(y, [i for _, i in pairs])  # noqa: E731
    return _Source(cfg["num_images"], items, None), image_shape, [operator]


def recover(cfg: Any, run_dir: str | Path) -> dict[str, Any]:
    """Run the configured recovery grid; returns the summary rows and the paths written."""
    cfg = plain(cfg)
    check_recover_config(cfg)
    run_dir = Path(run_dir)
    torch.manual_seed(cfg["seed"])
    solver = build_solver(cfg["solver"])
    noise = build_noise(cfg["noise"])
    splits = load_splits(cfg["dataset"])
    generator, meta = _load_generator(cfg)
    if cfg["input"] == "file":
        source, image_shape, operators = _file_source(cfg, splits, generator)
    else:
        source, image_shape, operators = _dataset_source(cfg, splits, generator, meta)
    measurements = [MeasurementModel(operator, noise, cfg["seed"]) for operator in operators]  # refuses misfits in one line
    for operator in operators:
        solver.check_operator(operator)
    with _run_lock(run_dir):
        check_identity(run_dir, run_identity(cfg, meta["digest"]))
        return _run(cfg, run_dir, solver, noise, splits, source, image_shape, generator, meta["digest"], measurements)


def _tuned(cfg: dict, solver: Solver, measurements: list[MeasurementModel], splits: dict, image_shape: tuple,
           generator: Generator | None, digest: str | None, device: torch.device,
           arithmetic: tuple[str, str]) -> list[tuple[Solver, dict]]:
    """The validation search's (solver, choice) per measurement model, run on the job's device in its arithmetic
    (G and the operators go back to the CPU afterwards, where the trainer expects them)."""
    val_count = min(cfg["tuning"]["num_images"], len(splits["val"]))
    val_images = torch.stack([splits["val"][i][0] for i in range(val_count)]) if val_count else torch.zeros(0, *image_shape)
    context = {"solver": results_defining({k: v for k, v in cfg["solver"].items() if k != "label"}), "dataset": cfg["dataset"],
               "operator": cfg["operator"], "noise": cfg["noise"], "generator": digest, "precision": precision_identity(*arithmetic)}
    modules = [module for module in (generator, *(model.operator for model in measurements)) if module is not None]
    try:
        for module in modules:
            module.to(device)
        with solver_arithmetic(*arithmetic, device=device):
            return tune_per_m(solver, measurements, val_images.to(device), generator, cfg["seed"],
                              Path(cfg["paths"]["output_root"]) / "tuning", context, cfg["tuning"]["halving_every"])
    finally:
        for module in modules:
            module.to("cpu")


def _run(cfg: dict, run_dir: Path, solver: Solver, noise: Noise, splits: dict, source: _Source, image_shape: tuple,
         generator: Generator | None, digest: str | None, measurements: list[MeasurementModel]) -> dict[str, Any]:
    """The work of ``recover`` once the run folder is locked and its identity checked."""
    operators = [model.operator for model in measurements]
    store = ResultsStore(run_dir)
    done = store.done()
    pairs = [(j, i) for j, op in enumerate(operators) for i in range(source.count) if (op.m, i) not in done]
    pending = sorted({j for j, _ in pairs})  # only m values with work left need their hyperparameters
    arithmetic = (cfg["trainer"]["precision"], cfg["matmul_precision"])
    trainer = build_trainer({**cfg["trainer"], "precision": lightning_precision(arithmetic[0])}, inference_mode=False,
                            logger=False, default_root_dir=str(run_dir), callbacks=[ShardWriter(store)],
                            enable_checkpointing=False)
    settings = [(solver, {})] * len(operators)
    if solver.needs_tuning and pending:
        tuned = _tuned(cfg, solver, [measurements[j] for j in pending], splits, image_shape, generator, digest,
                       trainer.strategy.root_device, arithmetic)
        for j, setting in zip(pending, tuned):
            settings[j] = setting
    labels = {"solver": cfg["solver"].get("label") or cfg["solver"].get("name"), "noise": cfg["noise"].get("name", "noise")}
    module = RecoveryModule(generator, settings, measurements, cfg["seed"], cfg["input"], labels=labels, arithmetic=arithmetic)
    if pairs:
        loader = DataLoader(source.items(pairs), batch_size=cfg["batch_size"], shuffle=False, num_workers=cfg["num_workers"])
        trainer.predict(module, dataloaders=loader, return_predictions=False)
    if not trainer.is_global_zero:
        return {}
    requested_m = {op.m for op in operators}
    merged = store.merge(lambda m, image_id: m in requested_m and image_id < source.count)
    paths = {"results": run_dir / "results.csv", "summary": run_dir / "summary.csv"}
    files = merged.files(run_dir)
    shown_ids = list(range(min(cfg["save_images"], source.count)))
    grid_title = f"{labels['solver']}, {operators[0].name} operator, {noise.label}"
    if source.originals is not None:
        shown = _originals_payload(source.originals, len(shown_ids))
        grid_rows, grid_labels = _grid_rows(merged.x_hat, shown, "G(z*)" if cfg["input"] == "gen_span" else "original")
        paths["curve"] = run_dir / "error_vs_m.png"
        files.update({run_dir / "originals.pt": tensor_bytes(shown), paths["curve"]: error_curves_png(merged.summary)})
    else:  # no ground truth: the estimates alone, as one array and one PNG per image
        m = operators[0].m
        estimates = torch.stack([merged.x_hat[(m, i)] for i in range(source.count)])
        grid_rows, grid_labels = ([estimates[shown_ids]], [f"x̂ (m = {m})"]) if shown_ids else ([], [])
        paths["estimates"] = run_dir / "x_hat.npy"
        files[paths["estimates"]] = _npy_bytes(estimates)
        files.update({run_dir / "images" / f"x_hat_{i:05d}.png": image_png(estimates[i]) for i in range(source.count)})
    if grid_rows:
        paths["recovery_grid"] = run_dir / "grid.png"
        files[paths["recovery_grid"]] = image_rows_png(grid_rows, grid_labels, grid_title)
    if merged.posterior and source.originals is not None:
        posterior_rows, posterior_labels = _posterior_rows(merged, shown)
        if posterior_rows:
            paths["posterior_grid"] = run_dir / "posterior_grid.png"
            files[paths["posterior_grid"]] = image_rows_png(posterior_rows, posterior_labels, grid_title)
    atomic_write_files(files)  # every output changes together: none is ever stale relative to results.csv
    if not grid_rows:
        (run_dir / "grid.png").unlink(missing_ok=True)
    if cfg.get("report_name"):
        register_run(cfg, run_dir, sorted(requested_m), source.count)
    if cfg["logger"]["name"] == "wandb":
        log_recovery_to_wandb(cfg["logger"], run_dir, cfg, merged.summary,
                              {k: v for k, v in paths.items() if str(v).endswith(".png")})
    return {"summary": merged.summary, "rows": len(merged.rows), "paths": paths}


def _npy_bytes(array: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array.numpy())
    return buffer.getvalue()
