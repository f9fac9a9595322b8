"""Short forms of exception messages for log lines, the command line and `journal show`."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["first_line", "headline", "last_line"]

# a traceback line that names the exception raised, such as `ConnectionError: refused`
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(:|$)")


def _lines(text: Any) -> list[str]:
    return [line.strip() for line in str(text or "").strip().splitlines() if line.strip()]


def first_line(text: Any, limit: int = 300) -> str:
    """Return the first non-empty line of `text`, cut to `limit` characters."""
    lines = _lines(text)
    return (lines[0] if lines else "")[:limit]


def last_line(text: Any, limit: int = 500) -> str:
    """Return the last non-empty line of `text`: the exception line of a traceback."""
    lines = _lines(text)
    return (lines[-1] if lines else "")[:limit]


def headline(text: Any, limit: int = 300) -> str:
    """Return the first line of a message and, when it has more lines, the exception they name.

    dlt puts the traceback of a failed load job inside its own message, so the job's exception is
    on a later line. That line (or the last line, when no line names an exception) follows the
    first after ` ... `.
    """
    lines = _lines(text)
    if len(lines) < 2:
        return (lines[0] if lines else "")[:limit]
    raised = [line for line in lines[1:] if _EXCEPTION_LINE.match(line)]
    return f"{lines[0][:limit]} ... {(raised[-1] if raised else lines[-1])[:limit]}"
