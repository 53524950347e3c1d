"""Samplers through recover.py: rows with the posterior columns, samples and std maps stored, results that
do not depend on the batch size."""

from __future__ import annotations

import csv

import pytest
import torch

from csgm.recovery.run import recover
from tests.helpers import TINY_RECOVER, compose_config

SAMPLER = [
    "solver=mala",
    "solver.steps=30",
    "solver.burn_in=10",
    "solver.thin=5",
    "solver.chains=3",
    "solver.keep_samples=2",
]

HMC = [
    "solver=hmc",
    "solver.mode_starts=4",
    "solver.mode_steps=2",
    "solver.warmup=4",
    "solver.draws=10",
    "solver.thin=5",
    "solver.keep_samples=2",
]


def run(checkpoint, root, *extra, sampler=SAMPLER):
    tiny = [t for t in TINY_RECOVER if not t.startswith("solver.")]
    cfg = compose_config(
        "recover",
        [*tiny, f"checkpoint={checkpoint}", f"paths.output_root={root}", *sampler, "measurements=[50]", *extra],
    )
    result = recover(cfg, root / "run")
    with open(root / "run" / "results.csv", newline="") as handle:
        return result, list(csv.DictReader(handle))


def test_sampler_rows_samples_and_std_maps(vae_checkpoint, tmp_path):
    result, rows = run(vae_checkpoint, tmp_path)
    assert len(rows) == 6  # 4 draws per chain: too few to trust, and the rows say so
    assert all(r["status"] in ("unreliable", "not_converged") and "few_samples" in r["reason"] for r in rows)
    for r in rows:
        assert (
            0.0 <= float(r["coverage90"]) <= 1.0 and float(r["pixel_std"]) > 0 and 0.0 <= float(r["acceptance"]) <= 1.0
        )
        assert float(r["sample_mse"]) >= 0 and -1.0 <= float(r["std_error_correlation"]) <= 1.0
    (summary,) = result["summary"]
    assert 0.0 <= summary["coverage90_mean"] <= 1.0 and summary["acceptance_mean"] is not None
    posterior = torch.load(tmp_path / "run" / "posterior.pt", weights_only=True)
    assert posterior["samples"].shape == (6, 2, 1, 28, 28) and posterior["pixel_std"].shape == (6, 1, 28, 28)
    assert posterior["keys"].tolist() == [[50, i] for i in range(6)]
    assert result["paths"]["posterior_grid"].is_file()  # original, posterior mean, two samples, std map
    assert result["paths"]["reliability"].is_file()  # nominal versus empirical coverage per m
    for r in rows:  # central intervals are nested, so their coverages are ordered
        covered = [float(r[f"coverage{level}"]) for level in (50, 80, 90, 95)]
        assert covered == sorted(covered), covered


@pytest.mark.parametrize("sampler", [SAMPLER, HMC], ids=["mala", "hmc"])
def test_samples_do_not_depend_on_the_batch_size(vae_checkpoint, tmp_path, sampler):
    """Same chains, same noise draws (hmc: its mode jumps too): equal up to float32 summation order in batched
    products (which can flip a rare Metropolis decision whose log ratio sits at the threshold, hence the tolerance
    on the numbers)."""
    _, one = run(vae_checkpoint, tmp_path / "a", "batch_size=1", sampler=sampler)
    _, all_at_once = run(vae_checkpoint, tmp_path / "b", "batch_size=6", sampler=sampler)
    for a, b in zip(one, all_at_once):
        assert (a["image_id"], a["status"], a["params"]) == (b["image_id"], b["status"], b["params"])
        for column in ("mse", "sample_mse", "pixel_std", "coverage90", "measurement_loss"):
            assert float(a[column]) == pytest.approx(float(b[column]), rel=1e-3, abs=1e-3), column
    first = torch.load(tmp_path / "a" / "run" / "posterior.pt", weights_only=True)["samples"]
    torch.testing.assert_close(
        first, torch.load(tmp_path / "b" / "run" / "posterior.pt", weights_only=True)["samples"], atol=1e-2, rtol=0
    )


@pytest.mark.slow
def test_two_cpu_processes_sample_as_one(vae_checkpoint, tmp_path):
    """DDP (gloo, 2 processes): both ranks sample, rank 0 merges rows, samples and std maps for every image."""
    from tests.helpers import run_script
    from tests.recovery.test_recover import assert_two_ranks_shared_the_work

    tiny = [t for t in TINY_RECOVER if not t.startswith("solver.")]
    common = [*tiny, f"checkpoint={vae_checkpoint}", *SAMPLER, "measurements=[50]", "num_images=5", "batch_size=2"]
    one = run_script("recover.py", *common, f"paths.output_root={tmp_path / 'one'}", cwd=tmp_path)
    two = run_script("recover.py", *common, "trainer=ddp", f"paths.output_root={tmp_path / 'two'}", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    (dir_one,), (dir_two,) = (tmp_path / "one" / "recover").iterdir(), (tmp_path / "two" / "recover").iterdir()
    assert_two_ranks_shared_the_work(dir_two, [(50, i) for i in range(5)])
    posterior_one = torch.load(dir_one / "posterior.pt", weights_only=True)
    posterior_two = torch.load(dir_two / "posterior.pt", weights_only=True)
    assert torch.equal(posterior_one["keys"], posterior_two["keys"])
    torch.testing.assert_close(posterior_one["pixel_std"], posterior_two["pixel_std"], atol=1e-2, rtol=0)
