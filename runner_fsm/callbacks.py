"""Callbacks of a run: methods of the pipeline's progress collector that the runner calls.

A collector passed as `dlt.pipeline(progress=...)` that has any of these methods is called:

- `on_before(pipeline)` when a run starts;
- `on_after(pipeline, trace, success, summary)` when it ends, with `summary` the rows per table;
- `on_retry(pipeline, trace, retry_attempt, last_attempt, exception)` before the wait of a
  retry, with `retry_attempt` the number of the coming try and `last_attempt` that of the failed
  one;
- `on_schema_change(pipeline, trace, schema_name, changes)` after a load that changed a schema,
  with `changes` the changed tables as dlt reports them.

`trace` is the pipeline's last dlt trace. An exception raised by a callback is logged and ignored.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from dlt.common.runtime.collector import NullCollector

__all__ = ["RunnerCallbacks", "CALLBACK_NAMES", "call_back"]

CALLBACK_NAMES = ("on_before", "on_after", "on_retry", "on_schema_change")


class RunnerCallbacks(NullCollector):
    """A progress collector whose runner callbacks do nothing; subclass it and override them."""

    def on_before(self, pipeline: Any) -> None:
        """Called when a run starts."""

    def on_after(
        self, pipeline: Any, trace: Any, success: bool, summary: Mapping[str, int]
    ) -> None:
        """Called when a run ends, successful or not, with the rows loaded per table."""

    def on_retry(
        self,
        pipeline: Any,
        trace: Any,
        retry_attempt: int,
        last_attempt: int,
        exception: BaseException,
    ) -> None:
        """Called before the wait of a retry."""

    def on_schema_change(
        self, pipeline: Any, trace: Any, schema_name: str, changes: Mapping[str, Any]
    ) -> None:
        """Called after a load that changed the schema `schema_name`."""


def call_back(pipeline: Any, name: str, log: Any, *args: Any) -> Optional[Exception]:
    """Call callback `name` of the pipeline's collector with `args`, if it has one.

    Returns the exception the callback raised, after logging it, or None.
    """
    callback = getattr(getattr(pipeline, "collector", None), name, None)
    if not callable(callback):
        return None
    try:
        callback(*args)
    except Exception as ex:  # noqa: BLE001 - a callback never stops the run
        log.warning("callback_failed", callback=name, error=f"{type(ex).__name__}: {ex}")
        return ex
    return None
