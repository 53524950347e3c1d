"""Where a training run lives: ``conf/train.yaml`` resolves its run folder here, so that a resumed run
(``resume=RUN_FOLDER``) writes into the folder it continues. A light module (OmegaConf only): the command registers
these resolvers before Hydra composes anything, without loading Lightning."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from csgm.errors import CsgmError

__all__ = ["resume_checkpoint", "resume_run_dir", "register_train_resolvers"]


def resume_checkpoint(resume: str) -> Path:
    """The checkpoint file ``resume`` names: a .ckpt itself, or a run folder's checkpoints/last.ckpt."""
    path = Path(str(resume)).expanduser()
    if path.suffix != ".ckpt":
        path = path / "checkpoints" / "last.ckpt"
    if not path.parent.is_dir():
        raise CsgmError(
            f"resume={resume}: no training run there (no {path}); pass the folder train.py printed as "
            "run_dir, or a .ckpt file inside its checkpoints/ folder"
        )
    if not path.is_file():
        raise CsgmError(
            f"resume={resume}: {path} does not exist (the run stopped before its first epoch ended); "
            "start the run again without resume="
        )
    return path


def resume_run_dir(resume: str | None, fresh: str) -> str:
    """The run folder of ``resume`` (a run folder, or a .ckpt inside its checkpoints/ folder); ``fresh`` without.
    A ``resume`` that names no run fails here, before Hydra makes the folder or opens its log file in it."""
    if resume is None or str(resume) == "":
        return fresh
    folder = resume_checkpoint(str(resume)).parent
    return str(folder.parent if folder.name == "checkpoints" else folder)


def _hydra_subdir(resume: str | None, time: str) -> str:
    return ".hydra" if resume is None or str(resume) == "" else f".hydra/resume_{time}"


def register_train_resolvers() -> None:
    """``${csgm_train_dir:${resume},FRESH}`` and ``${csgm_hydra_subdir:${resume},TIME}`` for conf/train.yaml: a
    resumed run writes into its own folder and keeps the first run's .hydra files (idempotent)."""
    if not OmegaConf.has_resolver("csgm_train_dir"):
        OmegaConf.register_new_resolver("csgm_train_dir", resume_run_dir)
    if not OmegaConf.has_resolver("csgm_hydra_subdir"):
        OmegaConf.register_new_resolver("csgm_hydra_subdir", _hydra_subdir)
