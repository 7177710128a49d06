"""Search ranges declared beside the settings they sample: `echodepth tune`'s default space.

A setting that `echodepth tune` searches by default is declared with `searched(...)` instead of a
plain default, in the same dataclass, so that its component owns its range as it owns the setting:

    lambda_base: float = searched(0.5, low=0.1, high=4.0, log=True)  # weight of the structural term

A loss term's weight is declared with `weight(...)`, searched or not: it is then at least 0, and a
loss whose weights are all 0 is refused (`echodepth.settings.bounds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .bounds import bounded, bounds_metadata


@dataclass(frozen=True)
class SearchRange:
    """What `echodepth tune` samples for one setting: a number in [low, high] (log-uniform with
    `log`; integers in steps of `step`), or one of `choices`."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def to_dict(self) -> dict:
        """Returns the range as a `--space` file writes it: {range: [low, high], log, step} or {choices}."""
        if self.choices:
            return {"choices": list(self.choices)}
        out = {"range": [self.low, self.high], "log": self.log}
        return {**out, "step": self.step} if self.step is not None else out


def searched(
    default, *, low=None, high=None, log: bool = False, step=None, choices=(), help: str | None = None, **bounds
):
    """Returns a dataclass field whose default is `default` and whose `echodepth tune` search range
    (in the setting's own unit) is declared with it, in the field's metadata under "search"; `help`,
    when given, is the flag's help (else the comment on the declaration's line). `bounds` are the
    values the setting accepts at all (`echodepth.settings.bounds.bounded`'s keyword arguments)."""
    metadata = {"search": SearchRange(low, high, log, step, tuple(choices)), **bounds_metadata(**bounds)}
    return field(default=default, metadata={**metadata, "help": help} if help else metadata)


def weight(default: float, **search):
    """Returns the dataclass field of a loss term's weight (dimensionless, at least 0; a loss whose
    weights are all 0 is refused), with `echodepth tune`'s range (`searched`'s keywords) if any."""
    return searched(default, **search, weight=True) if search else bounded(default, weight=True)
