"""Arguments that the Python API and the command line both take, checked by one function each:
a whole number above 0 (batch sizes, threads, sample counts), a sample rate in Hz and a PCM
width in bits. Each takes a number, a NumPy number or a numeric string (what argparse hands
over), returns a plain int and raises a one-line ConfigError (a ValueError) naming the argument,
the value, its type when it is not a number, and what was expected. No torch here (`predict
--model` runs without it); device strings need torch: `inference.resolve_device`."""

from __future__ import annotations

import argparse
import math
import numbers

from ..errors import ConfigError

PCM_WIDTHS = (8, 16, 24, 32)  # bits per sample of the integer PCM formats WAV and soundfile know


def _as_number(value, name: str, expected: str):
    """Returns a real number from a number or a numeric string; anything else (a bool, None, a
    non-numeric string, a list) is a ConfigError naming its type."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise ConfigError(f"{name} {value!r} ({type(value).__name__}): expected {expected}")
    if isinstance(value, str):
        for parse in (int, float):
            try:
                return parse(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{name} {value!r} (str): expected {expected}")
    return value


def positive_int(value, name: str) -> int:
    """Returns `value` as an int >= 1 (a batch size, a thread or sample count): ints, NumPy
    integers, whole floats (64.0) and numeric strings ("64") are taken; 0, negative numbers,
    fractions, NaN, booleans and other types are a ConfigError naming `name` and the value."""
    expected = "a whole number above 0"
    number = _as_number(value, name, expected)
    if not math.isfinite(number) or number != int(number) or number < 1:
        raise ConfigError(f"{name} {value!r}: expected {expected}")
    return int(number)


def sample_rate_hz(value, name: str = "sample_rate_hz") -> int:
    """Returns a sample rate in Hz as an int >= 1: ints, NumPy numbers, whole floats (44100.0)
    and numeric strings ("44100") are taken; anything else is a ConfigError naming `name`, the
    value and, for a non-number, its type."""
    expected = "a sample rate in Hz, a whole number above 0 such as 44100"
    number = _as_number(value, name, expected)
    if not math.isfinite(number) or number != int(number) or number < 1:
        raise ConfigError(f"{name} {value!r}: expected {expected}")
    return int(number)


def pcm_bits(value, name: str = "pcm_bits") -> int:
    """Returns a PCM sample width in bits, one of PCM_WIDTHS (numbers or numeric strings);
    anything else is a ConfigError naming `name` and the value."""
    expected = f"the integer samples' PCM width in bits, one of {', '.join(map(str, PCM_WIDTHS))}"
    number = _as_number(value, name, expected)
    if number not in PCM_WIDTHS:
        raise ConfigError(f"{name} {value!r}: expected {expected}")
    return int(number)


def flag_type(check, flag: str):
    """Returns an argparse `type` that checks a flag's value with `check(value, flag)`, so that
    the command line refuses what the Python API refuses, with the same message."""

    def convert(text: str):
        try:
            return check(text, flag)
        except ConfigError as err:  # argparse names the flag itself: "argument --threads: '0': expected ..."
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"{flag} ")) from None

    convert.__name__ = check.__name__
    return convert
