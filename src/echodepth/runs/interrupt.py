"""SIGTERM and SIGINT as a stop that says so: a scheduler's SIGTERM or a Ctrl+C ends a command
with exit status 128 + the signal's number (143, 130) and one line saying how to continue.

Lightning turns a Ctrl+C into exit status 1 and a SIGTERM into a quiet end with status 0 (a
scheduler then sees success). Inside `stop_on_signals`, both raise `Interrupted` instead, which
Lightning passes on after its own clean-up; every write of echodepth is atomic, so the last good
checkpoint stays whole.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class Interrupted(BaseException):
    """A command stopped by a signal (a BaseException: no `except Exception` may swallow it);
    `exit_status` is 128 + the signal's number and `advice` says how to continue."""

    def __init__(self, signum: int, advice: str):
        super().__init__(f"interrupted: {advice}")
        self.signum = signum
        self.exit_status = 128 + signum
        self.advice = advice


@contextlib.contextmanager
def stop_on_signals(advice: str):
    """Within the block, SIGTERM and SIGINT raise `Interrupted(signum, advice)` (main thread only;
    elsewhere the block runs unchanged; a signal already ignored stays ignored). The previous
    handlers are restored after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum, advice)

    # a signal ignored by whoever started us (SIGINT in a shell's background job) stays ignored
    chosen = [s for s in (signal.SIGTERM, signal.SIGINT) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, handler) for s in chosen}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
