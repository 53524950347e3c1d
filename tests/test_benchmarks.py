"""The benchmark scripts run end to end at tiny size and their JSON holds consistent figures.
(The figures themselves are measured on the full protocol and reported in docs/RESULTS.md.)"""

from __future__ import annotations

import json
import math

import pytest

from tests.helpers import ROOT, requires_compiler, run_script

pytestmark = pytest.mark.slow  # runs the entry points in subprocesses


def run_benchmark(script: str, *args: str, cwd) -> dict:
    result = run_script(f"benchmarks/{script}", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def ratio_consistent(ratio: float, numerator: float, denominator: float, rounding: float = 5e-4) -> bool:
    """Whether ``ratio`` = numerator / denominator, given that both were rounded to 3 decimals."""
    low = max(numerator - rounding, 0.0) / (denominator + rounding)
    high = (numerator + rounding) / max(denominator - rounding, 1e-9)
    return low * 0.99 <= ratio <= high * 1.01


@requires_compiler
def test_speed_benchmark(vae_checkpoint, tmp_path):
    out = run_benchmark(
        "speed.py",
        f"--checkpoint={vae_checkpoint}",
        "--images=3",
        "--iterations=4",
        "--sample=1",
        "--repeats=2",
        "--peak-size=256",
        cwd=tmp_path,
    )
    throughput = out["throughput"]
    assert set(throughput) >= {"default", "without_flush_denormals", "compiled", "matmul_peak_gflops"}
    for name in ("default", "without_flush_denormals", "compiled"):
        variant = throughput[name]
        assert len(variant["seconds"]) == 2 and variant["latent_steps_per_second"] > 0
        assert variant["fraction_of_peak_best"] >= variant["fraction_of_peak"] > 0
    for name in ("without_flush_denormals", "compiled"):  # every other variant recovers the default's images
        assert throughput[name]["max_abs_difference_x_hat_vs_default"] < 1e-4
    assert throughput["without_flush_denormals"]["max_abs_difference_x_hat_vs_default"] < 1e-30
    batched = out["batched_vs_one_at_a_time"]
    assert ratio_consistent(
        batched["speedup_vs_one_latent_at_a_time"], batched["one_latent_at_a_time_seconds"], batched["batched_seconds"]
    )
    assert batched["max_abs_difference_per_image"] < 1e-4
    quality = out["time_to_quality"]
    assert quality["full"]["generator_evaluations"] == 3 * 10 * (4 + 1)  # images x restarts x (steps + final pass)
    for schedule in ("halving_100", "halving_200", "halving_100_stall", "start_bank"):
        assert math.isfinite(quality[schedule]["mean_per_pixel_error"])
    assert quality["start_bank"]["generator_evaluations"] == 4096 + 3 * 2 * (
        1 + 1
    )  # the bank, then 2 restarts x (1 step + final)
    gauss_newton = quality["second_order"]  # csgm_gn: its bank once, forwards and JVPs, no VJPs
    assert gauss_newton["generator_evaluations"] > 4096 and gauss_newton["jvps"] > 0 and gauss_newton["vjps"] == 0
    secant = quality["second_order_secant"]  # csgm_qn: one Jacobian per start, then a forward + a VJP per step
    assert secant["jvps"] > 0 and secant["vjps"] > 0
    for arm in (gauss_newton, secant):
        assert arm["evaluation_equivalents"] == (arm["generator_evaluations"] + arm["jvps"] + arm["vjps"]) / 2
    solvers = out["solvers"]
    assert set(solvers) == {"csgm", "langevin", "mala", "ilo"}
    for name in ("langevin", "mala", "ilo"):
        entry = solvers[name]
        assert entry["evaluations_per_second"] > 0 and math.isfinite(entry["mean_per_pixel_error"])
        assert ratio_consistent(
            entry["rate_relative_to_csgm"],
            entry["evaluations_per_second"],
            solvers["csgm"]["evaluations_per_second"],
            rounding=0.05,
        )


@requires_compiler
def test_precision_benchmark(vae_checkpoint, tmp_path):
    out = run_benchmark(
        "precision.py",
        f"--checkpoint={vae_checkpoint}",
        "--images=3",
        "--iterations=4",
        "--repeats=1",
        "--end-to-end",
        cwd=tmp_path,
    )
    arms = out["solver"]
    assert set(arms) == {"float32", "float32_compiled", "tf32", "bf16_mixed", "bf16_mixed_compiled"}  # fp16: CUDA only
    assert (
        arms["float32"]["error_change"] == 0.0
        and arms["float32_compiled"]["max_abs_difference_x_hat_vs_float32"] < 1e-4
    )
    assert arms["tf32"]["emulated"] and arms["tf32"]["speedup_over_float32"] is None  # no TF32 on a CPU: emulated
    # rounding the products' inputs changes x_hat, TF32's 10 mantissa bits less than bfloat16's 7
    assert (
        0
        < arms["tf32"]["max_abs_difference_x_hat_vs_float32"]
        < arms["bf16_mixed"]["max_abs_difference_x_hat_vs_float32"]
    )
    assert abs(arms["bf16_mixed"]["error_change"]) < 0.05
    assert set(out["end_to_end"]) == {"float32", "bf16_mixed"}
    for arm in out["end_to_end"].values():
        assert arm["images"] == 3 and arm["seconds"] > 0 and math.isfinite(arm["mean_per_pixel_error"])


SECOND_ORDER_TINY = ["--images=2", "--measurements=20", "--repeats=2", "solver.iterations=3"]


def test_second_order_benchmark(vae_checkpoint, tmp_path):
    out = run_benchmark("second_order.py", f"--checkpoint={vae_checkpoint}", *SECOND_ORDER_TINY, cwd=tmp_path)
    (row,) = out["table"]
    protocol, bank, gn, qn = row["csgm"], row["csgm_bank"], row["csgm_gn"], row["csgm_qn"]
    assert len(protocol["seconds"]) == 1 and len(gn["seconds"]) == len(bank["cpu_seconds"]) == 2  # protocol timed once
    assert protocol["forwards_per_image"] == 10 * (3 + 1) and protocol["vjps_per_image"] == 10 * 3  # restarts x steps
    assert bank["forwards_per_image"] == 2 * (3 + 1) + 4096 / 2  # the bank's forwards shared by the 2 images
    assert gn["vjps_per_image"] == 0 and gn["jvps_per_image"] > 0 and gn["forwards_per_image"] > 4096 / 2
    assert qn["jvps_per_image"] <= gn["jvps_per_image"] and 0 < qn["vjps_per_image"] <= 3 * 2  # 3 steps, <= 2 starts
    for arm in (protocol, bank, gn, qn):
        assert arm["evaluation_equivalents_per_image"] == pytest.approx(
            (arm["forwards_per_image"] + arm["jvps_per_image"] + arm["vjps_per_image"]) / 2, abs=0.01
        )
    assert gn["cpu_seconds_median"] == pytest.approx(sum(gn["cpu_seconds"]) / 2, abs=2e-3)  # the median of two timings
    table = tmp_path / "second_order.json"
    table.write_text(json.dumps(out))
    rendered = run_script("benchmarks/second_order.py", "--markdown", str(table), cwd=tmp_path)
    assert (
        rendered.returncode == 0 and rendered.stdout.count("| 20 |") == 5
    )  # csgm, csgm_bank, csgm_gn, csgm_gn_budget, csgm_qn


def test_second_order_benchmark_against_another_reference(vae_checkpoint, tmp_path):
    """--reference csgm_dcgan: the DCGAN protocol (2 x 500 Adam steps) is the arm the others are compared with."""
    out = run_benchmark(
        "second_order.py",
        f"--checkpoint={vae_checkpoint}",
        "--arms=csgm_dcgan,csgm_qn",
        "--reference=csgm_dcgan",
        *SECOND_ORDER_TINY,
        cwd=tmp_path,
    )
    (row,) = out["table"]
    reference, qn = row["csgm_dcgan"], row["csgm_qn"]
    assert len(reference["seconds"]) == 1 and len(qn["seconds"]) == 2 and "error_ratio" not in reference
    assert reference["forwards_per_image"] == 2 * (3 + 1) and reference["vjps_per_image"] == 2 * 3  # 2 restarts
    assert qn["error_ratio"] == pytest.approx(qn["mse_mean"] / reference["mse_mean"], rel=1e-3)
    assert qn["work_ratio"] == pytest.approx(
        reference["evaluation_equivalents_per_image"] / qn["evaluation_equivalents_per_image"], abs=0.06
    )
    table = tmp_path / "second_order.json"
    table.write_text(json.dumps(out))
    rendered = run_script("benchmarks/second_order.py", "--markdown", str(table), cwd=tmp_path).stdout
    assert "| 20 | csgm_dcgan | " in rendered and " | 1 | " in rendered.split("csgm_dcgan")[1].split("\n")[0]


def test_benchmarks_refuse_a_checkpoint_trained_on_another_dataset(vae_checkpoint, tmp_path):
    result = run_script(
        "benchmarks/second_order.py",
        f"--checkpoint={vae_checkpoint}",
        "--images=2",
        "--measurements=20",
        "--dataset=fashion_mnist",
        f"--dataset-option=data_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert (
        "trained on dataset 'mnist10k', but the images come from dataset 'fashion_mnist'; pass --dataset mnist10k"
        in (result.stderr)
    )


def test_scale_benchmark(vae_checkpoint, tmp_path):
    out = run_benchmark(
        "scale.py",
        f"--checkpoint={vae_checkpoint}",
        "--configurations=4x1,8x1,4x2",
        "solver.iterations=2",
        "save_images=2",
        cwd=tmp_path,
    )
    table = out["table"]
    assert [(row["images"], row["m_values"]) for row in table] == [(4, 1), (8, 1), (4, 2)] and table[0]["growth"] == 1.0
    for row in table:
        stages = row["stages"]
        # stage times are rounded to the millisecond: SSIM of 4 digits can take less
        assert 0 < stages["solver"] < row["total_seconds"] and stages["metrics"] >= stages["ssim"] >= 0
        assert stages["shard_writes"] >= 0 and stages["merge"] >= 0
        assert row["outside_seconds"] == pytest.approx(row["total_seconds"] - stages["solver"], abs=2e-3)
        # the merge holds the grids' estimates only (save_images=2 per m), not every (m, image) pair
        assert row["merged_pairs"] == row["images"] * row["m_values"]
        assert row["estimates_kept_in_memory"] == 2 * row["m_values"]
        memory = row["memory_mib"]
        assert memory["peak_rss"] >= memory["rss_before_job"] > 0 and memory["peak_anonymous"] > 0


def test_lasso_speed_benchmark(vae_checkpoint, tmp_path):
    out = run_benchmark("lasso_speed.py", f"--checkpoint={vae_checkpoint}", "--images=2", "--m=50", cwd=tmp_path)
    assert set(out["cases"]) == {"validation_lambda", "lambda_0.3"}
    for case in out["cases"].values():
        assert ratio_consistent(case["speedup"], case["sklearn_seconds"], case["fista_seconds"])
        assert case["error_ratio"] == pytest.approx(case["fista_error"] / case["sklearn_error"], rel=1e-3)
    # Where scikit-learn converges (lambda 0.3; at 0.01 it hits its iteration cap) both solve the same Lasso
    assert 0.9 < out["cases"]["lambda_0.3"]["error_ratio"] < 1.1


def test_quality_benchmark(vae_checkpoint, tmp_path):
    out = run_benchmark(
        "quality.py",
        f"--checkpoint={vae_checkpoint}",
        "--images=2",
        "--solvers=lasso,csgm",
        "--threads=1",
        f"--output-root={tmp_path}",
        "measurements=[100,400]",
        "tuning.num_images=4",
        cwd=tmp_path,
    )
    assert out["protocol"]["measurements"] == [100, 400] and out["protocol"]["images"] == 2
    for solver in ("lasso", "csgm"):
        rows = out["table"][solver]
        assert [row["m"] for row in rows] == [100, 400] and all(row["images"] == 2 for row in rows)
    ratio = out["equal_error_measurement_ratio"]
    if ratio["lasso_m"] and ratio["csgm_m"]:
        assert ratio["lasso_over_csgm"] == pytest.approx(ratio["lasso_m"] / ratio["csgm_m"], abs=0.01)


def test_robustness_benchmark(vae_checkpoint, tmp_path):
    out = run_benchmark(
        "robustness.py",
        f"--checkpoint={vae_checkpoint}",
        "--images=2",
        "--m=60",
        "--fractions=0,0.2",
        "--restarts=1",
        "--iterations=5",
        cwd=tmp_path,
    )
    assert set(out["table"]) == {"csgm", "l1_csgm", "median_of_means"}
    for rows in out["table"].values():
        assert [row["fraction"] for row in rows] == [0.0, 0.2] and all(math.isfinite(row["mse_mean"]) for row in rows)


def test_calibration_benchmark(vae_checkpoint, tmp_path):
    out = run_benchmark(
        "calibration.py",
        f"--checkpoint={vae_checkpoint}",
        "--images=3",
        "--m=40",
        "--bins=4",
        f"--figure={tmp_path / 'sbc.png'}",
        "solver.steps=30",
        "solver.burn_in=10",
        "solver.thin=5",
        "solver.chains=2",
        "solver.keep_samples=2",
        cwd=tmp_path,
    )
    assert out["protocol"]["samples_per_image"] == 2 * 4
    for name, bins in (("thinned", 4), ("chains", 3)):
        assert len(out[name]["histogram"]) == bins and sum(out[name]["histogram"]) == 3 * out["protocol"]["latent_dim"]
        assert 0.0 <= out[name]["p_value"] <= 1.0
    assert (tmp_path / "sbc.png").is_file()


def test_sbc_benchmark(vae_checkpoint, tmp_path):
    out = run_benchmark(
        "sbc.py",
        f"--checkpoint={vae_checkpoint}",
        "--images=3",
        "--m=30",
        "--per-chain=2",
        "--bins=3",
        f"--figure={tmp_path / 'sbc.png'}",
        "solver.draws=10",
        "solver.warmup=4",
        "solver.mode_starts=4",
        "solver.mode_steps=2",
        "solver.leapfrog_steps=1",
        cwd=tmp_path,
    )
    row = out["table"][0]
    assert row["m"] == 30 and row["draws_per_image"] == 4 * 2
    assert sum(row["latent_pooled"]["histogram"]) == 3 * out["protocol"]["latent_dim"]
    assert sum(row["latent_pooled"]["expected"]) == pytest.approx(3 * out["protocol"]["latent_dim"])
    assert len(row["latent_per_coordinate_p"]["values"]) == out["protocol"]["latent_dim"]
    assert sum(row["functionals_pooled"]["histogram"]) == 3 * 4 and 0.0 <= row["functionals_pooled"]["p_value"] <= 1.0
    assert row["generator_evaluations_per_image"] > 0 and (tmp_path / "sbc.png").is_file()
    (tmp_path / "sbc.json").write_text(json.dumps(out))
    table = run_script("benchmarks/sbc.py", "--markdown", str(tmp_path / "sbc.json"), cwd=tmp_path).stdout
    assert table.count("\n") == 3 and "| 30 |" in table


def test_coverage_benchmark(vae_checkpoint, tmp_path):
    out = run_benchmark(
        "coverage.py",
        f"--checkpoint={vae_checkpoint}",
        "--val-images=2",
        "--test-images=2",
        "--m=30",
        f"--write-tau={tmp_path / 'tau.pt'}",
        f"--figure-prefix={tmp_path / 'cov'}",
        "--csgm-iterations=5",
        "solver.draws=10",
        "solver.warmup=4",
        "solver.mode_starts=4",
        "solver.mode_steps=2",
        cwd=tmp_path,
    )
    row = out["table"][0]
    for arm in ("raw", "mismatch"):
        for version in (row[arm], row[arm]["conformal"]):
            assert set(version["coverage"]) == {"0.5", "0.8", "0.9", "0.95"}
            assert all(0.0 <= mean <= 1.0 for mean, _ in version["coverage"].values())
    assert (
        (tmp_path / "tau.pt").is_file()
        and (tmp_path / "cov_vs_m.png").is_file()
        and (tmp_path / "cov_reliability_m30.png").is_file()
    )
    (tmp_path / "coverage.json").write_text(json.dumps(out))
    table = run_script("benchmarks/coverage.py", "--markdown", str(tmp_path / "coverage.json"), cwd=tmp_path).stdout
    assert table.count("\n") == 2 + 4 and "conformal (mismatch)" in table


def test_operators_benchmark(tmp_path):
    out = run_benchmark("operators.py", "--sizes=16x16x1,32x32x3", "--batch=2", "--repeats=1", cwd=tmp_path)
    assert [row["n"] for row in out["sizes"]] == [256, 3072]
    for row in out["sizes"]:
        assert row["gaussian_dense_gb"] == pytest.approx(row["m"] * row["n"] * 4 / 1e9, abs=1e-3)
        assert row["srht_seconds"] > 0 and row["random_convolution_seconds"] > 0 and "gaussian_seconds" in row


def test_uncertainty_benchmark(vae_checkpoint, tmp_path):
    from csgm.recovery.run import recover
    from tests.helpers import TINY_RECOVER, compose_config

    tiny = [t for t in TINY_RECOVER if not t.startswith("solver.")]
    cfg = compose_config(
        "recover",
        [
            *tiny,
            f"checkpoint={vae_checkpoint}",
            f"paths.output_root={tmp_path}",
            "solver=mala",
            "solver.steps=20",
            "solver.burn_in=10",
            "solver.chains=2",
            "solver.keep_samples=1",
            "measurements=[30,60]",
            "num_images=3",
        ],
    )
    recover(cfg, tmp_path / "run")
    out = run_benchmark("uncertainty.py", str(tmp_path / "run"), cwd=tmp_path)
    assert [row["m"] for row in out["table"]] == [30, 60] and all(row["images"] == 3 for row in out["table"])
    for row in out["table"]:
        assert 0.0 <= row["coverage90"][0] <= 1.0 and -1.0 <= row["std_error_correlation"][0] <= 1.0


def test_starts_benchmark(vae_checkpoint, tmp_path):
    out = run_benchmark(
        "starts.py",
        f"--checkpoint={vae_checkpoint}",
        "--images=2",
        "--measurements=20,40",
        "--single-starts",
        "solver.iterations=4",
        cwd=tmp_path,
    )
    assert [row["m"] for row in out["table"]] == [20, 40]
    for row in out["table"]:
        assert set(row["single_start"]) == {
            "prior",
            "prior_half",
            "zero",
            "uniform",
            "amortised",
        }  # the test VAE has an encoder
        assert all(math.isfinite(arm["mse_mean"]) for arm in row["single_start"].values())
        assert row["csgm_bank"]["generator_evaluations"] == 4096 + 2 * 2 * (4 + 1)
        ratio = row["csgm"]["generator_evaluations"] / row["csgm_bank"]["generator_evaluations"]
        assert row["evaluation_saving"] == pytest.approx(ratio, abs=0.006)  # rounded to 2 decimals


def test_generators_benchmark(tmp_path):
    from csgm.training.run import train
    from tests.helpers import TINY_GENERATORS, TINY_TRAIN, compose_config

    sweep = tmp_path / "sweep"
    for job, name in enumerate(("vae", "flow")):
        cfg = compose_config(
            "train",
            [
                *TINY_TRAIN,
                f"generator={name}",
                *TINY_GENERATORS[name],
                "trainer.max_epochs=3",
                "trainer.limit_train_batches=2",
                "checkpoint_every=1",
            ],
        )
        train(cfg, sweep / str(job))
    out = run_benchmark(
        "generators.py",
        f"--sweep={sweep}",
        "--measurements=50,100",
        "--images=2",
        "--evaluation-images=2",
        "--study-images=2",
        "--threads=1",
        f"--plot={tmp_path / 'img'}",
        f"--output-root={tmp_path / 'out'}",
        cwd=tmp_path,
    )
    assert set(out["curves"]) == {"CSGM-VAE", "CSGM-flow", "Lasso"}
    assert all([row["m"] for row in rows] == [50, 100] for rows in out["curves"].values())
    assert (
        out["evaluation"]["flow"]["test_bits_per_dim"] is not None
        and out["evaluation"]["VAE"]["test_bits_per_dim"] is None
    )
    points = out["study"]["points"]
    assert sorted((p["label"], p["epochs"]) for p in points) == [
        ("VAE", 1),
        ("VAE", 2),
        ("VAE", 3),
        ("flow", 1),
        ("flow", 2),
        ("flow", 3),
    ]
    assert all(-1 <= value <= 1 for value in out["study"]["spearman"].values())
    assert (tmp_path / "img" / "generators_cs.png").is_file() and (tmp_path / "img" / "generators_study.png").is_file()


def test_peers_benchmark(vae_checkpoint, tmp_path):
    pytest.importorskip("deepinv", reason="the peers benchmark needs pip install -e '.[peers]'")
    out = run_benchmark(
        "peers.py", f"--checkpoint={vae_checkpoint}", "--images=2", "--calls=2", "--threads=1", cwd=tmp_path
    )
    assert set(out["csgm_arms"]) == {"csgm", "csgm_bank", "csgm_gn", "csgm_qn"} and set(out["peer_arms"]) == {
        "deepinv_defaults",
        "deepinv_paper_settings",
    }
    for arm in (*out["csgm_arms"].values(), *out["peer_arms"].values()):
        assert arm["mse_mean"] > 0 and arm["seconds"] > 0
    peer, csgm = out["peer_arms"]["deepinv_paper_settings"], out["csgm_arms"]["csgm"]
    assert out["speed_ratio_equal_work"] == pytest.approx(peer["seconds"] / csgm["seconds"], rel=0.02)
    assert set(out["lasso"]["cases"]) == {"validation_lambda", "lambda_0.3"}


def test_operator_quality_benchmark(tmp_path):
    out = run_benchmark(
        "operator_quality.py",
        "--size=16x16x3",
        "--measurements=64",
        "--images=2",
        "--base-channels=4",
        "--threads=1",
        cwd=tmp_path,
    )
    rows = out["rows"]
    assert [row["operator"] for row in rows] == ["gaussian", "srht", "random_convolution"] and out["protocol"][
        "n"
    ] == 768
    assert rows[0]["ratio_to_gaussian"] == 1.0
    for row in rows:
        assert row["mse_mean"] > 0 and row["ratio_to_gaussian"] == pytest.approx(
            row["mse_mean"] / rows[0]["mse_mean"], rel=0.01
        )


def test_diffusion_benchmark(diffusion_checkpoint, tmp_path):
    out = run_benchmark(
        "diffusion.py",
        f"--checkpoint={diffusion_checkpoint}",
        "--solvers=dps,diffusion_langevin",
        "--measurements=25",
        "--images=2",
        "--set",
        "tuning.num_images=4",  # DPS's weight search on 4 validation digits
        f"--output-root={tmp_path / 'out'}",
        cwd=tmp_path,
    )
    assert out["protocol"]["operator"] == "gaussian" and out["protocol"]["noise_std"] == 0.1
    dps, langevin = out["curves"]["dps"]["points"][0], out["curves"]["diffusion_langevin"]["points"][0]
    assert dps["m"] == 25 and dps["images"] == 2 and dps["nfe_per_image"] == 50  # min(100 steps, 50 timesteps)
    assert json.loads(dps["params"])["weight"] in (0.1, 0.3, 1.0, 3.0)  # chosen on the validation split
    assert langevin["nfe_per_image"] == 8 * 50 * 3 and 0 <= langevin["coverage50"] <= langevin["coverage90"] <= 1
    assert -1 <= langevin["std_error_correlation"] <= 1 and langevin["pixel_std"] > 0
    for name in ("dps", "diffusion_langevin"):  # one file per solver, merged back into one
        (tmp_path / f"{name}.json").write_text(json.dumps({**out, "curves": {name: out["curves"][name]}}))
    merged = run_script(
        "benchmarks/diffusion.py",
        "--merge",
        str(tmp_path / "dps.json"),
        str(tmp_path / "diffusion_langevin.json"),
        cwd=tmp_path,
    )
    assert json.loads(merged.stdout)["curves"] == out["curves"]
    (tmp_path / "d.json").write_text(merged.stdout)
    other = {**out, "protocol": {**out["protocol"], "images": 3}}
    (tmp_path / "other.json").write_text(json.dumps(other))
    refused = run_script(
        "benchmarks/diffusion.py", "--merge", str(tmp_path / "dps.json"), str(tmp_path / "other.json"), cwd=tmp_path
    )
    assert refused.returncode != 0 and "different protocols" in refused.stderr
    beside = {"curves": {"CSGM-VAE": [{**dps, "mse_mean": 2 * dps["mse_mean"]}]}}  # a generators.py-shaped file
    (tmp_path / "beside.json").write_text(json.dumps(beside))
    tables = run_script(
        "benchmarks/diffusion.py",
        f"--markdown={tmp_path / 'd.json'}",
        f"--figure={tmp_path / 'curves.png'}",
        f"--beside={tmp_path / 'beside.json'}",
        f"--versus={ROOT / 'docs' / 'coverage.json'}",  # hmc's intervals at m = 10 ... 750 (docs/RESULTS.md)
        cwd=tmp_path,
    ).stdout
    table, versus = tables.strip().split("\n\n")
    assert "| diffusion | dps | 25 |" in table and "| 50 |" in table
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
    coverage_rows = [line for line in versus.splitlines() if line.startswith("| 25 |")]
    assert [line.split(" | ")[1] for line in coverage_rows] == [
        "diffusion_langevin (diffusion)",
        "hmc (raw) (VAE)",
        "hmc + mismatch (VAE)",
        "hmc raw + split conformal (VAE)",
    ]
    assert f"| {langevin['coverage90']:.3f} |" in coverage_rows[0]


def test_diffusion_benchmark_takes_another_measurement_model(diffusion_checkpoint, tmp_path):
    out = run_benchmark(
        "diffusion.py",
        f"--checkpoint={diffusion_checkpoint}",
        "--solvers=dps",
        "--experiment=paper_mnist_phase",
        "--set",
        "solver.weight_grid=[0.3]",  # a solver option: DPS's weight search has one candidate
        "--measurements=30",
        "--images=1",
        f"--output-root={tmp_path / 'out'}",
        cwd=tmp_path,
    )
    assert (out["protocol"]["operator"], out["protocol"]["noise"]) == ("phase_retrieval", "none")
    (run,) = (tmp_path / "out" / "recover").iterdir()
    (point,) = out["curves"]["dps"]["points"]
    assert "phase_retrieval" in run.name and point["images"] == 1 and json.loads(point["params"]) == {"weight": 0.3}
    assert out["protocol"]["overrides"] == ["solver.weight_grid=[0.3]"]


@pytest.mark.parametrize("script", ["diffusion.py", "sbc.py"])  # its own parser; the shared benchmark_parser
def test_a_result_file_that_is_missing_or_not_json_is_one_usage_line(script, tmp_path):
    (tmp_path / "bad.json").write_text("not json")
    bad, missing = tmp_path / "bad.json", tmp_path / "missing.json"
    for path, message in ((bad, f"'{bad}' is not JSON"), (missing, f"can't open '{missing}'")):
        result = run_script(f"benchmarks/{script}", "--markdown", str(path), cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        (line,) = [text for text in result.stderr.splitlines() if "error:" in text]
        assert f"argument --markdown: {message}" in line
