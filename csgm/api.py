"""Configs for notebooks: compose ``conf/recover.yaml`` or ``conf/train.yaml`` with overrides, as the
command line does, then pass the result to ``csgm.recover`` or ``csgm.train``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from csgm.errors import CsgmError

__all__ = ["compose"]

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose(name: str = "recover", overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> DictConfig:
    """The config ``name`` (recover or train) with command-line style ``overrides``, e.g.
    ``compose("recover", ["solver=csgm_fast", "measurements=[50,100]"])``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from csgm.recovery.identity import register_resolvers

    folder = Path(config_dir) if config_dir is not None else DEFAULT_CONFIG_DIR
    if not (folder / f"{name}.yaml").is_file():
        raise CsgmError(f"no {name}.yaml in {str(folder)!r}; pass config_dir= the project's conf/ folder")
    register_resolvers()
    with initialize_config_dir(str(folder.resolve()), version_base="1.3"):
        return hydra_compose(name, overrides=list(overrides))
