"""Configs for notebooks: compose ``recover.yaml`` or ``train.yaml`` with overrides, as the command line does
(from the repository's ``conf/`` in a clone, the packaged ``csgm.conf`` in an installed wheel), then pass the
result to ``csgm.recover`` or ``csgm.train``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from csgm.cli import config_path
from csgm.errors import CsgmError

__all__ = ["compose"]


def compose(name: str = "recover", overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> DictConfig:
    """The config ``name`` (recover or train) with command-line style ``overrides``, e.g.
    ``compose("recover", ["solver=csgm_fast", "measurements=[50,100]"])``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module

    from csgm.recovery.identity import register_resolvers
    from csgm.run_folders import register_train_resolvers

    register_resolvers()
    register_train_resolvers()
    source = str(config_dir) if config_dir is not None else config_path()
    if source.startswith("pkg://"):
        with initialize_config_module(source.removeprefix("pkg://"), version_base="1.3"):
            return hydra_compose(name, overrides=list(overrides))
    folder = Path(source)
    if not (folder / f"{name}.yaml").is_file():
        raise CsgmError(f"no {name}.yaml in {str(folder)!r}; pass config_dir= the project's conf/ folder")
    with initialize_config_dir(str(folder.resolve()), version_base="1.3"):
        return hydra_compose(name, overrides=list(overrides))
