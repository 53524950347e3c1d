"""Bad input through the real entry points: exit status 2, exactly one line on stderr naming the key or
value, and no run folder left behind. One row per case; every class of bad input is here (types, ranges,
unknown keys, files, folders, disks), for recover.py and train.py."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import TINY_RECOVER, TINY_TRAIN, run_script, write_images

pytestmark = pytest.mark.slow

# (overrides, text the one stderr line must contain); {ckpt}, {dir}, {file}, {garbage}, {keyless}, {images}, {complex_y}
# are filled in by the fixture below.
RECOVER_CASES = [
    (["batch_size=0"], "batch_size=0 must be >= 1"),
    (["batch_size=-3"], "batch_size=-3 must be >= 1"),
    (["batch_size=abc"], "batch_size='abc' must be an integer"),
    (["num_images=abc"], "num_images='abc' must be an integer"),
    (["num_images=0"], "num_images=0 must be >= 1"),
    (["num_images=5000"], "num_images=5000 is out of range"),
    (["seed=abc"], "seed='abc' must be an integer"),
    (["seed=1.5"], "seed=1.5 must be an integer"),
    (["seed=-1"], "seed=-1 must be in [0, 4294967295]"),
    (["noise.std=abc"], "noise.std='abc' must be a number"),
    (["noise.std=-1"], "noise.std=-1 must be >= 0"),
    (["solver.iterations=ten"], "solver.iterations='ten' must be an integer"),
    (["solver.restarts=0"], "solver.restarts=0 must be > 0"),
    (["solver.lr=-1"], "solver.lr=-1 must be > 0"),
    (["solver.lr=inf"], "solver.lr=inf must be finite and > 0"),
    (["solver.stall_patience=-1"], "solver.stall_patience=-1 must be >= 0"),
    (["solver.momentum=2"], "solver.momentum=2 must be in [0, 1]"),
    (["noise.std=inf"], "noise.std=inf must be finite and >= 0"),
    (["operator=inpaint_hole", "operator.hole_position=[1]"], "operator.hole_position=[1] must be [top, left]"),
    (["solver.compile=maybe"], "solver.compile='maybe' must be true or false"),
    (["num_workers=-1"], "num_workers=-1 must be >= 0"),
    (["save_images=-1"], "save_images=-1 must be >= 0"),
    (["operator.normalize=no"], "operator.normalize='no' must be true or false"),
    (["operator.normalize=maybe"], "operator.normalize='maybe' must be true or false"),
    (["+operator.m=5"], "operator.m=5 is set by the recovery run; use measurements=[5] instead"),
    (["+operator.seed=3"], "operator.seed=3 is set by the recovery run; use seed=3 instead"),
    (["+operator.sigma=1"], "unknown key operator.sigma (value 1)"),
    (["operator=inpaint_hole", "operator.hole_size=100"], "hole_size=100 must be an integer in [1, 27]"),
    (["+bogus=1"], "unknown key bogus (value 1)"),
    (["+num_image=2"], "unknown key num_image (value 2); did you mean num_images?"),
    (["num_image=2"], "Could not override 'num_image'"),
    (["+solver.step=1"], "unknown key solver.step (value 1)"),
    (["+trainer.bogus=1"], "unknown key trainer.bogus (value 1)"),
    (["+generator.latent_dim=0"], "unknown key generator.latent_dim (value 0)"),
    (["tuning.num_images=-1"], "tuning.num_images=-1 must be >= 0"),
    (["input=train"], "input='train' must be one of 'test', 'val', 'gen_span'"),
    (["measurements=[abc]"], "measurements=['abc'] must be a list of numbers"),
    (["measurements=[100,1000]"], "m=1000 is out of range"),
    (["measurements=[]"], "measurements=[] is empty"),
    (["trainer.precision=99"], "trainer.precision=99 must be one of"),
    (["logger=wandb", "logger.mode=cloud"], "logger.mode='cloud' must be one of 'offline', 'online', 'disabled'"),
    (["dataset=imagenet"], "Could not find 'dataset/imagenet'; Available options in 'dataset': celeba, fashion_mnist"),
    (["dataset=folder"], "dataset.data_dir is required"),
    (
        ["dataset=folder", "dataset.data_dir={images}", "dataset.image_size=28", "dataset.channels=2"],
        "dataset.channels=2",
    ),
    (["checkpoint={dir}"], "is a folder; pass checkpoint=PATH to the .ckpt file"),
    (["checkpoint={dir}/missing.ckpt"], "does not exist"),
    (["checkpoint={garbage}"], "is not a readable torch checkpoint"),
    (["checkpoint={keyless}"], "has an incomplete 'csgm_generator' entry"),
    (["paths.output_root={file}"], "cannot use"),
    (["checkpoint={nan_weights}"], "checkpoint '{nan_weights}': weight 'net.0.weight' holds NaN (1 of"),
    (["checkpoint={inf_weights}"], "checkpoint '{inf_weights}': weight 'net.2.bias' holds inf (1 of"),
    (["checkpoint={huge_weights}"], "checkpoint '{huge_weights}': its generator gives NaN or inf images"),
    (
        ["checkpoint={saturated}"],
        "checkpoint '{saturated}': its generator gives images that do not vary with the latent",
    ),
    (
        ["checkpoint={shape_string}"],
        "checkpoint '{shape_string}': image_shape='28x28' must be [channels, height, width]",
    ),
    (["checkpoint={latent_string}"], "checkpoint '{latent_string}': latent_dim='20' must be an integer >= 1"),
    (["checkpoint={bad_arch}"], "checkpoint '{bad_arch}': its generator cannot be rebuilt (generator.arch.hidden_dims"),
    (["checkpoint={dir}/missing.ckpt"], "checkpoint '{dir}/missing.ckpt': the file does not exist"),
    (["generator=dcgan"], "checkpoint '{ckpt}': it holds a 'vae' generator, but generator=dcgan was chosen"),
    (
        [
            "dataset=folder",
            "dataset.data_dir={images}",
            "dataset.image_size=28",
            "dataset.channels=1",
            "dataset.test_size=2",
        ],
        "generator was trained on dataset 'mnist10k', but the images come from dataset 'folder'; pass dataset=mnist10k",
    ),
    (["input=file", "file.y={complex_y}"], "file.y='{complex_y}' holds complex numbers (complex128)"),
    (["input=file", "file.y=~/y.npy"], """cannot read the override 'file.y=~/y.npy' (LexerNoViableAltException"""),
    (["checkpoint=a=b.ckpt"], """quote the value for Hydra, inside shell quotes: 'checkpoint="a=b.ckpt"'"""),
    (["input=file", "file.y=/tmp/é.npy"], """inside shell quotes: 'file.y="/tmp/é.npy"'"""),
]
SOLVER_CASES = [  # solvers whose options differ from CSGM's (no TINY_RECOVER solver keys)
    (["solver=lasso", "solver.lambda_l1=abc"], "solver.lambda_l1='abc' must be a number > 0, or auto"),
    (["solver=lasso", "solver.lambda_grid=[0]"], "solver.lambda_grid=[0.0] must hold numbers > 0"),
    (["solver=nope"], "Could not find 'solver/nope'"),
    (["solver=lasso", "operator=phase_retrieval"], "solver 'lasso' needs a linear operator (it uses the adjoint A^T)"),
    (["solver=sparse_gen", "operator=one_bit"], "solver 'sparse_gen' needs a linear operator"),
    (
        ["solver=wirtinger_flow"],
        "solver 'wirtinger_flow' recovers from magnitudes y = |A x| (operator=phase_retrieval)",
    ),
    (["solver=biht", "operator=quantize"], "solver 'biht' recovers from 1-bit measurements (operator=one_bit)"),
    (["noise=poisson"], "poisson noise needs measurements A x >= 0 but operator 'gaussian' gives signed values"),
    (["noise=student_t", "operator=one_bit"], "operator 'one_bit' quantises after the noise"),
    (["noise=poisson", "operator=identity", "noise.scale=0"], "noise.scale=0 must be > 0"),
    (["operator=quantize", "operator.bits=0"], "operator.bits=0 must be in [1, 16]"),
    (["operator=one_bit", "operator.dither=-1"], "operator.dither=-1 must be >= 0"),
    (["solver=ilo_qn", "solver.first_stage.iterations=0"], "solver.first_stage.iterations=0 must be > 0"),
    (
        ["solver=ilo_qn", "solver.first_stage.geodesic=0.5"],
        "solver.first_stage.geodesic=0.5 corrects Gauss-Newton steps, which solver.first_stage.secant=true does not take",
    ),
    (["solver=ilo_qn", "+solver.restarts=3"], "solver.restarts=3 sets the Adam first stage, which solver.first_stage"),
    (["solver=pgd_qn", "+solver.inner_iterations=5"], "solver.inner_iterations=5 sets the Adam projection"),
    (["solver=pgd_qn", "solver.projection.tol=-1"], "solver.projection.tol=-1 must be >= 0"),
    (["solver=pgd", "+solver.jacobian_every=0"], "solver.jacobian_every=0 sets the second-order projection's"),
    (["solver=biht", "operator=one_bit", "solver.sparsity=0"], "solver.sparsity=0 must be an integer >= 1"),
    (
        ["solver=biht", "operator=one_bit", "solver.sparsity=1000"],
        "solver.sparsity=1000 is more coefficients than the image has (n = 784)",
    ),
]
TRAIN_CASES = [
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 trains nothing"),
    (["trainer.max_epochs=-1"], "never stops"),
    (["batch_size=0"], "batch_size=0 must be >= 1"),
    (["seed=-1"], "seed=-1 must be in [0, 4294967295]"),
    (["generator.training.lr=-0.1"], "generator.training.lr=-0.1 must be > 0"),
    (["generator.arch.latent_dim=0"], "generator.arch.latent_dim=0 must be >= 1"),
    (["generator.arch.hidden_dims=[]"], "generator.arch.hidden_dims=[] must be a non-empty list"),
    (["+generator.arch.layers=3"], "unknown key generator.arch.layers (value 3)"),
    (["generator=dcgan", "generator.training.beta1=2"], "generator.training.beta1=2 must be in [0, 0.999]"),
    (["dataset.val_size=abc"], "dataset.val_size='abc' must be a number"),
    (["+bogus=1"], "unknown key bogus (value 1)"),
    (
        ["dataset=folder", "dataset.data_dir={images}", "dataset.image_size=0"],
        "dataset.image_size=0 must be a size >= 1",
    ),
    (
        ["dataset=folder", "dataset.data_dir={broken}", "dataset.image_size=28", "dataset.channels=1"],
        "image file '{broken}/000000.png' cannot be read",
    ),
    (["paths.output_root={file}"], "cannot use"),
    (["resume={dir}/no_such_run"], "resume={dir}/no_such_run: no training run there"),
    (
        ["resume={dir}/no_such_run/checkpoints/last.ckpt"],
        "resume={dir}/no_such_run/checkpoints/last.ckpt: no training run",
    ),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory, vae_checkpoint) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "garbage.ckpt").write_bytes(b"not a checkpoint at all")
    torch.save({"csgm_generator": {"name": "vae"}}, root / "keyless.ckpt")
    (root / "a_file").write_text("a file where a folder should be")
    write_images(root / "images", 12, (28, 28), mode="L")
    np.save(root / "complex_y.npy", np.ones((2, 20), dtype=complex))
    broken = root / "broken"
    write_images(broken, 12, (28, 28), mode="L")
    (broken / "000000.png").write_bytes((broken / "000000.png").read_bytes()[:40])  # truncated
    return {
        "ckpt": vae_checkpoint,
        "dir": str(root),
        "file": str(root / "a_file"),
        "garbage": str(root / "garbage.ckpt"),
        "keyless": str(root / "keyless.ckpt"),
        "images": str(root / "images"),
        "complex_y": str(root / "complex_y.npy"),
        "broken": str(broken),
        **_edited_checkpoints(vae_checkpoint, root),
    }


def _edited_checkpoints(path: str, root: Path) -> dict[str, str]:
    """Copies of a good checkpoint with one thing wrong each (diverged weights, metadata of the wrong type)."""

    def first_weight(payload):
        payload["state_dict"]["net.0.weight"].view(-1)[7] = float("nan")

    def last_bias(payload):
        payload["state_dict"]["net.2.bias"].view(-1)[0] = float("inf")

    def every_weight_huge(payload):
        for tensor in payload["state_dict"].values():
            tensor.mul_(1e30)

    def first_layer_huge(payload):
        payload["state_dict"]["net.0.weight"].mul_(1e30)

    edits = {
        "nan_weights": first_weight,
        "inf_weights": last_bias,
        "huge_weights": every_weight_huge,
        "saturated": first_layer_huge,
        "shape_string": lambda payload: payload.update(image_shape="28x28"),
        "latent_string": lambda payload: payload.update(latent_dim="20"),
        "bad_arch": lambda payload: payload["arch"].update(hidden_dims="wide"),
    }
    made = {}
    for name, edit in edits.items():
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        edit(checkpoint["csgm_generator"])
        torch.save(checkpoint, root / f"{name}.ckpt")
        made[name] = str(root / f"{name}.ckpt")
    return made


def _run_all(script: str, base: list[str], cases: list, files: dict, tmp_path: Path) -> list[tuple]:
    def one(index_case):
        index, (overrides, expected) = index_case
        out = tmp_path / f"case{index}"
        out.mkdir(parents=True)
        args = [*base, f"paths.output_root={out}", *(o.format(**files) for o in overrides)]
        return overrides, expected.format(**files), out, run_script(script, *args, cwd=out, timeout=300)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, enumerate(cases)))


def _check(results: list[tuple]) -> None:
    problems = []
    for overrides, expected, out, result in results:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        ok = (
            result.returncode == 2 and len(lines) == 1 and lines[0].startswith("csgm: error: ") and expected in lines[0]
        )
        leftovers = [
            p
            for p in out.rglob("*")
            if p.is_dir()
            and p.parent.name in ("recover", "train")
            and all(q.name in (".hydra", ".lock", "identity.json") or q.suffix == ".log" for q in p.iterdir())
        ]
        if not ok or leftovers:
            problems.append(f"{overrides}: exit {result.returncode}, stderr {lines[-3:]}, leftover folders {leftovers}")
    assert not problems, "\n".join(problems)


def test_recover_bad_inputs_fail_in_one_line(files, tmp_path):
    base = [*TINY_RECOVER, f"checkpoint={files['ckpt']}", "measurements=[20]", "num_images=2"]
    cases = [(o, e) for o, e in RECOVER_CASES if not o[0].startswith("paths.")]
    _check(_run_all("recover.py", base, cases, files, tmp_path))


def test_recover_bad_solver_options_and_unwritable_output(files, tmp_path):
    base = [
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"checkpoint={files['ckpt']}",
        "measurements=[20]",
        "num_images=2",
    ]
    unwritable = [(o, e) for o, e in RECOVER_CASES if o[0].startswith("paths.")]
    results = _run_all("recover.py", base, SOLVER_CASES, files, tmp_path / "solvers")
    results += _run_all(
        "recover.py",
        [*TINY_RECOVER, f"checkpoint={files['ckpt']}", "measurements=[20]", "num_images=2"],
        unwritable,
        files,
        tmp_path / "unwritable",
    )
    _check(results)


def test_train_bad_inputs_fail_in_one_line(files, tmp_path):
    _check(_run_all("train.py", TINY_TRAIN, TRAIN_CASES, files, tmp_path))
    assert not Path(files["dir"], "no_such_run").exists()  # a resume= that names no run makes no folder there


def test_a_failed_job_does_not_stop_the_sweep(files, tmp_path):
    """seed=abc fails in one line; the other job still runs; the sweep ends by listing it (exit 2)."""
    result = run_script(
        "recover.py",
        "-m",
        *TINY_RECOVER,
        f"checkpoint={files['ckpt']}",
        "measurements=[20]",
        "num_images=2",
        "seed=abc,0",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert lines[-2] == "csgm: error: 1 job(s) of the sweep failed:"
    assert lines[-1].startswith("  job 0 (") and " seed=abc " in lines[-1]
    assert lines[-1].endswith("): seed='abc' must be an integer")
    (run_dir,) = [p for p in (tmp_path / "recover").iterdir() if p.is_dir()]  # the good job's folder only
    assert (run_dir / "results.csv").is_file()


def test_unwritable_output_in_a_read_only_mount(files, tmp_path):
    """A real read-only file system (tmpfs mounted ro): one line naming the folder, nothing written."""
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({made.stderr.decode().strip()})")
    try:
        result = run_script(
            "recover.py",
            *TINY_RECOVER,
            f"checkpoint={files['ckpt']}",
            "measurements=[20]",
            "num_images=2",
            f"paths.output_root={mount}/out",
            cwd=tmp_path,
        )
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and lines == [
        f"csgm: error: cannot use '{mount}/out': Read-only file system; set paths.output_root to a writable folder"
    ]


def test_full_disk_names_the_file_and_keeps_every_finished_shard(files, tmp_path):
    """A real full disk (a 300 KiB tmpfs): one line naming the file; finished shards stay; no temporary
    file is left; after making room, the run resumes and completes."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip()})")
    try:
        args = [
            *TINY_RECOVER,
            f"checkpoint={files['ckpt']}",
            "measurements=[20,40]",
            "num_images=20",
            "batch_size=2",
            f"paths.output_root={mount}/out",
        ]
        full = run_script("recover.py", *args, cwd=tmp_path)
        lines = [line for line in full.stderr.splitlines() if line.strip()]
        shards = sorted(mount.rglob("shards/*.pt"))
        temporary = [p for p in mount.rglob(".*") if p.is_file() and p.parent.name != ".hydra"]
        subprocess.run(["mount", "-o", "remount,size=4m", str(mount)], check=True)
        resumed = run_script("recover.py", *args, cwd=tmp_path)
        results = sorted(mount.rglob("results.csv"))
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    assert full.returncode == 2 and len(lines) == 1 and "No space left on device" in lines[0], full.stderr
    assert f"cannot use '{mount}/out/" in lines[0]
    assert shards and not [p for p in temporary if p.name != ".lock"]
    assert resumed.returncode == 0, resumed.stderr
    assert len(results) == 1


def test_no_output_folder_is_created_for_a_config_error(tmp_path):
    result = run_script("recover.py", "seed=abc", f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    assert not (tmp_path / "recover").exists() or not any((tmp_path / "recover").iterdir())
    assert os.listdir(tmp_path) in ([], ["recover"])
