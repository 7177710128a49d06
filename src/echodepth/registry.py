"""Registries: the one place where models, losses, dataset layouts, audio features and evaluation
protocols are named.

Each kind has one `Registry`; an entry is registered once, with a decorator on its class:

    @MODELS.register("my_model")
    class MyModel(nn.Module): ...

The command line's choices, the training settings' validation, `compare`'s variants and the
parametrised tests all read `names()`, so a new entry is a new class plus its registration.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

from .errors import ConfigError
from .settings.bounds import UNBOUNDED, Bounds, bounds_of, check_weights


def without_none(hint):
    """Returns X for a type hint `X | None`, else the hint itself."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if type(None) in typing.get_args(hint) and len(args) == 1 else hint


def checked_value(name: str, hint, value, bounds: Bounds = UNBOUNDED):
    """Returns `value` as the type hint declares it (an int where a float is declared becomes a
    float, a tuple of strings where a list is declared a list). Raises ConfigError naming the
    setting when the value is not of its type or not one of a `Literal`'s choices, or when a number
    (or a number of a list or tuple) is not finite or outside `bounds`."""
    value = _typed_value(name, hint, value)
    bounds.check(name, value)
    return value


def _typed_value(name: str, hint, value):
    if value is None and type(None) in typing.get_args(hint):
        return value
    expected = without_none(hint)
    origin = typing.get_origin(expected) or expected
    if origin is typing.Literal:
        choices = list(typing.get_args(expected))
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise ConfigError(f"{name} {value!r} is not one of {choices}")
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is list and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    if origin is tuple and isinstance(value, list):
        value = tuple(value)
    if isinstance(value, bool) and expected is not bool or not isinstance(value, origin):
        raise ConfigError(f"{name} must be {getattr(expected, '__name__', str(expected))}, got {value!r}")
    return value


def check_fields(settings) -> None:
    """Checks (and converts, see `checked_value`) every field of a settings dataclass in place: its
    type, finite numbers, the bounds declared with it (`echodepth.settings.bounds`), and weights not all 0.
    Raises ConfigError (one line) naming the first field refused, its value and what it accepts."""
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        setattr(settings, f.name, checked_value(f.name, hints[f.name], getattr(settings, f.name), bounds_of(f)))
    check_weights(settings)


class CheckedSettings:
    """Base of a settings dataclass whose fields are checked when it is made (`check_fields`); a
    subclass with its own `__post_init__` calls `super().__post_init__()` first."""

    def __post_init__(self):
        check_fields(self)


def accepted_settings(cls) -> list[str]:
    """Returns the keyword settings a registered class takes.

    A class with a `Settings` dataclass takes its fields; any other class the keyword
    parameters of `__init__` along its class hierarchy.
    """
    settings_cls = getattr(cls, "Settings", None)
    if settings_cls is not None and dataclasses.is_dataclass(settings_cls):
        return [f.name for f in dataclasses.fields(settings_cls)]
    names: list[str] = []
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names:
                names.append(p.name)
    return names


class Registry:
    """Name -> class for one kind of thing (model, loss, dataset layout, audio feature, evaluation protocol)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        """Returns a decorator that registers a class under `name` (a name is registered once)."""

        def add(cls):
            if name in self._entries and self._entries[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name].__qualname__})")
            self._entries[name] = cls
            return cls

        return add

    def unregister(self, name: str) -> None:
        """Removes an entry (for tests that register a throwaway one)."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        """Returns the registered names, in registration order (built-ins first)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        """Iterates over the registered names, as `names()` lists them (so `list(REGISTRY)` reads as for a dict)."""
        return iter(self.names())

    def get(self, name: str):
        """Returns the class registered as `name`; an unknown name is a ConfigError listing the known ones."""
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; expected one of {self.names()}")
        return self._entries[name]

    def check_settings(self, name: str, settings: dict) -> None:
        """Raises a ConfigError naming any setting the entry does not take, and the ones it does."""
        allowed = accepted_settings(self.get(name))
        unknown = sorted(set(settings) - set(allowed))
        if unknown:
            raise ConfigError(f"{self.kind} {name!r} takes no setting(s) {unknown}; allowed: {allowed}")

    def build(self, name: str, **settings):
        """Returns a new instance of the entry `name`, configured by keyword settings: their names
        checked, and their types and choices against the entry's `Settings` (ConfigError naming one)."""
        self.check_settings(name, settings)
        cls = self.get(name)
        if dataclasses.is_dataclass(getattr(cls, "Settings", None)):
            hints = typing.get_type_hints(cls.Settings)
            fields = {f.name: f for f in dataclasses.fields(cls.Settings)}
            settings = {
                key: checked_value(key, hints[key], value, bounds_of(fields[key])) for key, value in settings.items()
            }
        return cls(**settings)
