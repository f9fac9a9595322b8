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
import threading
import time
from pathlib import Path
from typing import Optional

from runner_fsm.exceptions import PipelineLocked

__all__ = ["PipelineLock", "lock_path"]


def lock_path(journal_dir: os.PathLike[str] | str, pipeline_name: str) -> Path:
    """Return the lock file of `pipeline_name` in `journal_dir`."""
    return Path(journal_dir) / f"{pipeline_name}.lock"


# locks this process holds, by path: a lock taken again in the same process (the CLI takes it
# before it builds the pipeline, then the runner takes it) is counted, not locked twice
_held: dict[Path, list[int]] = {}
_held_guard = threading.Lock()
# how long a rejected runner waits for a new holder to write its process id into the file
HOLDER_PID_WAIT_S = 0.5


class PipelineLock:
    """An exclusive, non-blocking lock of one pipeline, reentrant within one process."""

    def __init__(self, path: Path, pipeline_name: str) -> None:
        self.path = Path(path).absolute()
        self.pipeline_name = pipeline_name
        self._owned = False

    def acquire(self) -> Optional[int]:
        """Take the lock or raise `PipelineLocked` naming the holder's process id.

        Returns the process id of a dead holder whose lock this call took over, else None.
        """
        with _held_guard:
            held = _held.get(self.path)
            if held is not None:
                held[1] += 1
                self._owned = True
                return None
            fd, previous = self._lock_file()
            _held[self.path] = [fd, 1]
            self._owned = True
        return previous if previous not in (None, os.getpid()) else None

    def _lock_file(self) -> tuple[int, Optional[int]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _wait_for_pid(fd)
            os.close(fd)
            raise PipelineLocked(self.pipeline_name, holder, str(self.path)) from None
        previous = _read_pid(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        os.fsync(fd)
        return fd, previous

    def release(self) -> None:
        """Release one hold; the last one empties the file, which marks a clean release."""
        if not self._owned:
            return
        self._owned = False
        with _held_guard:
            held = _held[self.path]
            held[1] -= 1
            if held[1] > 0:
                return
            del _held[self.path]
            fd = held[0]
            try:
                os.ftruncate(fd, 0)
                os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


def _read_pid(fd: int) -> Optional[int]:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _wait_for_pid(fd: int) -> Optional[int]:
    # a holder writes its process id right after it takes the lock, so an empty file is read
    # again for a moment before the rejection names no process
    deadline = time.monotonic() + HOLDER_PID_WAIT_S
    while True:
        pid = _read_pid(fd)
        if pid is not None or time.monotonic() >= deadline:
            return pid
        time.sleep(0.01)
