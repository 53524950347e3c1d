"""The identity of a recovery run: run folders named by what determines their results.

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
from omegaconf.errors import OmegaConfBaseException

from csgm.errors import CsgmError
from csgm.files import atomic_write_bytes, cached_digest, content_digest
from csgm.precision import precision_identity
from csgm.recovery.paths import digest_cache_file, resolve_checkpoint, uses_generator
from csgm.recovery.quick import quick_config

__all__ = [
    "run_identity",
    "compatible_identity",
    "tuning_context",
    "run_fingerprint",
    "run_solver_label",
    "check_identity",
    "register_resolvers",
    "results_defining",
    "IDENTITY_FILE",
]

IDENTITY_KEYS = ("dataset", "input", "operator", "noise", "solver", "seed")
SPEED_ONLY_SOLVER_OPTIONS = ("flush_denormals", "compile")  # how fast, not what: a run may resume with them changed
IDENTITY_FILE = "identity.json"


def results_defining(solver_cfg: dict) -> dict:
    """The solver options that can change results: all but the speed-only ones."""
    return {k: v for k, v in solver_cfg.items() if k not in SPEED_ONLY_SOLVER_OPTIONS}


def measured_files(cfg: dict) -> dict[str, str]:
    """The files of ``input=file`` (y, and A if given) by config key."""
    if cfg.get("input") != "file":
        return {}
    return {key: path for key, path in (cfg.get("file") or {}).items() if path}


def file_digests(cfg: dict) -> dict[str, str] | None:
    """Content digests of the ``input=file`` files (cached per file), or None for other inputs."""
    if cfg.get("input") != "file":
        return None
    return {
        key: cached_digest(path, digest_cache_file(cfg), content_digest) for key, path in measured_files(cfg).items()
    }


def run_identity(cfg: dict, generator_digest: str | None) -> dict[str, Any]:
    """Everything that determines per-image results (not the m grid, the number of images, the batch
    size, the devices or the speed-only solver options); for ``input=file`` the content of its files.
    This one identity names the run folder, fills ``identity.json`` and keys the tuning cache (``tuning_context``)."""
    identity = {k: cfg.get(k) for k in IDENTITY_KEYS}
    if cfg.get("input") == "file":
        identity["file"] = file_digests(cfg)
    identity["solver"] = results_defining(identity["solver"])
    identity["generator"] = generator_digest
    identity["precision"] = precision_identity(
        cfg.get("trainer", {}).get("precision", "32-true"), cfg.get("matmul_precision", "highest")
    )
    if "auto" in identity["solver"].values():  # validation images choose the hyperparameter
        identity["tuning"] = dict(cfg.get("tuning") or {})
    return compatible_identity(identity, cfg)


def compatible_identity(identity: dict[str, Any], cfg: dict) -> dict[str, Any]:
    """The rules that keep the folders of earlier csgm versions where they were (each names the version that
    introduced it); every other identity change is a new folder.

    - v1 (restart pruning, tuning.halving_every): the setting joins the identity of solvers that prune their
      validation search only, so that the folders of, say, Lasso stay where they were.
    - v1 (Student-t likelihood): generative solvers fit the Student-t likelihood since the measurement model
      (before: ||A x - y||^2), so its folders record ``data_term``.
    """
    from csgm.solvers import solver_class

    if "tuning" in identity and not solver_class(cfg["solver"]).prunes_search:
        identity["tuning"].pop("halving_every", None)
    if (identity.get("noise") or {}).get("name") == "student_t":
        identity["data_term"] = "likelihood"
    return identity


def tuning_context(identity: dict[str, Any]) -> dict[str, Any]:
    """What a validation search's choice depends on beyond (m, seed, images, search settings): the run identity's
    solver (less its label), dataset, operator, noise, generator and arithmetic."""
    solver = {k: v for k, v in identity["solver"].items() if k != "label"}
    return {"solver": solver, **{k: identity[k] for k in ("dataset", "operator", "noise", "generator", "precision")}}


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
    """8 hex digits over ``run_identity``: re-running the same command finds the same folder and resumes it. A
    config whose identity cannot be read yet (a bad value, a missing file) gets the folder ``...-unresolved``:
    recover() then reports the same problem in one line and leaves no folder behind."""
    needed = (*IDENTITY_KEYS, "trainer", "matmul_precision", "tuning", "checkpoint", "paths", "file", "quick")
    try:
        node = _selected(cfg, needed) if OmegaConf.is_config(cfg) else {k: cfg.get(k) for k in needed}
        node = quick_config(node)
        digest = _checkpoint_digest(node) if uses_generator(node) else None
        return _hash(run_identity(node, digest))
    except (CsgmError, OSError, OmegaConfBaseException):
        return "unresolved"


def run_solver_label(cfg: Any) -> str:
    """The label of the solver the config builds (``Solver.label``, as its results name it) for the run folder's
    name; a solver entry that cannot be built yet gets ``unresolved`` (recover() then reports it in one line)."""
    from csgm.solvers import build_solver

    try:
        node = _selected(cfg, ("solver",))["solver"] if OmegaConf.is_config(cfg) else cfg["solver"]
        return build_solver(node).label
    except (CsgmError, OmegaConfBaseException):  # the user's problem: the run reports it in one line
        return "unresolved"


def _checkpoint_digest(node: dict) -> str:
    """The generator's content digest for the folder name; a checkpoint that cannot be read yet names the folder by
    its path (recover() then reports it in one line)."""
    from csgm.generators.checkpoint import checkpoint_digest

    try:
        return checkpoint_digest(
            resolve_checkpoint(node["checkpoint"], node["paths"]["output_root"]), digest_cache_file(node)
        )
    except (CsgmError, OSError):
        return f"unreadable:{node.get('checkpoint')}"


def check_identity(run_dir: Path, identity: dict[str, Any]) -> None:
    """Record ``identity`` in a new run folder, or check that an existing folder holds the same setting."""
    path = run_dir / IDENTITY_FILE
    stored = json.loads(path.read_text())["identity"] if path.is_file() else None
    current = json.loads(json.dumps(identity, sort_keys=True, default=str))
    if stored is None:
        atomic_write_bytes(
            path, json.dumps({"fingerprint": _hash(identity), "identity": current}, indent=1, sort_keys=True).encode()
        )
    elif stored != current:
        differing = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
        raise CsgmError(
            f"run folder {str(run_dir)!r} holds results of another setting (differs in: {', '.join(differing)}); "
            "use another folder or remove this one"
        )


def register_resolvers() -> None:
    """Register ``${csgm_fingerprint:}`` and ``${csgm_solver_label:}`` (run folders) and ``${csgm_sweep_mode:${sweep}}``
    (an experiment that lists a sweep runs as a multirun without -m) for Hydra (idempotent)."""
    if not OmegaConf.has_resolver("csgm_fingerprint"):
        OmegaConf.register_new_resolver("csgm_fingerprint", lambda *, _root_: run_fingerprint(_root_), use_cache=False)
    if not OmegaConf.has_resolver("csgm_solver_label"):
        OmegaConf.register_new_resolver(
            "csgm_solver_label", lambda *, _root_: run_solver_label(_root_), use_cache=False
        )
    if not OmegaConf.has_resolver("csgm_sweep_mode"):
        OmegaConf.register_new_resolver("csgm_sweep_mode", lambda sweep: "MULTIRUN" if sweep else "RUN")
