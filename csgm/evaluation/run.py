"""One evaluation job: checkpoint + test images -> evaluation.json, samples.png and a short table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from csgm.cli import plain
from csgm.checks import check_evaluate_config
from csgm.data import load_splits
from csgm.errors import CsgmError
from csgm.evaluation.generator_metrics import jacobian_spectral_norms, pairwise_ratios, range_error, test_bits_per_dim
from csgm.files import atomic_write_files, json_bytes
from csgm.generators.checkpoint import check_trained_on, load_generator
from csgm.recovery.module import gen_span_images
from csgm.recovery.paths import resolve_checkpoint
from csgm.reporting.plots import image_rows_png
from csgm.seeding import seeded_rng

__all__ = ["evaluate", "format_evaluation"]


def evaluate(cfg: Any, run_dir: str | Path) -> dict[str, Any]:
    """Evaluate the configured checkpoint; returns the numbers and the paths written."""
    cfg = plain(cfg)
    check_evaluate_config(cfg)
    torch.manual_seed(cfg["seed"])
    checkpoint = resolve_checkpoint(cfg["checkpoint"], cfg["paths"]["output_root"])
    generator, meta = load_generator(checkpoint)
    check_trained_on(checkpoint, meta, cfg["dataset"]["name"])
    test = load_splits(cfg["dataset"])["test"]
    if tuple(test[0][0].shape) != tuple(generator.image_shape):
        raise CsgmError(
            f"the checkpoint's generator makes images of shape {tuple(generator.image_shape)} but dataset "
            f"{cfg['dataset']['name']!r} has {tuple(test[0][0].shape)}; evaluate on the dataset it was trained on"
        )
    if cfg["num_images"] > len(test):
        raise CsgmError(
            f"num_images={cfg['num_images']} but the test split of {cfg['dataset']['name']} has {len(test)} images; "
            f"set num_images={len(test)} or fewer"
        )
    count = cfg["num_images"]
    ids = list(range(count))
    x = torch.stack([test[i][0] for i in ids])
    search = {"restarts": cfg["restarts"], "iterations": cfg["iterations"], "lr": cfg["lr"], "seed": cfg["seed"]}
    numbers = {
        "checkpoint": str(checkpoint),
        "generator_digest": meta["digest"],
        "generator": meta["name"],
        "training": meta.get("training", ""),
        "images": count,
        "search": search,
        "range_error": range_error(generator, x, ids, **search),
        # the latent search on G's own images, even where an inverse would find them exactly
        "optimisation_error": range_error(
            generator, gen_span_images(generator, ids, cfg["seed"]), ids, **search, by_inverse=False
        ),
        "jacobian_spectral_norm": jacobian_spectral_norms(
            generator, cfg["lipschitz_samples"], cfg["power_iterations"], cfg["seed"]
        ),
        "pairwise_ratio": pairwise_ratios(generator, cfg["pairs"], cfg["seed"]),
        "test_bits_per_dim": test_bits_per_dim(generator, x, cfg["seed"]),
    }
    with torch.no_grad():
        samples = generator(generator.sample_latents(16, seeded_rng("evaluate_samples", cfg["seed"])))
    run_dir = Path(run_dir)
    paths = {"evaluation": run_dir / "evaluation.json", "samples": run_dir / "samples.png"}
    atomic_write_files(
        {
            paths["evaluation"]: json_bytes(numbers),
            paths["samples"]: image_rows_png([samples[:8], samples[8:]], ["G(z)", "G(z)"], "samples, z ~ N(0, I)"),
        }
    )
    return {"numbers": numbers, "paths": paths}


def format_evaluation(numbers: dict[str, Any]) -> str:
    """The short table ``python -m csgm.evaluate`` prints."""
    lines = [f"{'quantity':<44} {'value':>24}", "-" * 69]
    for label, entry in (
        ("range error min_z ||G(z)-x||^2/n (test)", numbers["range_error"]),
        ("optimisation error (x = G(z*))", numbers["optimisation_error"]),
    ):
        lines.append(f"{label:<44} {entry['mean']:>14.5f} ± {entry['ci95']:.5f}")
    spectral, pairs = numbers["jacobian_spectral_norm"], numbers["pairwise_ratio"]
    lines.append(f"{'Jacobian spectral norm, median / max':<44} {spectral['median']:>11.3f} / {spectral['max']:.3f}")
    lines.append(f"{'max ||G(z1)-G(z2)|| / ||z1-z2|| over pairs':<44} {pairs['max']:>24.3f}")
    bits = numbers["test_bits_per_dim"]
    lines.append(
        f"{'test likelihood, bits/dim':<44} "
        + (f"{bits['mean']:>14.4f} ± {bits['ci95']:.4f}" if bits else f"{'none (no density)':>24}")
    )
    return "\n".join(lines)
