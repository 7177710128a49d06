"""Search ranges declared beside the settings they sample: `echodepth tune`'s default space.

A setting that `echodepth tune` searches by default is declared with `searched(...)` instead of a
plain default, in the same dataclass, so that its component owns its range as it owns the setting:

    lambda_base: float = searched(0.5, low=0.1, high=4.0, log=True)  # weight of the structural term
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


def searched(default, *, low=None, high=None, log: bool = False, step=None, choices=(), help: str | None = None):
    """Returns a dataclass field whose default is `default` and whose `echodepth tune` search range
    (in the setting's own unit) is declared with it, in the field's metadata under "search"; `help`,
    when given, is the flag's help (else the comment on the declaration's line)."""
    metadata = {"search": SearchRange(low, high, log, step, tuple(choices))}
    return field(default=default, metadata={**metadata, "help": help} if help else metadata)
