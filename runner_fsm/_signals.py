"""SIGINT and SIGTERM: a request to stop the run at the next safe point.

The first signal sets the stop request and dlt's own signal flag, so that dlt's extract loop and
load pool stop at their next check. A second signal of the same kind stops the process at once,
as Python does by default. dlt replaces the handlers while it normalizes and loads. The runner
also watches dlt's flag there, because dlt clears the flag when the step ends and may then
return as if nothing happened.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

__all__ = ["StopRequest", "watch_signals"]

_HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """The stop request of one run: the signal received, and an event that ends waits at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: Optional[int] = None

    def request(self, signum: int) -> None:
        """Record the first signal and end any wait."""
        if self.signum is None:
            self.signum = signum
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.signum is not None


_active: Optional[StopRequest] = None
_patched = False


def _patch_dlt_flag() -> None:
    """Make dlt's `set_received_signal` also record the signal in the active stop request."""
    global _patched
    if _patched:
        return
    from dlt.common.runtime import signals

    original = signals.set_received_signal

    def set_received_signal(sig: int) -> None:
        original(sig)
        if sig and _active is not None:
            _active.request(sig)

    # NOTE: dlt's signal receiver looks the function up in its module on every signal, so
    # replacing the module attribute is how the runner learns of a signal that dlt intercepted.
    signals.set_received_signal = set_received_signal
    _patched = True


@contextmanager
def watch_signals(stop: StopRequest) -> Iterator[None]:
    """Route SIGINT and SIGTERM to `stop` while the block runs, in the main thread only.

    In another thread, Python cannot install signal handlers, and the block runs unwatched.
    """
    global _active
    from dlt.common.runtime import signals

    _patch_dlt_flag()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        if stop.signum == signum:
            raise KeyboardInterrupt()
        # the patched dlt function records the signal in `stop` too
        signals.set_received_signal(signum)

    previous = {signum: signal.getsignal(signum) for signum in _HANDLED}
    _active = stop
    for signum in _HANDLED:
        signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _active = None
        # the flag set by the first signal must not stop a later run of this process
        signals.set_received_signal(0)
