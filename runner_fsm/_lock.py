"""The lock that keeps two runners from driving one pipeline at once.

The lock is an exclusive `flock` on `<journal_dir>/<pipeline>.lock`, whose content is the holder's
process id. The kernel releases the lock when the holder dies, however it dies, so a lock is never
left stale. A clean release empties the file. So a file that still names a process when the lock
is taken names a holder that died, and the new holder reports the takeover.

NOTE: flock works between processes of one machine. It does not protect a journal folder on a
network file system shared by several machines.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Optional

from runner_fsm.exceptions import PipelineLocked

__all__ = ["PipelineLock", "lock_path"]


def lock_path(journal_dir: os.PathLike[str] | str, pipeline_name: str) -> Path:
    """Return the lock file of `pipeline_name` in `journal_dir`."""
    return Path(journal_dir) / f"{pipeline_name}.lock"


class PipelineLock:
    """An exclusive, non-blocking lock of one pipeline."""

    def __init__(self, path: Path, pipeline_name: str) -> None:
        self.path = path
        self.pipeline_name = pipeline_name
        self._fd: Optional[int] = None

    def acquire(self) -> Optional[int]:
        """Take the lock or raise `PipelineLocked` naming the holder's process id.

        Returns the process id of a dead holder whose lock this call took over, else None.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise PipelineLocked(self.pipeline_name, holder, str(self.path)) from None
        previous = _read_pid(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return previous if previous not in (None, os.getpid()) else None

    def release(self) -> None:
        """Empty the lock file, which marks a clean release, and unlock it."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> Optional[int]:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
