"""Where recovery runs live: `checkpoint=latest`, and run folders named by what determines their results.

A run folder's name ends with a hash of its *identity*: the dataset, input, operator, noise, solver
(less its speed-only options), seed, the solver's arithmetic (csgm.precision), the validation setting of
tuned solvers, and the content digest of the generator (its architecture and weights, not the checkpoint's path). The
identity is also stored in the folder (``identity.json``) and checked on every resume, so results of two
settings or two generators can never mix in one folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from csgm.errors import CsgmError
from csgm.files import atomic_write_bytes, cached_digest, content_digest
from csgm.precision import precision_identity

__all__ = ["resolve_checkpoint", "run_identity", "run_fingerprint", "check_identity", "register_resolvers",
           "results_defining", "uses_generator", "digest_cache_file", "IDENTITY_FILE"]

IDENTITY_KEYS = ("dataset", "input", "operator", "noise", "solver", "seed")
SPEED_ONLY_SOLVER_OPTIONS = ("flush_denormals", "compile")  # how fast, not what: a run may resume with them changed
IDENTITY_FILE = "identity.json"


def results_defining(solver_cfg: dict) -> dict:
    """The solver options that can change results: all but the speed-only ones."""
    return {k: v for k, v in solver_cfg.items() if k not in SPEED_ONLY_SOLVER_OPTIONS}


def resolve_checkpoint(value: str | None, output_root: str | Path) -> str | None:
    """``latest`` -> the newest ``last.ckpt`` written by train.py under ``output_root``; else ``value``."""
    if value != "latest":
        return value
    found = sorted(Path(output_root).glob("train*/**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CsgmError(f"checkpoint=latest found no checkpoints/last.ckpt under {str(output_root)!r}; "
                        "run `python train.py` first or pass checkpoint=PATH")
    return str(found[-1].resolve())


def uses_generator(cfg: dict) -> bool:
    """Whether the run needs the generator (a generative solver, or images drawn from G)."""
    from csgm.solvers import solver_class

    return cfg.get("input") == "gen_span" or solver_class(cfg["solver"]).needs_generator


def digest_cache_file(cfg: dict) -> Path:
    """Where content digests of checkpoints and input files are cached (so large files are hashed once)."""
    return Path(cfg["paths"]["output_root"]) / "cache" / "file_digests.json"


def measured_files(cfg: dict) -> dict[str, str]:
    """The files of ``input=file`` (y, and A if given) by config key."""
    if cfg.get("input") != "file":
        return {}
    return {key: path for key, path in (cfg.get("file") or {}).items() if path}


def file_digests(cfg: dict) -> dict[str, str] | None:
    """Content digests of the ``input=file`` files (cached per file), or None for other inputs."""
    if cfg.get("input") != "file":
        return None
    return {key: cached_digest(path, digest_cache_file(cfg), content_digest) for key, path in measured_files(cfg).items()}


def run_identity(cfg: dict, generator_digest: str | None) -> dict[str, Any]:
    """Everything that determines per-image results (not the m grid, the number of images, the batch
    size, the devices or the speed-only solver options); for ``input=file`` the content of its files."""
    identity = {k: cfg.get(k) for k in IDENTITY_KEYS}
    if cfg.get("input") == "file":
        identity["file"] = file_digests(cfg)
    identity["solver"] = results_defining(identity["solver"])
    identity["generator"] = generator_digest
    identity["precision"] = precision_identity(cfg.get("trainer", {}).get("precision", "32-true"),
                                               cfg.get("matmul_precision", "highest"))
    if "auto" in identity["solver"].values():  # validation images choose the hyperparameter
        identity["tuning"] = search_identity(cfg)
    if (identity.get("noise") or {}).get("name") == "student_t":  # generative solvers fit its likelihood since the
        identity["data_term"] = "likelihood"                       # measurement model (before: ||A x - y||^2)
    return identity


def search_identity(cfg: dict) -> dict:
    """The tuning settings that change a validation search's choice: the pruning of restarts only for solvers
    that prune (so that the folders of, say, Lasso stay where they were)."""
    from csgm.solvers import solver_class

    tuning = dict(cfg.get("tuning") or {})
    if not solver_class(cfg["solver"]).prunes_search:
        tuning.pop("halving_every", None)
    return tuning


def _hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _selected(root: DictConfig, keys: tuple[str, ...]) -> dict[str, Any]:
    """The given keys of the root config, each resolved on its own (``run_name`` itself is never resolved)."""
    out = {}
    for key in keys:
        node = OmegaConf.select(root, key)
        out[key] = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    return out


def run_fingerprint(cfg: Any) -> str:
    """8 hex digits over ``run_identity``: re-running the same command finds the same folder and resumes
    it. Never raises (it names a folder): a config that cannot be resolved is reported by recover()."""
    try:
        needed = (*IDENTITY_KEYS, "trainer", "matmul_precision", "tuning", "checkpoint", "paths", "file")
        node = _selected(cfg, needed) if OmegaConf.is_config(cfg) else {k: cfg.get(k) for k in needed}
    except Exception:
        return "unresolved"
    digest = None
    try:
        if uses_generator(node):
            checkpoint = resolve_checkpoint(node["checkpoint"], node["paths"]["output_root"])
            from csgm.generators.checkpoint import checkpoint_digest

            digest = checkpoint_digest(checkpoint, digest_cache_file(node))
    except Exception:
        digest = f"unreadable:{node.get('checkpoint')}"  # recover() reports the checkpoint in one line
    try:
        return _hash(run_identity(node, digest))
    except Exception:
        return "unresolved"  # e.g. a missing input file: recover() reports it in one line


def check_identity(run_dir: Path, identity: dict[str, Any]) -> None:
    """Record ``identity`` in a new run folder, or check that an existing folder holds the same setting."""
    path = run_dir / IDENTITY_FILE
    stored = json.loads(path.read_text())["identity"] if path.is_file() else None
    current = json.loads(json.dumps(identity, sort_keys=True, default=str))
    if stored is None:
        atomic_write_bytes(path, json.dumps({"fingerprint": _hash(identity), "identity": current}, indent=1,
                                            sort_keys=True).encode())
    elif stored != current:
        differing = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
        raise CsgmError(f"run folder {str(run_dir)!r} holds results of another setting (differs in: {', '.join(differing)}); "
                        "use another folder or remove this one")


def register_resolvers() -> None:
    """Register ``${csgm_fingerprint:}`` (run folders) and ``${csgm_sweep_mode:${sweep}}`` (an experiment
    that lists a sweep runs as a multirun without -m) for Hydra (idempotent)."""
    if not OmegaConf.has_resolver("csgm_fingerprint"):
        OmegaConf.register_new_resolver("csgm_fingerprint", lambda *, _root_: run_fingerprint(_root_), use_cache=False)
    if not OmegaConf.has_resolver("csgm_sweep_mode"):
        OmegaConf.register_new_resolver("csgm_sweep_mode", lambda sweep: "MULTIRUN" if sweep else "RUN")
