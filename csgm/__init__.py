"""csgm: compressed sensing with generative models."""

from csgm.errors import CsgmError

__all__ = ["CsgmError"]
__version__ = "0.1.0"
