"""Registries: the one place where models, losses, dataset layouts and audio features are named.

Each kind has one `Registry`; an entry is registered once, with a decorator on its class:

    @MODELS.register("my_model")
    class MyModel(nn.Module): ...

The command line's choices, the training settings' validation, `compare`'s variants and the
parametrised tests all read `names()`, so a new entry is a new class plus its registration.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from .errors import ConfigError


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
    """Name -> class for one kind of thing (model, loss, dataset layout, audio feature)."""

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
        """Returns a new instance of the entry `name`, configured by keyword settings (checked)."""
        self.check_settings(name, settings)
        return self.get(name)(**settings)
