"""Errors about the user's input: the command line prints them as one line, without a traceback.

Anything else that goes wrong is a bug of ours (or of a library) and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (a file, a setting, a flag), printed as one line."""


class ConfigError(UserError, ValueError):
    """A setting or flag with a wrong name, type or value; the message names it and what is allowed."""


class DataError(UserError, ValueError):
    """A bad sample, CSV or recording; the message names the CSV, the line and the file."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, unreadable or not written by echodepth."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss became NaN or infinite; training stops and keeps the last good checkpoint."""


def first_line(err: BaseException) -> str:
    """Returns the first line of an exception's message (libraries' messages can run to many
    lines), or the exception's type name when the message is empty."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
