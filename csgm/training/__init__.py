"""LightningModules that train generators (one per ``generator.training.method``), and the training run itself."""

from __future__ import annotations

from csgm.errors import CsgmError, check_choice
from csgm.generators import GENERATOR
from csgm.options import check_call, check_keys, check_value
from csgm.training.base import GeneratorModule
from csgm.training.flow import FlowModule
from csgm.training.gan import GANModule
from csgm.training.glo import GLOModule
from csgm.training.vae import VAEModule

__all__ = [
    "GANModule",
    "VAEModule",
    "GLOModule",
    "FlowModule",
    "TRAINING_METHODS",
    "training_module",
    "training_options",
    "check_generator_config",
]

TRAINING_METHODS: dict[str, type[GeneratorModule]] = {
    module.method: module for module in (VAEModule, GANModule, GLOModule, FlowModule)
}


def training_module(generator: dict) -> type[GeneratorModule]:
    """The module class of ``generator.training.method``, checked against the generator it must train."""
    method = generator.get("training", {}).get("method")
    check_choice("generator.training.method", method, TRAINING_METHODS)
    module = TRAINING_METHODS[method]
    if module.generators is not None and generator["name"] not in module.generators:
        raise CsgmError(
            f"generator.training.method={method} cannot train generator={generator['name']} (it trains "
            f"{', '.join(module.generators)}); pick another generator/training"
        )
    return module


def training_options(generator: dict) -> dict:
    """The options ``generator.training`` passes to its module (all but ``method``, which chose the module)."""
    return {k: v for k, v in generator.get("training", {}).items() if k != "method"}


def check_generator_config(cfg: dict) -> None:
    """A conf/generator entry: {name, arch, training} against the generator's and its training module's signatures."""
    check_keys("generator.", cfg, ("name", "arch", "training"))
    check_value("generator.arch", cfg.get("arch", {}), dict)
    check_value("generator.training", cfg.get("training", {}), dict)
    GENERATOR.check({**cfg.get("arch", {}), "name": cfg.get("name")})
    module = training_module(cfg)
    check_call(
        "generator.training.", module, training_options(cfg), ("name", "arch", "image_shape", "dataset", "range_error")
    )
