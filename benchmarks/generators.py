"""Generators compared for compressed sensing: their CS curves with Lasso, their evaluation numbers, and which of
those numbers predicts the CS error (the paper's future work, answered with data).

    python train.py -m experiment=paper_mnist_generators            # VAE, GLO, flow, DCGAN; checkpoints every 15 epochs
    python benchmarks/generators.py --sweep outputs/train-multirun/<time> > docs/generators.json
    python benchmarks/generators.py --markdown docs/generators.json  # the RESULTS.md tables
    # Fashion-MNIST (with internet): add dataset=fashion_mnist to train.py and --dataset fashion_mnist here

For every final checkpoint: CS error versus m (Gaussian A, noise std 0.1, the paper's protocol with each
generator's solver config: csgm for VAE and GLO, csgm_dcgan, csgm_flow) beside Lasso, through recover.py's own
code (resumable run folders under --output-root), and ``python -m csgm.evaluate``'s numbers. For every checkpoint
of every length (the study): the evaluation numbers and the CS error at m = --study-m, both on --study-images test
digits, their Spearman rank correlations and a scatter plot (--plot).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from common import ROOT, curve_config, emit, environment, json_file, run_entry
from quality import curves_cross
from csgm.api import compose
from csgm.evaluation.run import evaluate
from csgm.files import atomic_write_bytes
from csgm.generators.checkpoint import load_generator
from csgm.recovery.run import recover
from csgm.reporting.plots import error_curves_png, figure_png, pyplot

LABELS = {("vae", "elbo"): "VAE", ("vae", "glo"): "GLO", ("flow", "mle"): "flow", ("dcgan", "adversarial"): "DCGAN"}
SOLVERS = {"vae": "csgm", "dcgan": "csgm_dcgan", "flow": "csgm_flow"}
PREDICTORS = {
    "range_error": lambda e: e["range_error"]["mean"],
    "optimisation_error": lambda e: e["optimisation_error"]["mean"],
    "jacobian_norm_median": lambda e: e["jacobian_spectral_norm"]["median"],
    "pairwise_ratio_max": lambda e: e["pairwise_ratio"]["max"],
}


def ranks(values: list[float]) -> list[float]:
    """Ranks 1..N, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            result[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks."""
    ra, rb = torch.tensor(ranks(a), dtype=torch.float64), torch.tensor(ranks(b), dtype=torch.float64)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def checkpoints_of(sweep: Path) -> list[dict]:
    """Every checkpoint of a train.py sweep: label, training epochs, path, generator name (one per distinct generator)."""
    found, seen = [], set()
    for job in sorted(p for p in sweep.iterdir() if (p / "checkpoints" / "last.ckpt").is_file()):
        epochs_of = {
            path: torch.load(path, map_location="cpu", weights_only=True)["epoch"] + 1
            for path in job.glob("checkpoints/*.ckpt")
        }
        for path in sorted(epochs_of, key=lambda p: (epochs_of[p], p.name == "last.ckpt")):
            _, meta = load_generator(path)
            if meta["digest"] in seen:  # last.ckpt is the final epoch's checkpoint again
                continue
            seen.add(meta["digest"])
            epochs = epochs_of[path]
            label = LABELS.get((meta["name"], meta.get("training", "")), f"{meta['name']}/{meta.get('training', '')}")
            found.append(
                {
                    "label": label,
                    "epochs": epochs,
                    "checkpoint": str(path),
                    "generator": meta["name"],
                    "digest": meta["digest"],
                }
            )
    return found


def cs_rows(
    checkpoint: str, solver: str, measurements: list[int], images: int, output_root: str, dataset: str
) -> list[dict]:
    """recover.py's summary rows for one generator and solver on the paper's MNIST protocol."""
    cfg, run_dir = curve_config(
        "paper_mnist", checkpoint, solver, measurements, images, output_root, [f"dataset={dataset}"]
    )
    result = recover(cfg, run_dir)
    return [
        {
            "m": r["m"],
            "mse_mean": round(r["mse_mean"], 6),
            "mse_ci95": round(r["mse_ci95"], 6),
            "psnr_mean": round(r["psnr_mean"], 3),
            "images": r["images"],
            "failed": r["failed"],
        }
        for r in result["summary"]
    ]


def evaluation(checkpoint: str, images: int, output_root: str, dataset: str) -> dict:
    """``python -m csgm.evaluate``'s numbers for one checkpoint."""
    cfg = compose(
        "evaluate",
        [
            f"dataset={dataset}",
            f"checkpoint='{checkpoint}'",
            f"num_images={images}",
            f"paths.output_root={output_root}",
        ],
    )
    run_dir = Path(output_root) / "evaluate" / f"{load_generator(checkpoint)[1]['digest']}-{images}"
    numbers = evaluate(cfg, run_dir)["numbers"]
    return {k: v for k, v in numbers.items() if k not in ("checkpoint", "search")}


def scatter_png(study: list[dict], correlations: dict, path: Path, m: int) -> None:
    """The study's scatter plots (one per predictor, CS error against it, log-log) written to ``path``."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(PREDICTORS), figsize=(4 * len(PREDICTORS), 3.6))
    labels = sorted({point["label"] for point in study})
    for ax, name in zip(axes, PREDICTORS):
        for label, marker in zip(labels, "osD^v"):
            points = [p for p in study if p["label"] == label]
            ax.scatter(
                [p["predictors"][name] for p in points], [p["cs_error"] for p in points], marker=marker, label=label
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(name.replace("_", " "))
        ax.set_title(f"Spearman {correlations[name]:+.2f}")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"CS error at m = {m}")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    atomic_write_bytes(path, figure_png(fig))


def markdown(result: dict) -> str:
    """The RESULTS.md tables: CS error per generator and m, evaluation numbers, rank correlations."""
    curves = result["curves"]
    ms = sorted({row["m"] for rows in curves.values() for row in rows})
    lines = ["| m | " + " | ".join(curves) + " |", "| ---: | " + " | ".join("---" for _ in curves) + " |"]
    for m in ms:
        cells = [
            next((f"{r['mse_mean']:.5f} ± {r['mse_ci95']:.5f}" for r in rows if r["m"] == m), "")
            for rows in curves.values()
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    points = {label: [(r["m"], r["mse_mean"]) for r in rows] for label, rows in curves.items()}
    if "CSGM-VAE" in points:
        lines += ["", "| curve | below CSGM-VAE from m (interpolated) |", "| --- | ---: |"]
        for label, curve in points.items():
            if label != "CSGM-VAE":
                crossing = curves_cross(points["CSGM-VAE"], curve)
                lines.append(f"| {label} | " + ("never" if crossing is None else f"{crossing:.0f}") + " |")
    lines += [
        "",
        "| generator | range error | optimisation error | Jacobian norm median / max | pairwise max | test bits/dim |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, e in result["evaluation"].items():
        bits = e["test_bits_per_dim"]
        lines.append(
            f"| {label} | {e['range_error']['mean']:.5f} ± {e['range_error']['ci95']:.5f} | "
            f"{e['optimisation_error']['mean']:.5f} ± {e['optimisation_error']['ci95']:.5f} | "
            f"{e['jacobian_spectral_norm']['median']:.2f} / {e['jacobian_spectral_norm']['max']:.2f} | "
            f"{e['pairwise_ratio']['max']:.2f} | "
            + (f"{bits['mean']:.3f} ± {bits['ci95']:.3f}" if bits else "none")
            + " |"
        )
    study = result["study"]
    lines += [
        "",
        f"| predictor | Spearman with CS error at m = {study['m']} (all {len(study['points'])} checkpoints) | "
        "within generator families (mean) |",
        "| --- | ---: | ---: |",
    ]
    for name, value in study["spearman"].items():
        within = study["spearman_within_family"][name]
        lines.append(
            f"| {name.replace('_', ' ')} | {value:+.2f} | " + ("" if within is None else f"{within:+.2f}") + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sweep", type=Path, help="the folder of `python train.py -m experiment=paper_mnist_generators`"
    )
    parser.add_argument("--markdown", type=json_file, default=None, metavar="JSON")
    parser.add_argument("--dataset", default="mnist10k", help="the dataset the sweep trained on (e.g. fashion_mnist)")
    parser.add_argument("--measurements", default="25,50,100,200,400,750")
    parser.add_argument("--images", type=int, default=100, help="test digits of the CS curves")
    parser.add_argument("--evaluation-images", type=int, default=100)
    parser.add_argument("--study-m", type=int, default=100)
    parser.add_argument("--study-images", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--output-root", default=str(ROOT / "outputs"))
    args = parser.parse_args()
    if args.markdown:
        print(markdown(args.markdown))
        return
    torch.set_num_threads(args.threads)
    measurements = [int(m) for m in args.measurements.split(",")]
    found = checkpoints_of(args.sweep)
    final = {}
    for point in found:  # the last checkpoint of each generator is the one compared
        final[point["label"]] = point
    start = time.perf_counter()
    curves, summary_rows = {}, []
    for label, point in final.items():
        solver = SOLVERS[point["generator"]]
        rows = cs_rows(point["checkpoint"], solver, measurements, args.images, args.output_root, args.dataset)
        curves[f"CSGM-{label}"] = rows
        summary_rows += [
            {
                **r,
                "solver": f"CSGM-{label} ({solver})",
                "operator": "gaussian",
                "noise": "gaussian",
                "noise_std": 0.1,
                "mse_mean": r["mse_mean"],
                "mse_ci95": r["mse_ci95"],
            }
            for r in rows
        ]
    lasso = cs_rows(
        next(iter(final.values()))["checkpoint"], "lasso", measurements, args.images, args.output_root, args.dataset
    )
    curves["Lasso"] = lasso
    summary_rows += [
        {**r, "solver": "Lasso (pixels)", "operator": "gaussian", "noise": "gaussian", "noise_std": 0.1} for r in lasso
    ]
    args.plot.mkdir(parents=True, exist_ok=True)
    (args.plot / "generators_cs.png").write_bytes(
        error_curves_png(summary_rows, title="CS error versus m per generator (MNIST, Gaussian A, noise 0.1)")
    )
    evaluations = {
        label: evaluation(point["checkpoint"], args.evaluation_images, args.output_root, args.dataset)
        for label, point in final.items()
    }
    study = []
    for point in found:
        numbers = evaluation(point["checkpoint"], args.study_images, args.output_root, args.dataset)
        rows = cs_rows(
            point["checkpoint"],
            SOLVERS[point["generator"]],
            [args.study_m],
            args.study_images,
            args.output_root,
            args.dataset,
        )
        study.append(
            {
                **point,
                "predictors": {name: fn(numbers) for name, fn in PREDICTORS.items()},
                "cs_error": rows[0]["mse_mean"],
            }
        )
    errors = [p["cs_error"] for p in study]
    correlations = {name: round(spearman([p["predictors"][name] for p in study], errors), 3) for name in PREDICTORS}
    within = {}
    for name in PREDICTORS:
        values = [
            spearman([p["predictors"][name] for p in family], [p["cs_error"] for p in family])
            for family in ([p for p in study if p["label"] == label] for label in final)
            if len(family) > 2
        ]
        values = [v for v in values if math.isfinite(v)]
        within[name] = round(sum(values) / len(values), 3) if values else None  # needs 3+ lengths per generator
    scatter_png(study, correlations, args.plot / "generators_study.png", args.study_m)
    emit(
        {
            "environment": environment(args.threads, "cpu"),
            "protocol": {
                "sweep": str(args.sweep),
                "dataset": args.dataset,
                "measurements": measurements,
                "images": args.images,
                "noise_std": 0.1,
                "operator": "gaussian",
                "solvers": SOLVERS,
                "evaluation_images": args.evaluation_images,
            },
            "checkpoints": {label: {k: point[k] for k in ("epochs", "digest")} for label, point in final.items()},
            "curves": curves,
            "evaluation": evaluations,
            "study": {
                "m": args.study_m,
                "images": args.study_images,
                "points": study,
                "spearman": correlations,
                "spearman_within_family": within,
            },
            "seconds": round(time.perf_counter() - start, 1),
        }
    )


if __name__ == "__main__":
    run_entry(main)
