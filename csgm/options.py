"""Options checked against a signature: unknown keys and wrong types fail in one line, then the object is built.

Every object a config builds (operator, noise, solver, dataset, generator, training module, logger) goes
through ``instantiate``: the options are checked against the constructor's parameters and their type
hints (a string ``'no'`` is not a bool, ``1.5`` is not an int), following ``**kwargs`` into the parent
class, and errors raised inside the constructor pass through unchanged. A config entry with
``_target_: package.module.Class`` builds a user's own class, outside csgm, the same way.
"""

from __future__ import annotations

import collections.abc
import difflib
import importlib
import inspect
import types
import typing
from typing import Any, Callable, Literal, Mapping, Union

from csgm.errors import CsgmError

__all__ = [
    "default_of",
    "conforms",
    "describe",
    "check_value",
    "check_keys",
    "parameters",
    "check_call",
    "entry_options",
    "instantiate",
    "resolve_target",
]

_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable, typing.Sequence)
_MAPPINGS = (dict, collections.abc.Mapping, typing.Mapping)


def conforms(value: Any, annotation: Any) -> bool:
    """Whether ``value`` (a plain config value) fits the type hint ``annotation``; unknown hints accept."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        return any(conforms(value, a) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return False
        element = args[0] if args and (origin is not tuple or args[-1] is Ellipsis or len(set(args)) == 1) else Any
        return all(conforms(v, element) for v in value)
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        return isinstance(value, dict)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def describe(annotation: Any) -> str:
    """Words for a type hint: 'an integer', 'a number', 'true or false', "one of 'a', 'b'", ..."""
    if annotation is None or annotation is type(None):
        return "null"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        words = list(dict.fromkeys(describe(a) for a in args))
        if "a number" in words and "an integer" in words:  # every integer is a number
            words.remove("an integer")
        return " or ".join(words)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if annotation in names:
        return names[annotation]
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


def _plural(words: str) -> str:
    for single, many in (
        ("an integer", "integers"),
        ("a number", "numbers"),
        ("a string", "strings"),
        ("true or false", "booleans"),
    ):
        words = words.replace(single, many)
    return words


def check_value(key: str, value: Any, annotation: Any) -> None:
    """Raise a CsgmError naming ``key``, ``value`` and the expected type if ``value`` does not fit."""
    if not conforms(value, annotation):
        raise CsgmError(f"{key}={value!r} must be {describe(annotation)}")


def check_keys(prefix: str, given: Mapping[str, Any], accepted: collections.abc.Collection[str]) -> None:
    """Raise a CsgmError for the first key of ``given`` not in ``accepted`` (with the closest accepted key)."""
    for key in given:
        if key not in accepted:
            close = difflib.get_close_matches(str(key), [str(a) for a in accepted], n=1)
            hint = (
                f"did you mean {prefix}{close[0]}?"
                if close
                else f"accepted keys: {', '.join(sorted(map(str, accepted)))}"
                if accepted
                else "it takes no options"
            )
            raise CsgmError(f"unknown key {prefix}{key} (value {given[key]!r}); {hint}")


def parameters(fn: Callable[..., Any]) -> dict[str, Any]:
    """Keyword parameters of ``fn`` (a function or a class) with their type hints; a class whose
    ``__init__`` takes ``**kwargs`` also accepts its parent's parameters."""
    found: dict[str, Any] = {}
    for target in fn.__mro__ if inspect.isclass(fn) else (fn,):
        init = target.__init__ if inspect.isclass(fn) else target
        if inspect.isclass(fn) and "__init__" not in vars(target):
            continue
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # hints that do not evaluate (a user's class): names only
            hints = {}
        signature = inspect.signature(init)
        for name, param in signature.parameters.items():
            if name != "self" and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                found.setdefault(name, hints.get(name, Any))
        if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()) or not inspect.isclass(fn):
            break
    return found


def check_call(
    prefix: str, fn: Callable[..., Any], options: Mapping[str, Any], fixed: collections.abc.Collection[str] = ()
) -> None:
    """Check ``options`` against the parameters of ``fn`` (less the ``fixed`` ones the caller passes)."""
    accepted = {k: v for k, v in parameters(fn).items() if k not in fixed}
    check_keys(prefix, options, accepted)
    for key, value in options.items():
        check_value(f"{prefix}{key}", value, accepted[key])


def resolve_target(
    kind: str, cfg: Mapping[str, Any], registry: Mapping[str, type], base: type, name_key: str = "name"
) -> type:
    """The class of a config entry: ``_target_`` (a dotted path to a subclass of ``base``) or the
    registry entry of ``cfg[name_key]``."""
    target = cfg.get("_target_")
    if target is None:
        name = cfg.get(name_key)
        if name not in registry:
            chosen = kind if name_key == "name" else f"{kind}.{name_key}"
            raise CsgmError(
                f"unknown {chosen} {name!r}; choose one of: {', '.join(sorted(registry))}, "
                f"or set {kind}._target_ to your own class"
            )
        return registry[name]
    module_name, _, attribute = str(target).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise CsgmError(
            f"{kind}._target_={target!r} cannot be imported ({type(exc).__name__}: {exc}); "
            "give the dotted path of a class on the Python path"
        ) from None
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise CsgmError(f"{kind}._target_={target!r} is not a subclass of {base.__module__}.{base.__name__}")
    return cls


def entry_options(cfg: Mapping[str, Any], name_key: str = "name") -> dict[str, Any]:
    """A config entry's options: all keys but the ones that select the class (``name_key``, ``_target_``)."""
    return {k: v for k, v in cfg.items() if k not in (name_key, "_target_")}


def instantiate(prefix: str, cls: Callable[..., Any], options: Mapping[str, Any], **fixed: Any) -> Any:
    """``cls(**fixed, **options)`` after ``check_call``; errors from inside ``cls`` are not rewritten."""
    options = entry_options(options)
    check_call(prefix, cls, options, fixed)
    return cls(**fixed, **options)


def default_of(cls: type, name: str) -> Any:
    """The default of keyword ``name`` of ``cls``'s constructor, looked up through the classes whose ``__init__``
    passes options on to a parent (None when no class gives one)."""
    for target in cls.__mro__:
        if "__init__" not in vars(target):
            continue
        param = inspect.signature(target.__init__).parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    return None
