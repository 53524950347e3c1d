"""LightningModules that train generators (one per ``generator.training.method``), and the training run itself.

``TRAINING`` is the ``generator.training`` group: its registry by ``method``, a user's ``GeneratorModule`` by
``_target_``, and the arguments the training run supplies (the generator, the dataset's images, range_error).
"""

from __future__ import annotations

from typing import Sequence

from csgm.components import Group
from csgm.generators import GENERATOR
from csgm.options import check_keys, check_value
from csgm.training.base import GeneratorModule
from csgm.training.diffusion import DiffusionModule
from csgm.training.flow import FlowModule
from csgm.training.gan import GANModule
from csgm.training.glo import GLOModule
from csgm.training.vae import VAEModule

__all__ = [
    "GANModule",
    "VAEModule",
    "GLOModule",
    "FlowModule",
    "DiffusionModule",
    "GeneratorModule",
    "TRAINING_METHODS",
    "TRAINING",
    "build_training_module",
    "check_generator_config",
]

TRAINING_METHODS: dict[str, type[GeneratorModule]] = {
    module.method: module for module in (VAEModule, GANModule, GLOModule, FlowModule, DiffusionModule)
}
TRAINING = Group(
    "generator.training",
    TRAINING_METHODS,
    GeneratorModule,
    supplied={
        "name": "generator={value}",
        "arch": "generator.arch",
        "image_shape": "the dataset's images",
        "dataset": "dataset={value}",
        "range_error": "range_error at the top",
    },
    name_key="method",
    run="training run",
)


def check_generator_config(cfg: dict) -> None:
    """A conf/generator entry: {name, arch, training} against the generator's and its training module's signatures,
    and the training method against the generator it must train."""
    check_keys("generator.", cfg, ("name", "arch", "training"))
    check_value("generator.arch", cfg.get("arch", {}), dict)
    check_value("generator.training", cfg.get("training", {}), dict)
    GENERATOR.check({**cfg.get("arch", {}), "name": cfg.get("name")})
    TRAINING.check(cfg.get("training", {})).check_generator(cfg.get("name"))


def build_training_module(
    generator: dict, image_shape: Sequence[int], dataset: str, range_error: dict | None
) -> GeneratorModule:
    """The checked module of ``generator.training`` that trains ``generator`` on ``image_shape`` images."""
    return TRAINING.build(
        generator.get("training", {}),
        name=generator["name"],
        arch=generator["arch"],
        image_shape=image_shape,
        dataset=dataset,
        range_error=range_error,
    )
