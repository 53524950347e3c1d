"""Generators G: (N, k) latents -> (N, C, H, W) images in [0, 1]."""

from __future__ import annotations

from typing import Sequence

from csgm.components import Group
from csgm.generators.base import Generator
from csgm.generators.dcgan import DCGANDiscriminator, DCGANGenerator
from csgm.generators.diffusion import DiffusionGenerator, UNetDiffusion
from csgm.generators.flow import RealNVPFlow
from csgm.generators.vae import VAEDecoder, VAEEncoder

__all__ = [
    "GENERATORS",
    "GENERATOR",
    "Generator",
    "build_generator",
    "VAEDecoder",
    "VAEEncoder",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "RealNVPFlow",
    "DiffusionGenerator",
    "UNetDiffusion",
]

GENERATORS: dict[str, type[Generator]] = {
    "vae": VAEDecoder,
    "dcgan": DCGANGenerator,
    "flow": RealNVPFlow,
    "diffusion": UNetDiffusion,
}
GENERATOR = Group(
    "generator", GENERATORS, Generator, supplied={"image_shape": "the dataset's images"}, options_key="generator.arch"
)


def build_generator(name: str, arch: dict, image_shape: Sequence[int]) -> Generator:
    """Instantiate generator ``name`` with architecture options ``arch`` for ``image_shape``."""
    return GENERATOR.build({**arch, "name": name}, image_shape=tuple(image_shape))
