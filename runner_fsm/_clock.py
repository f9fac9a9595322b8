"""The clock and the sleep that the runner uses, injected so that tests never really wait."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Optional, Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """The time functions the runner uses: a monotonic reading, the UTC time and an interruptible sleep."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...

    def sleep(self, seconds: float, interrupt: Optional[threading.Event] = None) -> bool:
        """Wait `seconds`; return False when `interrupt` was set before the time ran out."""
        ...


class SystemClock:
    """The real clock. `sleep` ends early when `interrupt` is set."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float, interrupt: Optional[threading.Event] = None) -> bool:
        event = interrupt or threading.Event()
        return not event.wait(max(0.0, seconds))
