"""The search space of `echodepth tune`: what each trial samples, and in which range.

The default space is declared beside the settings (`search_space.searched`): the run's and those
of the components the base settings chose, so a setting that does not apply is never searched.
A `--space` YAML file replaces it, one entry per setting:

    lambda_base: {range: [0.1, 4.0], log: true}
    lowpass_kernel: {range: [4, 16], step: 4}
    base_decoder: {choices: [wide, narrow]}
"""

from __future__ import annotations

import dataclasses
import math
import typing

from ..errors import ConfigError
from ..registry import without_none
from ..settings.components import KINDS, declared_settings, own_fields
from ..settings.config import RUN_SETTINGS, RunSettings, TrainConfig
from ..settings.search_space import SearchRange
from ..settings.yaml_files import load_yaml

SPEC_KEYS = {"range", "log", "step", "choices"}


def _searched_fields(fields) -> dict[str, SearchRange]:
    return {f.name: f.metadata["search"] for f in fields if "search" in f.metadata}


def default_space(base: TrainConfig) -> dict[str, SearchRange]:
    """Returns setting name -> range of every searched setting that applies to `base`: the run's
    own (`RunSettings`) and those of the model, loss, audio feature and dataset it chose."""
    space = _searched_fields(dataclasses.fields(RunSettings))
    for kind, registry in KINDS.items():
        space.update(_searched_fields(own_fields(registry.get(getattr(base, kind)))))
    return space


def _number_type(name: str):
    """Returns the Python type of a setting (int, float, str, bool) from its declaration."""
    hints = typing.get_type_hints(RunSettings)
    hint = without_none(hints[name] if name in hints else declared_settings()[name].hint)
    if typing.get_origin(hint) is typing.Literal:
        return type(typing.get_args(hint)[0])
    return hint


def parse_space(values: dict, source: str) -> dict[str, SearchRange]:
    """Returns the ranges of a `--space` file's mapping (name -> {range: [low, high], log, step} or
    {choices: [...]}); raises ConfigError naming `source` and the entry for a malformed one."""
    if not isinstance(values, dict) or not values:
        raise ConfigError(
            f"--space {source}: expected a mapping of setting name -> {{range: [low, high]}} or {{choices}}"
        )
    space = {}
    for name, spec in values.items():
        where = f"--space {source}: {name}"
        if not isinstance(spec, dict) or not set(spec) <= SPEC_KEYS or ("range" in spec) == ("choices" in spec):
            raise ConfigError(
                f"{where}: expected {{range: [low, high], log: true|false, step: N}} or {{choices: [...]}}"
            )
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"] or set(spec) != {"choices"}:
                raise ConfigError(f"{where}: choices must be a non-empty list (and alone)")
            space[name] = SearchRange(choices=tuple(spec["choices"]))
            continue
        bounds, log, step = spec["range"], spec.get("log", False), spec.get("step")
        numbers = isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds)
        if not numbers or not bounds[0] < bounds[1]:
            raise ConfigError(f"{where}: range must be two numbers [low, high] with low < high, got {bounds}")
        if not isinstance(log, bool) or (log and not bounds[0] > 0):
            raise ConfigError(f"{where}: log must be true or false, and a log range needs low > 0")
        if step is not None and (not _is_number(step) or not step > 0 or log):
            raise ConfigError(f"{where}: step must be a number > 0, and not with log")
        space[name] = SearchRange(bounds[0], bounds[1], log, step)
    return space


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_space(path) -> dict[str, SearchRange]:
    """Returns the ranges of a `--space` YAML file (MissingFileError, ConfigError)."""
    return parse_space(load_yaml(path), str(path))


def check_space(space: dict[str, SearchRange], base: TrainConfig, source: str) -> None:
    """Checks, before any trial runs, that every searched setting exists, applies to `base`'s model,
    loss, feature and dataset, has a numeric range where it is a number, and that each end of its
    range (each choice) is accepted by the settings' own checks. Raises ConfigError naming `source`
    (the `--space` file or "the default space") and the setting."""
    table = declared_settings()
    in_force = base.to_dict()
    for name, spec in space.items():
        where = f"{source}: {name}"
        if name not in RUN_SETTINGS and name not in table:
            raise ConfigError(f"{where} is not a setting of echodepth train (echodepth train --help lists them)")
        if name not in in_force:
            kind = table[name].kind
            raise ConfigError(
                f"{where} does not apply to --{kind} {getattr(base, kind)} (it is a setting of --{kind} "
                f"{', '.join(table[name].defaults)})"
            )
        kind = _number_type(name)
        if not spec.choices and kind not in (int, float):
            raise ConfigError(f"{where} is not a number ({kind.__name__}): give it choices, not a range")
        if spec.choices and kind in (int, float) and not all(_is_number(c) for c in spec.choices):
            raise ConfigError(f"{where}: every choice must be a number, got {list(spec.choices)}")
        if kind is int and not spec.choices and not all(float(v).is_integer() for v in (spec.low, spec.high)):
            raise ConfigError(
                f"{where}: a whole-number setting needs a range of whole numbers, got {spec.low}, {spec.high}"
            )
        for value in spec.choices or (spec.low, spec.high):
            try:
                base.replace(**{name: int(value) if kind is int else value})
            except ConfigError as err:
                raise ConfigError(f"{where}: {value} is refused by the settings: {err}") from None


def resolve_space(base: TrainConfig, space_file=None) -> tuple[dict[str, SearchRange], str]:
    """Returns (the checked space, where it came from): the `--space` file's, else the default
    space of `base`. Raises ConfigError (and MissingFileError) as `check_space` and `load_space`."""
    if space_file:
        space, source = load_space(space_file), f"--space {space_file}"
    else:
        space, source = default_space(base), "the default search space"
        if not space:
            raise ConfigError(f"{source} of --model {base.model} --loss {base.loss} is empty: give a --space file")
    check_space(space, base, source)
    return space, source


def space_to_dict(space: dict[str, SearchRange]) -> dict:
    """Returns the space as a `--space` file holds it (name -> {range, log, step} or {choices})."""
    return {name: spec.to_dict() for name, spec in space.items()}


def suggest(trial, space: dict[str, SearchRange]) -> dict:
    """Returns setting name -> the value Optuna's `trial` samples for it (its sampler decides)."""
    values = {}
    for name, spec in space.items():
        kind = _number_type(name)
        if spec.choices:
            values[name] = trial.suggest_categorical(name, list(spec.choices))
        elif kind is int:
            step = int(spec.step or 1)
            values[name] = trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
        else:
            values[name] = trial.suggest_float(name, float(spec.low), float(spec.high), log=spec.log, step=spec.step)
    return values
