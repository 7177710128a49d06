"""Writing files safely: whole or not at all, and one clear line when the disk is full.

Every writer of echodepth (checkpoints, the feature cache, metrics.csv, figures, synth) goes
through these helpers: data is written to a temporary name beside the target and renamed, so a
reader never sees a partial file, and a full disk leaves the previous file in place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from .errors import UserError

# room kept free beyond a write's own size, for the file system's metadata and small files
SPACE_MARGIN_BYTES = 16 * 1024**2


class DiskFullError(UserError, OSError):
    """No space left for a file echodepth writes; the message names the path and the sizes."""


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1024**2:,.1f} MB"


def free_bytes(path) -> int:
    """Returns the free space of the file system holding path (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def ensure_space(path, needed_bytes: int, what: str) -> None:
    """Raises DiskFullError unless the file system of `path` has needed_bytes free (plus a margin)."""
    free = free_bytes(path)
    if free < needed_bytes + SPACE_MARGIN_BYTES:
        raise DiskFullError(f"not enough space for {what} at {path}: needs {_mb(needed_bytes)}, {_mb(free)} free")


@contextlib.contextmanager
def disk_full_as_error(path, needed_bytes: int | None = None, cleanup=()):
    """Turns "no space left on device" inside the block into a one-line DiskFullError naming
    path, after removing the partial files in `cleanup`."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT) or isinstance(err, DiskFullError):
            raise
        for partial in cleanup:
            with contextlib.suppress(OSError):
                shutil.rmtree(partial) if Path(partial).is_dir() else Path(partial).unlink()
        needs = f" (needs {_mb(needed_bytes)})" if needed_bytes is not None else ""
        raise DiskFullError(
            f"no space left on the device writing {path}{needs}; {_mb(free_bytes(path))} free"
        ) from None


def atomic_write_bytes(path, data: bytes, durable: bool = False) -> None:
    """Writes data to path through a temporary file and a rename; on a full disk, raises
    DiskFullError and leaves no partial file (the previous file at path, if any, stays).
    `durable` also flushes it to the device before the rename (checkpoints: safe from a power cut)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with disk_full_as_error(path, len(data), cleanup=[tmp]):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)


def process_alive(pid: int) -> bool:
    """Returns whether a process with this id runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def remove_stale_partials(folder) -> list[Path]:
    """Removes the temporary files (`*.tmp-<pid>`) under folder whose writer is no longer alive;
    returns them."""
    removed = []
    for path in Path(folder).rglob("*.tmp-*"):
        pid = path.name.rsplit(".tmp-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


class FileLock:
    """An exclusive lock on a file (fcntl.flock), released when its holder exits, however it
    exits; the holder's process id is written into the file for others to name."""

    def __init__(self, path):
        self.path = Path(path)
        self._file = None

    def acquire(self, blocking: bool = True) -> bool:
        """Takes the lock; without blocking, returns False when another process holds it."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return True

    def holder(self) -> str:
        """Returns the process id written by the lock's holder (or "unknown")."""
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
