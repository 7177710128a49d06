"""Writing files safely: whole or not at all, and one clear line when the disk is full or the
place is not writable.

Every file echodepth writes goes through these helpers (tests/test_storage.py fails on any other
write in src/): data is written to a temporary name beside the target and renamed, so a reader
never sees a partial file, and a full disk leaves the previous file in place. Folders are made by
`make_dir`, which names a path that is a file or cannot be written. The loggers' own writes
(TensorBoard) are wrapped by `writer_errors_as_user_error`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from ..errors import UserError

# room kept free beyond a write's own size, for the file system's metadata and small files
SPACE_MARGIN_BYTES = 16 * 1024**2


class DiskFullError(UserError, OSError):
    """No space left for a file echodepth writes; the message names the path and the sizes."""


class UnwritableError(UserError, OSError):
    """An output location that cannot be written: read-only, not permitted, or a file where a
    folder is expected (or the reverse); the message names the path."""


FULL = (errno.ENOSPC, errno.EDQUOT)
UNWRITABLE = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a file stands where a folder is needed",
    errno.EISDIR: "it is a folder, a file is needed",
    errno.EEXIST: "a file stands where a folder is needed",
}


def format_bytes(n_bytes: float) -> str:
    """Returns a size for a message: "1,234.5 MB" from 1 MB (1024**2 bytes) up, else "12.3 KB"."""
    return f"{n_bytes / 1024**2:,.1f} MB" if n_bytes >= 1024**2 else f"{n_bytes / 1024:,.1f} KB"


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
        raise DiskFullError(
            f"not enough space for {what} at {path}: needs {format_bytes(needed_bytes)}, {format_bytes(free)} free"
        )


@contextlib.contextmanager
def disk_full_as_error(path, needed_bytes: int | None = None, cleanup=()):
    """Turns "no space left on device" inside the block into a one-line DiskFullError naming
    path, after removing the partial files in `cleanup`."""
    try:
        yield
    except OSError as err:
        if isinstance(err, UserError) or err.errno not in (*FULL, *UNWRITABLE):
            raise
        for partial in cleanup:
            with contextlib.suppress(OSError):
                shutil.rmtree(partial) if Path(partial).is_dir() else Path(partial).unlink()
        if err.errno in UNWRITABLE:
            raise UnwritableError(f"cannot write {path}: {UNWRITABLE[err.errno]} ({err.filename or path})") from None
        needs = f" (needs {format_bytes(needed_bytes)})" if needed_bytes is not None else ""
        raise DiskFullError(
            f"no space left on the device writing {path}{needs}; {format_bytes(free_bytes(path))} free"
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


def atomic_write_text(path, text: str) -> None:
    """Writes text (UTF-8) to path like `atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode())


def save_npy(path, array) -> None:
    """Writes a NumPy array as a .npy file like `atomic_write_bytes`."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


def make_dir(path, what: str = "output folder") -> Path:
    """Makes the folder path (and its parents) and returns it; raises a one-line UnwritableError
    when path or a parent is a file, or it cannot be written into, and DiskFullError when full."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UnwritableError(f"{what} {path} is a file, not a folder")
    with disk_full_as_error(path):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a parent is a file
            raise UnwritableError(f"{what} {path}: a file stands where a folder is needed") from None
    if not os.access(path, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only(path) else "permission denied"
        raise UnwritableError(f"{what} {path} cannot be written into: {reason}")
    return path


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def move_into_place(tmp, target) -> None:
    """Renames a finished temporary file or folder to its final name (same file system)."""
    with disk_full_as_error(target, cleanup=[tmp]):
        os.replace(tmp, target)


def open_npy_map(path, dtype, shape):
    """Returns a writable memory-mapped .npy array at path with its blocks allocated now: writing
    into a sparse map on a full disk would kill the process with SIGBUS instead of raising."""
    import numpy as np

    with disk_full_as_error(path, cleanup=[path]):
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    return array


def open_log(path):
    """Returns path opened for appending text (a child process's output); the caller closes it."""
    make_dir(Path(path).parent)
    with disk_full_as_error(path):
        return open(path, "a")


def _os_error_in_chain(err: BaseException) -> OSError | None:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (*FULL, *UNWRITABLE):
            return err
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def writer_errors_as_user_error(folder, what: str):
    """Turns an error of a library's own writer (TensorBoard's event files) caused by a full disk
    or an unwritable folder into our one-line DiskFullError / UnwritableError naming `folder`;
    other errors pass unchanged. TensorBoard reports a full disk as an unrelated ValueError whose
    cause is the OSError."""
    try:
        yield
    except UserError:
        raise
    except Exception as err:
        cause = _os_error_in_chain(err)
        if cause is None:
            raise
        if cause.errno in UNWRITABLE:
            raise UnwritableError(f"{what} in {folder} cannot be written: {UNWRITABLE[cause.errno]}") from None
        free = format_bytes(free_bytes(folder))
        raise DiskFullError(f"no space left on the device writing {what} in {folder}; {free} free") from None


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
    exits; the holder's process id is written into the file for others to name. `shared`: one of
    many readers' locks (a run using a cache folder), which keeps an exclusive taker out."""

    def __init__(self, path, shared: bool = False):
        self.path = Path(path)
        self.shared = shared
        self._file = None

    def acquire(self, blocking: bool = True) -> bool:
        """Takes the lock; without blocking, returns False when another process holds it."""
        import fcntl

        make_dir(self.path.parent)
        with disk_full_as_error(self.path):
            handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            return False
        if not self.shared:
            with disk_full_as_error(self.path):
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
        """Releases the lock (closing its file drops the flock); releasing twice does nothing."""
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
