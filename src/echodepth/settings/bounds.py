"""The values a number setting accepts, declared beside it in its dataclass field and checked with its
type (`registry.check_fields`) before any work, so that a new setting is checked by the same code:

    batch_size: int = bounded(256, above=0)  # samples per optimiser step
    sample_rate_hz: int = bounded(44100, at_least=8000, at_most=1_000_000, why="...")

Every float setting (and every number of a list or tuple setting) must also be finite. A field marked
`weight=True` weighs a term of a loss: at least 0, and a component whose weights are all 0 is refused
(its loss would be 0 and nothing would train).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass(frozen=True)
class Bounds:
    """The interval a number setting accepts: `at_least` / `above` below it, `at_most` / `below` above
    it (None: unbounded on that side); `why`, when given, is said after the range in a refusal."""

    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    why: str | None = None

    def contains(self, value) -> bool:
        """Returns whether the (finite) number `value` lies in the interval."""
        return (
            (self.at_least is None or value >= self.at_least)
            and (self.above is None or value > self.above)
            and (self.at_most is None or value <= self.at_most)
            and (self.below is None or value < self.below)
        )

    def text(self) -> str:
        """Returns the interval as a refusal says it: "> 0", ">= 0", "between 0 and 1", "in (0, 1]"."""
        low = _number(self.above if self.above is not None else self.at_least)
        high = _number(self.below if self.below is not None else self.at_most)
        if low is None and high is None:
            return "any number"
        if high is None:
            return f"{'>' if self.above is not None else '>='} {low}"
        if low is None:
            return f"{'<' if self.below is not None else '<='} {high}"
        if self.above is None and self.below is None:
            return f"between {low} and {high}"
        return f"in {'(' if self.above is not None else '['}{low}, {high}{')' if self.below is not None else ']'}"

    def check(self, name: str, value) -> None:
        """Raises ConfigError naming the setting, its value and the interval when `value` (a number, or
        each number of a list or tuple) is not finite or lies outside."""
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            if not math.isfinite(item):
                shown = "" if self.text() == "any number" else f" {self.text()}"
                raise ConfigError(f"{name} must be a finite number{shown}, got {_shown(value)}")
            if not self.contains(item):
                why = f" ({self.why})" if self.why else ""
                raise ConfigError(f"{name} must be {self.text()}{why}, got {_shown(value)}")


UNBOUNDED = Bounds()  # any finite number


def _number(value) -> str | None:
    """Returns a bound as people write it: 4294967295 and 0.5, not 4.29497e+09 and 0.500000."""
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else f"{value:g}"


def _shown(value) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


def bounds_metadata(*, weight: bool = False, **bounds) -> dict:
    """Returns a field's metadata declaring its `Bounds` (keyword arguments: at_least, above, at_most,
    below, why) and, with `weight`, that it weighs a loss term (which also bounds it at 0)."""
    if weight:
        bounds.setdefault("at_least", 0)
        return {"bounds": Bounds(**bounds), "weight": True}
    return {"bounds": Bounds(**bounds)} if bounds else {}


def bounded(default, *, help: str | None = None, weight: bool = False, **bounds):
    """Returns a dataclass field whose default is `default` and whose accepted values are declared with
    it (`Bounds`' keyword arguments); `help`, when given, is the flag's help (else the comment on the
    declaration's line)."""
    metadata = bounds_metadata(weight=weight, **bounds)
    metadata = {**metadata, "help": help} if help else metadata
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def bounds_of(f: dataclasses.Field) -> Bounds:
    """Returns the values a settings field accepts: its declared `Bounds`, else any finite number."""
    return f.metadata.get("bounds", UNBOUNDED)


def check_weights(settings) -> None:
    """Raises ConfigError when a settings dataclass declares weights (fields marked `weight=True`) and
    every one of them is 0: the loss would be 0 and nothing would train."""
    weights = [f.name for f in dataclasses.fields(settings) if f.metadata.get("weight")]
    if weights and all(getattr(settings, name) == 0 for name in weights):
        names = ", ".join(weights[:-1]) + f" and {weights[-1]} are all 0" if len(weights) > 1 else f"{weights[0]} is 0"
        raise ConfigError(f"{names}: the loss would be 0 and nothing would train; expected at least one weight > 0")
