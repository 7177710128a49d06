"""Command-line flags generated from settings declarations: one `--name` per dataclass field, and
for `train` one per run setting and per component setting (`echodepth.settings.components`).

Booleans get `--name / --no-name`, lists and tuples take several values, `X | None` takes X, a
`Literal[...]` takes one of its values. Only the flags given on the command line appear in the
parsed namespace, so that the declared defaults (and presets or config files) stay in force.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

from ..registry import without_none


def _flag_type(hint):
    """Returns (element type, nargs, choices) for a field type hint, without `| None`: nargs "*" for
    a list (may be empty), "+" for a tuple, None for a single value; choices a Literal's values."""
    hint = without_none(hint)
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        items = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return (items[0] if items else str), "*" if origin is list else "+", None
    if origin is typing.Literal:
        choices = list(typing.get_args(hint))
        return type(choices[0]), None, choices
    return hint, None, None


def _shown(value) -> str:
    return (" ".join(map(str, value)) or "none") if isinstance(value, (list, tuple)) else str(value)


def add_flag(parser: argparse.ArgumentParser, name: str, hint, help_text: str) -> None:
    """Adds `--name` for a setting of type `hint`; absent from the namespace unless given."""
    kind, nargs, choices = _flag_type(hint)
    kw = {"default": argparse.SUPPRESS, "help": help_text}
    if kind is bool and nargs is None:
        parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, **kw)
    else:
        parser.add_argument(f"--{name}", type=kind, nargs=nargs, choices=choices, **kw)


def add_settings_flags(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """Adds one flag per field of the settings dataclass `cls` (fields in `skip` left out), its help
    the comment on the field's declaration and its default."""
    from ..settings.components import field_comments

    hints, comments = typing.get_type_hints(cls), field_comments(cls)
    for field in dataclasses.fields(cls):
        if field.name not in skip:
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            comment = comments.get(field.name)
            shown = f"default: {_shown(default)}"
            add_flag(parser, field.name, hints[field.name], f"{comment} ({shown})" if comment else shown)


def given_settings(args: argparse.Namespace, cls) -> dict:
    """Returns the settings of `cls` that were given as flags."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """Adds `train`'s flags: the run's settings, then every registered component's, each with the
    components that take it and their defaults in its help."""
    from ..settings.components import declared_settings
    from ..settings.config import RunSettings

    add_settings_flags(parser, RunSettings)
    components = parser.add_argument_group(
        "settings of the components", "each applies only with the --model / --loss / --audio_format / --dataset named"
    )
    for name, declared in declared_settings().items():
        add_flag(components, name, declared.hint, declared.help_text())


def given_train_settings(args: argparse.Namespace) -> dict:
    """Returns the training settings given as flags: run settings and component settings."""
    from ..settings.components import declared_settings
    from ..settings.config import RUN_SETTINGS

    return {name: getattr(args, name) for name in [*RUN_SETTINGS, *declared_settings()] if hasattr(args, name)}
