"""Shared set-up of the benchmark scripts: threads, the trained generator, test images (the bundled MNIST unless
``--dataset`` says otherwise; a generator trained on another dataset is refused), measurements."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csgm.api import compose  # noqa: E402
from csgm.cli import plain, run_entry  # noqa: E402,F401 (run_entry: the scripts' one-line errors)
from csgm.data import load_splits  # noqa: E402
from csgm.generators.checkpoint import check_trained_on, load_generator  # noqa: E402
from csgm.measurement import MeasurementModel  # noqa: E402
from csgm.operators import Noise, build_operator  # noqa: E402
from csgm.recovery.paths import resolve_checkpoint  # noqa: E402


def environment(threads: int, device: str) -> dict[str, Any]:
    """Record what the numbers were measured on."""
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "threads": threads,
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def timed(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    """(result, seconds), synchronising CUDA around the call."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def json_file(path: str) -> Any:
    """An argparse type: the parsed content of the JSON file ``path`` (a benchmark's printed result); a file that
    cannot be read or is not JSON is one usage line naming it."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"can't open {path!r}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(
            f"{path!r} is not JSON ({exc}); pass the JSON a benchmark script printed"
        ) from None


def benchmark_parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's argument parser with the options the scripts share: ``--markdown JSON`` (print the RESULTS.md
    table of a result instead of measuring) and ``--checkpoint`` (a train.py checkpoint, or latest)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--markdown",
        type=json_file,
        default=None,
        metavar="JSON",
        help="print the RESULTS.md table of a JSON result instead of measuring",
    )
    parser.add_argument("--checkpoint", default="latest")
    return parser


def solver_and_generator(solver: str, overrides: Sequence[str], checkpoint: str) -> tuple[dict, Any, Any]:
    """The conf/solver option ``solver`` with ``overrides`` (e.g. solver.steps=2000): its config and the built
    solver; and the frozen G of ``checkpoint`` (latest: the newest under the repository's outputs/)."""
    from csgm.solvers import build_solver

    cfg = plain(compose("recover", [f"solver={solver}", *overrides]))["solver"]
    generator, _ = load_generator(resolve_checkpoint(checkpoint, ROOT / "outputs"))
    return cfg, build_solver(cfg), generator.eval().requires_grad_(False)


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """``--dataset NAME`` (a conf/dataset config, the bundled MNIST by default) and ``--dataset-option KEY=VALUE``
    (repeatable, as the entry points' ``dataset.KEY=VALUE``)."""
    parser.add_argument("--dataset", default="mnist10k", help="a conf/dataset config: the images to recover")
    parser.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dataset option, as dataset.KEY=VALUE of recover.py (repeatable)",
    )


def dataset_config(name: str = "mnist10k", options: Sequence[str] = ()) -> dict:
    """The dataset entry the entry points would build from ``dataset=NAME dataset.KEY=VALUE ...``."""
    return plain(compose("recover", [f"dataset={name}", *(f"dataset.{option}" for option in options)]))["dataset"]


def mnist_problem(
    checkpoint: str,
    count: int,
    m: int,
    noise_std: float = 0.1,
    seed: int = 0,
    split: str = "test",
    device: str = "cpu",
    dataset: dict | None = None,
):
    """(G, A, x, y, ids): the paper's protocol on the first ``count`` images of a split of ``dataset`` (a
    ``dataset_config``; the bundled MNIST by default), refused for a generator trained on another dataset."""
    path = resolve_checkpoint(checkpoint, ROOT / "outputs")
    generator, meta = load_generator(path)
    dataset = dataset or dataset_config()
    check_trained_on(path, meta, dataset["name"], "--dataset {}")
    dataset = load_splits(dataset)[split]
    ids = list(range(count))
    x = torch.stack([dataset[i][0] for i in ids])
    operator = build_operator({"name": "gaussian"}, generator.image_shape, seed=seed, m=m)
    y = MeasurementModel(operator, Noise("gaussian", noise_std), seed).measure(x, ids)
    return generator.to(device), operator.to(device), x.to(device), y.to(device), ids


def curve_config(
    experiment: str,
    checkpoint: str,
    solver: str,
    measurements: Sequence[int],
    images: int,
    output_root: str,
    extra: Sequence[str] = (),
) -> tuple[Any, Path]:
    """recover.py's config of one benchmark curve (the experiment's measurement model, the checkpoint's own
    generator, ``solver`` at every m, no logger or progress bar) and its run folder under ``output_root``."""
    cfg = compose(
        "recover",
        [
            f"experiment={experiment}",
            "~generator",  # the checkpoint brings its own generator (the experiment names the VAE)
            f"checkpoint='{checkpoint}'",
            f"solver={solver}",
            f"measurements=[{','.join(map(str, measurements))}]",
            f"num_images={images}",
            f"paths.output_root={output_root}",
            "trainer.enable_progress_bar=false",
            "logger=none",
            *extra,
        ],
    )
    return cfg, Path(f"{output_root}/recover/{plain(cfg)['run_name']}")


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=1))
