"""Time and memory of one forward + adjoint product of the random operators at growing image sizes; prints JSON.

    python benchmarks/operators.py [--sizes 64x64x1,64x64x3,256x256x3,1024x1024x3] [--fraction 0.25] [--batch 4]

For every size (H x W x C) and m = fraction x n: the dense Gaussian A's memory (m n float32) and, where it
fits under --dense-limit-gb, its product time; the structured operators' (srht, random_convolution) buffer
memory and product time. Times are the median of --repeats runs of A then A^T on a batch of images.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from common import emit, environment, timed, run_entry
from csgm.operators import build_operator


def product_seconds(operator, batch: int, repeats: int) -> float:
    x = torch.rand(batch, *operator.image_shape)
    times = []
    for _ in range(repeats):
        _, spent = timed(lambda: operator.adjoint(operator(x)), "cpu")
        times.append(spent)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64x64x1,64x64x3,256x256x3,1024x1024x3")
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dense-limit-gb", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes.split(","):
        h, w, c = (int(v) for v in size.split("x"))
        shape, n = (c, h, w), c * h * w
        m = max(1, int(args.fraction * n))
        dense_gb = m * n * 4 / 1e9
        row = {"size": size, "n": n, "m": m, "gaussian_dense_gb": round(dense_gb, 3)}
        if dense_gb <= args.dense_limit_gb:
            row["gaussian_seconds"] = round(
                product_seconds(build_operator({"name": "gaussian"}, shape, m=m), args.batch, args.repeats), 4
            )
        for name in ("srht", "random_convolution"):
            operator = build_operator({"name": name}, shape, m=m)
            row[f"{name}_buffers_mb"] = round(sum(b.numel() * b.element_size() for b in operator.buffers()) / 1e6, 3)
            row[f"{name}_seconds"] = round(product_seconds(operator, args.batch, args.repeats), 4)
        rows.append(row)
    emit(
        {
            "environment": environment(args.threads, "cpu"),
            "protocol": {
                "fraction": args.fraction,
                "batch": args.batch,
                "repeats": args.repeats,
                "timed": "one forward and one adjoint product of the batch",
            },
            "sizes": rows,
        }
    )


if __name__ == "__main__":
    run_entry(main)
