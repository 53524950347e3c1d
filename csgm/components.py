"""Config groups: how a conf/<group> entry becomes a checked object.

Each package declares its group beside its classes, e.g. ``OPERATOR = Group("operator", OPERATORS, Operator,
supplied={...})``: the registry of its own classes by ``name``, the base class a user's class named by
``_target_`` must subclass, and the arguments the run supplies (an operator's ``m``, ``image_shape``,
``seed``), which a config entry may not set. ``build`` is the check: the options against the class's
signature and type hints (csgm.options), then the constructor, which checks ranges. Adding a group is one
``Group`` beside its classes; adding a class is one registry entry (or none, by ``_target_``) and one YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from csgm.errors import CsgmError
from csgm.options import check_call, entry_options, parameters, resolve_target

__all__ = ["Group"]


@dataclass(frozen=True)
class Group:
    """One config group: ``key`` (the config key, and the prefix of its messages), ``registry`` (class or
    options function by name), ``base`` (what a ``_target_`` must subclass; None: no ``_target_``) and
    ``supplied`` (each argument the run supplies -> how the user sets it instead, ``{value}`` filled in);
    ``options_key`` is where its options sit when not beside ``name`` (``generator.arch``), ``name_key`` the key
    that names the registry entry (``generator.training.method``) and ``run`` the job that supplies the arguments."""

    key: str
    registry: Mapping[str, Callable[..., Any]]
    base: type | None = None
    supplied: Mapping[str, str] = field(default_factory=dict)
    options_key: str | None = None
    name_key: str = "name"
    run: str = "recovery run"

    def cls(self, cfg: Mapping[str, Any]) -> Callable[..., Any]:
        """The class of an entry: its registry entry by ``name``, or a user's class by ``_target_``."""
        if self.base is None:
            name = cfg.get(self.name_key)
            if name not in self.registry:
                raise CsgmError(f"unknown {self.key} {name!r}; choose one of: {', '.join(sorted(self.registry))}")
            return self.registry[name]
        return resolve_target(self.key, cfg, self.registry, self.base, self.name_key)

    def run_supplied(self, cfg: Mapping[str, Any]) -> set[str]:
        """The arguments of this entry's class that the run supplies."""
        return set(self.supplied) & set(parameters(self.cls(cfg)))

    def check(self, cfg: Mapping[str, Any]) -> Callable[..., Any]:
        """The class of an entry after checking its options: none the run supplies, the rest against the class's
        signature and type hints (the constructor checks ranges when ``build`` calls it)."""
        cls = self.cls(cfg)
        fixed = self.run_supplied(cfg)
        clash = sorted(fixed & set(cfg))
        if clash:
            key = clash[0]
            instead = self.supplied[key].format(value=cfg[key])
            raise CsgmError(f"{self.key}.{key}={cfg[key]!r} is set by the {self.run}; use {instead} instead")
        check_call(f"{self.options_key or self.key}.", cls, self.options(cfg), fixed)
        return cls

    def build(self, cfg: Mapping[str, Any], **supplied: Any) -> Any:
        """The checked object of an entry, constructed with the run's ``supplied`` values (None: the default)."""
        cls = self.check(cfg)
        fixed = self.run_supplied(cfg)
        return cls(**{k: v for k, v in supplied.items() if k in fixed and v is not None}, **self.options(cfg))

    def options(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """The options an entry passes to its class: all keys but the ones that choose the class."""
        return entry_options(cfg, self.name_key)
