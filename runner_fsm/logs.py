"""Logging through structlog: readable lines on a terminal, or JSON lines.

The library only emits events through `structlog.get_logger("runner_fsm")`; the application (the
CLI, or the user's program) chooses how they are rendered. `configure_logging` is what the CLI uses.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Optional, TextIO

import structlog

__all__ = ["LOG_FORMATS", "configure_logging", "get_logger"]

LOG_FORMATS = ("console", "json")


def get_logger(**context: Any) -> Any:
    """Return the runner's structlog logger with `context` bound.

    When the application has not configured structlog, events below INFO are dropped, so that a
    program that only calls the runner does not print a line for every transition.
    """
    if not structlog.is_configured():
        return structlog.wrap_logger(
            structlog.PrintLogger(sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
                structlog.dev.ConsoleRenderer(colors=False),
            ],
        ).bind(**context)
    return structlog.get_logger("runner_fsm").bind(**context)


def configure_logging(
    log_format: str = "console", level: int = logging.INFO, stream: Optional[TextIO] = None
) -> None:
    """Render runner events as console lines or JSON lines on `stream` (default: standard error),
    from `level` up."""
    stream = sys.stderr if stream is None else stream
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use one of {LOG_FORMATS}")
    renderer: Any
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
