"""Uncertainty of a sampler's run folder: per m, the coverage of the central 90% pixel intervals and whether
the posterior std map points at the wrong pixels (its correlation over pixels with |x_hat - x|); prints JSON.

    python benchmarks/uncertainty.py outputs/recover/mala-gaussian-gaussian-<hash> [--dataset mnist10k]

Reads results.csv (coverage per image), posterior.pt (std maps) and reconstructions.pt (x_hat) of a finished
run on a dataset split (input=test), with the test images of the bundled split for the errors.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

from common import emit, run_entry
from csgm.data import load_splits
from csgm.metrics import mean_ci95, std_error_correlation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    identity = json.loads((args.run / "identity.json").read_text())
    test = load_splits(identity["identity"]["dataset"])["test"]
    posterior = torch.load(args.run / "posterior.pt", weights_only=True)
    estimates = torch.load(args.run / "reconstructions.pt", weights_only=True)
    x_hat = {tuple(k): v for k, v in zip(estimates["keys"].tolist(), estimates["x_hat"])}
    with open(args.run / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = []
    for m in sorted({int(r["m"]) for r in rows}):
        keys = [(m, i) for (mm, i) in map(tuple, posterior["keys"].tolist()) if mm == m]
        index = {tuple(k): j for j, k in enumerate(posterior["keys"].tolist())}
        std = torch.stack([posterior["pixel_std"][index[k]] for k in keys])
        truth = torch.stack([test[i][0] for _, i in keys])
        estimate = torch.stack([x_hat[k] for k in keys])
        correlation = std_error_correlation(std, estimate, truth)
        coverage = [float(r["coverage90"]) for r in rows if int(r["m"]) == m and r["coverage90"] not in ("", None)]
        table.append(
            {
                "m": m,
                "images": len(keys),
                "coverage90": [round(v, 4) for v in mean_ci95(coverage)],
                "std_error_correlation": [
                    round(v, 4) for v in mean_ci95(correlation[torch.isfinite(correlation)].tolist())
                ],
                "mean_pixel_std": round(float(std.mean()), 5),
            }
        )
    emit({"run": str(args.run), "table": table})


if __name__ == "__main__":
    run_entry(main)
