"""Headless Chromium for the tests that open a page the way a reader does (Debian's chromium package)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

CHROMIUM_MISSING = "needs Debian's chromium package (apt-get install chromium); .ci/run installs it"
# no network, no first-run or background traffic, no sandbox (CI runs as root), a fresh profile each time
HEADLESS_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium() -> str | None:
    """Returns the path of the chromium binary, or None where it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(url: str, virtual_time_ms: int = 5000, timeout_s: float = 120) -> tuple[int, str, list[str]]:
    """Returns (exit status, the DOM after load and `virtual_time_ms` of page time, the console's
    error lines) of `url` opened in headless Chromium with a fresh profile."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run(
            [chromium(), *HEADLESS_FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={virtual_time_ms}", "--dump-dom", url],
            capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return done.returncode, done.stdout, console
