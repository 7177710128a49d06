"""The settings each registered component declares: one table from which the training settings'
flags, YAML keys, type checks, choices and defaults come.

A model, loss, audio feature or dataset layout declares its settings once, as the fields of its
`Settings` dataclass: the type (`Literal[...]` for a fixed set of choices), the default, and the
checks in `__post_init__` (raising ConfigError). Fields named in `RUN_SUPPLIED` are filled by the
run (the features' channels, the sizes); every other field is a training setting of the same
name: an `echodepth train` flag and a key of a settings file. One name may be declared by several
components of one kind (`lambda_recon` by every weighted loss, `base_channels` by every network)
with one type; it then means the same thing in each.

A run takes the settings of the components it chose (`--model`, `--loss`, `--audio_format`,
`--dataset`). A setting the user stated that the chosen component does not declare is refused in
one line naming that component; one from a preset, a recipe, a compare variant or a stored run
is left out silently (it was a default of some other component).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import typing
from dataclasses import dataclass, field

from ..data import DATASETS, FEATURES
from ..errors import ConfigError
from ..losses import LOSSES
from ..models import MODELS
from ..registry import check_fields, checked_value
from .bounds import bounds_of

# kind: the training setting that chooses the component -> its registry
KINDS = {"model": MODELS, "loss": LOSSES, "audio_format": FEATURES, "dataset": DATASETS}
# Settings fields the run fills in rather than the user: the input channels (from the audio
# feature), the depth map's size (image_size) and the feature image's (input_size)
RUN_SUPPLIED = ("in_channels", "image_size", "input_size")


def own_fields(cls) -> list[dataclasses.Field]:
    """Returns the training settings a registered class declares: its `Settings` dataclass's
    fields less those the run supplies (none for a class without `Settings`)."""
    settings_cls = getattr(cls, "Settings", None)
    if settings_cls is None or not dataclasses.is_dataclass(settings_cls):
        return []
    return [f for f in dataclasses.fields(settings_cls) if f.name not in RUN_SUPPLIED]


def default_of(f: dataclasses.Field):
    """Returns a dataclass field's default (a fresh one from its default factory)."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


@dataclass
class Declared:
    """One training setting declared by components: its kind (the setting that chooses the
    component), its type hint, and each declaring component's default and help text."""

    name: str
    kind: str
    hint: typing.Any
    defaults: dict[str, typing.Any] = field(default_factory=dict)  # component name -> default
    helps: dict[str, str] = field(default_factory=dict)  # component name -> its comment or metadata["help"]

    def help_text(self) -> str:
        """Returns the flag's help: what it does (the declaration's comment), which components take
        it and their defaults, e.g. "weight of ... (--loss standard, adaptive: default 0.1)"."""
        by_default: dict[str, list[str]] = {}
        for component, default in self.defaults.items():
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
            by_default.setdefault(shown or "none", []).append(component)
        takers = "; ".join(f"--{self.kind} {', '.join(c)}: default {d}" for d, c in by_default.items())
        text = " / ".join(dict.fromkeys(self.helps.values()))  # each distinct meaning once
        return f"{text} ({takers})" if text else takers


@functools.cache  # a class's source does not change while it runs: read it once, not at every resolution
def field_comments(settings_cls) -> dict[str, str]:
    """Returns field name -> the comment on its declaration line, or the `help` of its metadata (a
    declaration too long for a comment), over a settings dataclass and its bases (the declarations'
    comments are the flags' help; only the metadata's where the source cannot be read)."""
    comments: dict[str, str] = {}
    for klass in reversed(settings_cls.__mro__[:-1]):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        comments.update(dict(re.findall(r"^\s+(\w+): [^#\n]*#\s*(.+)$", source, flags=re.M)))
    if dataclasses.is_dataclass(settings_cls):
        comments.update({f.name: f.metadata["help"] for f in dataclasses.fields(settings_cls) if "help" in f.metadata})
    return comments


def declared_settings() -> dict[str, Declared]:
    """Returns every component setting's name -> declaration, read from the registries as they are
    now (a component registered later, e.g. by a test, is in from then on).

    Raises ValueError (a bug in a component, not the user's input) when two components declare
    one name with different types, or components of two kinds declare one name."""
    table: dict[str, Declared] = {}
    for kind, registry in KINDS.items():
        for component in registry.names():
            cls = registry.get(component)
            hints = typing.get_type_hints(cls.Settings) if own_fields(cls) else {}
            comments = field_comments(cls.Settings) if own_fields(cls) else {}
            for f in own_fields(cls):
                entry = table.setdefault(f.name, Declared(f.name, kind, hints[f.name]))
                if entry.kind != kind or entry.hint != hints[f.name]:
                    raise ValueError(
                        f"setting {f.name!r} of {kind} {component!r} ({hints[f.name]}) is already declared by "
                        f"--{entry.kind} {list(entry.defaults)} ({entry.hint}): one name, one kind, one type"
                    )
                entry.defaults[component] = default_of(f)
                if f.metadata.get("help", comments.get(f.name)):
                    entry.helps[component] = f.metadata.get("help", comments.get(f.name))
    return table


def settings_of(kind: str, component: str) -> list[str]:
    """Returns the names of the training settings the component `component` of `kind` takes."""
    return [f.name for f in own_fields(KINDS[kind].get(component))]


def _refusal(kind: str, component: str, names: list[str]) -> str:
    flags = " and ".join(f"--{n}" for n in names)
    own = settings_of(kind, component)
    takes = f"its settings: {', '.join('--' + n for n in own)}" if own else "it takes no settings of its own"
    return f"{flags} {'does' if len(names) == 1 else 'do'} not apply to --{kind} {component} ({takes})"


def resolve_components(chosen: dict[str, str], values: dict, stated) -> dict[str, dict]:
    """Returns kind -> the chosen component's training settings: its declared defaults, then
    `values`; type-checked, bounds-checked (`echodepth.settings.bounds`) and validated by its `Settings`
    (`__post_init__`).

    `chosen` maps each kind to the component's name; `values` holds component settings only
    (every name declared by some component); `stated` names those the user gave. A stated
    setting the chosen component does not take raises ConfigError naming the component and
    what it takes; an unstated one is left out."""
    table = declared_settings()
    refused = {}
    for name in values:
        kind = table[name].kind
        if name in stated and name not in settings_of(kind, chosen[kind]):
            refused.setdefault(kind, []).append(name)
    if refused:
        raise ConfigError("; ".join(_refusal(kind, chosen[kind], names) for kind, names in refused.items()))
    resolved = {}
    for kind, component in chosen.items():
        cls = KINDS[kind].get(component)
        own = {f.name: values.get(f.name, default_of(f)) for f in own_fields(cls)}
        if own:
            hints = typing.get_type_hints(cls.Settings)
            bounds = {f.name: bounds_of(f) for f in own_fields(cls)}
            own = {name: checked_value(name, hints[name], value, bounds[name]) for name, value in own.items()}
            # its own checks (__post_init__), and the declared bounds of every field even where the
            # Settings class does not check them itself: ConfigError naming the setting
            check_fields(cls.Settings(**own))
        resolved[kind] = own
    return resolved
