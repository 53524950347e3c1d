"""One recovery job: checkpoint + test images + operator/noise/solver + m grid -> results store, plot, grids."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Subset

from csgm.cli import plain
from csgm.data import load_splits
from csgm.errors import CsgmError, check_choice
from csgm.generators.checkpoint import load_generator
from csgm.operators import build_noise, build_operator
from csgm.recovery.grid import measurement_grid
from csgm.recovery.module import RecoveryModule, WorkItems, gen_span_images
from csgm.recovery.paths import resolve_checkpoint
from csgm.files import atomic_write_bytes
from csgm.recovery.store import ResultsStore
from csgm.recovery.tuning import tune_per_m
from csgm.recovery.writer import ShardWriter
from csgm.reporting.loggers import LOGGERS, wandb_options
from csgm.reporting.wandb_log import log_recovery_to_wandb
from csgm.reporting.sweep import register_run
from csgm.reporting.plots import plot_error_curves, save_image_rows
from csgm.solvers import build_solver
from csgm.training.run import build_trainer

__all__ = ["recover", "INPUTS"]

INPUTS = ("test", "val", "gen_span")


def _images(cfg: dict, splits: dict) -> Subset:
    split = "test" if cfg["input"] == "gen_span" else cfg["input"]
    dataset = splits[split]
    count = cfg["num_images"]
    if not 1 <= count <= len(dataset):
        raise CsgmError(f"num_images={count} is out of range; the {split} split of {cfg['dataset']['name']} has {len(dataset)} images")
    return Subset(dataset, range(count))


def _save_originals(store: ResultsStore, originals: Callable[[list[int]], torch.Tensor], count: int) -> dict[str, torch.Tensor]:
    """Store the first ``count`` ground-truth images with their ids (``originals.pt``) for grids and reports."""
    ids = list(range(count))
    payload = {"ids": torch.tensor(ids, dtype=torch.long), "images": originals(ids).detach().cpu().float()}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(store.run_dir / "originals.pt", buffer.getvalue())
    return payload


def _grid_images(store: ResultsStore, originals: dict[str, torch.Tensor]) -> dict[str, Path]:
    """Originals on top, then one row per m of this run."""
    recon = store.reconstructions()
    ids = originals["ids"].tolist()
    rows = [originals["images"]]
    for m in sorted({m for m, _ in recon}):
        if all((m, i) in recon for i in ids):
            rows.append(torch.stack([recon[(m, i)] for i in ids]))
    return {"recovery_grid": save_image_rows(rows, store.run_dir / "grid.png")} if len(rows) > 1 else {}


def recover(cfg: Any, run_dir: str | Path) -> dict[str, Any]:
    """Run the configured recovery grid; returns the summary rows and the paths written."""
    cfg = plain(cfg)
    run_dir = Path(run_dir)
    check_choice("input", cfg["input"], INPUTS)
    check_choice("logger", cfg["logger"]["name"], LOGGERS)
    if cfg["logger"]["name"] == "wandb":
        wandb_options(cfg["logger"])  # a bad W&B mode fails here, before any work
    torch.manual_seed(cfg["seed"])
    solver = build_solver(cfg["solver"])
    noise = build_noise(cfg["noise"])
    splits = load_splits(cfg["dataset"])
    images = _images(cfg, splits)
    image_shape = tuple(images[0][0].shape)
    generator, checkpoint = None, None
    if solver.needs_generator or cfg["input"] == "gen_span":
        checkpoint = resolve_checkpoint(cfg["checkpoint"], cfg["paths"]["output_root"])
        if checkpoint is None:
            raise CsgmError(f"solver {cfg['solver']['name']!r} needs a generator: pass checkpoint=PATH or checkpoint=latest")
        generator, meta = load_generator(checkpoint)
        if tuple(generator.image_shape) != image_shape:
            raise CsgmError(f"checkpoint {checkpoint!r} makes {'x'.join(map(str, generator.image_shape))} images "
                            f"(trained on {meta['dataset']!r}) but dataset {cfg['dataset']['name']!r} has "
                            f"{'x'.join(map(str, image_shape))}; use a checkpoint trained on this dataset")
    grid = measurement_grid(cfg["measurements"], cfg["operator"])
    operators = [build_operator(cfg["operator"], image_shape, cfg["seed"], m) for m in grid]
    store = ResultsStore(run_dir)
    done = store.done()
    pairs = [(j, i) for j, op in enumerate(operators) for i in range(len(images)) if (op.m, i) not in done]
    pending = sorted({j for j, _ in pairs})  # only m values with work left need their hyperparameters
    val_count = min(cfg["tuning"]["num_images"], len(splits["val"]))
    val_images = torch.stack([splits["val"][i][0] for i in range(val_count)]) if val_count else torch.zeros(0, *image_shape)
    context = {"dataset": cfg["dataset"], "operator": cfg["operator"], "noise": cfg["noise"], "checkpoint": checkpoint}
    solvers = [solver] * len(operators)
    tuned = tune_per_m(cfg["solver"], [operators[j] for j in pending], val_images, noise, generator, cfg["seed"],
                       Path(cfg["paths"]["output_root"]) / "tuning", context)
    for j, tuned_solver in zip(pending, tuned):
        solvers[j] = tuned_solver
    labels = {"solver": cfg["solver"].get("label") or cfg["solver"]["name"], "noise": cfg["noise"]["name"]}
    module = RecoveryModule(generator, solvers, operators, noise, cfg["seed"], cfg["input"], labels=labels)
    trainer = build_trainer(cfg["trainer"], inference_mode=False, logger=False, default_root_dir=str(run_dir),
                            callbacks=[ShardWriter(store)], enable_checkpointing=False)
    if pairs:
        loader = DataLoader(WorkItems(images, pairs), batch_size=cfg["batch_size"], shuffle=False,
                            num_workers=cfg["num_workers"])
        trainer.predict(module, dataloaders=loader, return_predictions=False)
    if not trainer.is_global_zero:
        return {}
    requested_m = {op.m for op in operators}
    rows, summary = store.merge(lambda m, image_id: m in requested_m and image_id < len(images))
    paths = {"results": run_dir / "results.csv", "summary": run_dir / "summary.csv",
             "curve": plot_error_curves(summary, run_dir / "error_vs_m.png")}
    if cfg["input"] == "gen_span":
        originals = lambda ids: gen_span_images(generator, ids, cfg["seed"])  # noqa: E731
    else:
        originals = lambda ids: torch.stack([images[i][0] for i in ids])  # noqa: E731
    shown = _save_originals(store, originals, min(cfg["save_images"], cfg["num_images"]))
    paths.update(_grid_images(store, shown))
    if cfg.get("report_name"):
        register_run(cfg, run_dir, sorted(requested_m), len(images))
    if cfg["logger"]["name"] == "wandb":
        log_recovery_to_wandb(cfg["logger"], run_dir, run_dir.name, cfg, summary,
                              {k: v for k, v in paths.items() if str(v).endswith(".png")})
    return {"summary": summary, "rows": len(rows), "paths": paths}
