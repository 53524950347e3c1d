"""Where a training run lives: ``conf/train.yaml`` resolves its run folder here, so that a resumed run
(``resume=RUN_FOLDER``) writes into the folder it continues. A light module (OmegaConf only): the command registers
these resolvers before Hydra composes anything, without loading Lightning."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

__all__ = ["resume_run_dir", "register_train_resolvers"]


def resume_run_dir(resume: str | None, fresh: str) -> str:
    """The run folder of ``resume`` (a run folder, or a .ckpt inside its checkpoints/ folder); ``fresh`` without."""
    if resume is None or str(resume) == "":
        return fresh
    path = Path(str(resume)).expanduser()
    if path.suffix == ".ckpt":
        return str(path.parent.parent if path.parent.name == "checkpoints" else path.parent)
    return str(path)


def _hydra_subdir(resume: str | None, time: str) -> str:
    return ".hydra" if resume is None or str(resume) == "" else f".hydra/resume_{time}"


def register_train_resolvers() -> None:
    """``${csgm_train_dir:${resume},FRESH}`` and ``${csgm_hydra_subdir:${resume},TIME}`` for conf/train.yaml: a
    resumed run writes into its own folder and keeps the first run's .hydra files (idempotent)."""
    if not OmegaConf.has_resolver("csgm_train_dir"):
        OmegaConf.register_new_resolver("csgm_train_dir", resume_run_dir)
    if not OmegaConf.has_resolver("csgm_hydra_subdir"):
        OmegaConf.register_new_resolver("csgm_hydra_subdir", _hydra_subdir)
