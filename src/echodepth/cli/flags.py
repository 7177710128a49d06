"""Command-line flags generated from a settings dataclass: one `--name` per field.

Booleans get `--name / --no-name`, lists and tuples take several values, `X | None` takes X.
Only the flags given on the command line appear in the parsed namespace, so that the
dataclass's defaults (and presets or config files) stay in force for the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

from ..config import without_none


def _flag_type(hint):
    """Returns (element type, nargs) for a field type hint, without `| None`: nargs "*" for a
    list (may be empty), "+" for a tuple, None for a single value."""
    hint = without_none(hint)
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        items = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return (items[0] if items else str), "*" if origin is list else "+"
    return hint, None


def _default(field: dataclasses.Field):
    value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def add_settings_flags(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """Adds one flag per field of the settings dataclass `cls` (fields in `skip` left out)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind, nargs = _flag_type(hints[field.name])
        kw = {"default": argparse.SUPPRESS, "help": f"default: {_default(field)}"}
        if kind is bool and nargs is None:
            parser.add_argument(f"--{field.name}", action=argparse.BooleanOptionalAction, **kw)
        else:
            parser.add_argument(f"--{field.name}", type=kind, nargs=nargs, **kw)


def given_settings(args: argparse.Namespace, cls) -> dict:
    """Returns the settings of `cls` that were given as flags."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
