"""A dlt tracking module that reports each pipeline step to the runner driving that pipeline.

dlt calls the modules in `dlt.pipeline.trace.TRACKING_MODULES` when a step (`extract`,
`normalize`, `load`, ...) of a traced pipeline call ends. The runner listens there so that it can
journal each step as it ends, inside one `pipeline.run()`, without splitting the call.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Optional

__all__ = ["StepListener", "TraceListener", "listen_to_steps", "stop_listening"]

StepListener = Callable[[Any, Any, Any], None]
"""Called with the dlt step trace, the step info (or None) and the pipeline."""
TraceListener = Callable[[Any], None]
"""Called with the finished dlt trace of a traced pipeline call."""

_lock = threading.Lock()
_listeners: Dict[int, StepListener] = {}
_trace_listeners: Dict[int, TraceListener] = {}
_installed = False


class _RunnerTracking:
    """The object dlt calls; it forwards each ended step to the listener of its pipeline."""

    def on_start_trace(self, trace: Any, step: Any, pipeline: Any) -> None:
        pass

    def on_start_trace_step(self, trace: Any, step: Any, pipeline: Any) -> None:
        pass

    def on_end_trace_step(
        self, trace: Any, step: Any, pipeline: Any, step_info: Any, send_state: bool
    ) -> None:
        listener = _listeners.get(id(pipeline))
        if listener is not None:
            listener(step, step_info, pipeline)

    def on_end_trace(self, trace: Any, pipeline: Any, send_state: bool) -> None:
        listener = _trace_listeners.get(id(pipeline))
        if listener is not None:
            listener(trace)


def _install() -> None:
    global _installed
    if _installed:
        return
    from dlt.pipeline import trace

    trace.TRACKING_MODULES.append(_RunnerTracking())
    _installed = True


def listen_to_steps(
    pipeline: Any, listener: StepListener, trace_listener: Optional[TraceListener] = None
) -> None:
    """Call `listener` whenever a step of `pipeline` ends, until `stop_listening(pipeline)`.

    `trace_listener` is called with each finished trace: one per traced call such as `run`.

    NOTE: dlt catches and logs exceptions raised by tracking modules, so a listener that must stop
    the run keeps its error and the runner raises it after the step.
    """
    with _lock:
        _install()
        _listeners[id(pipeline)] = listener
        if trace_listener is not None:
            _trace_listeners[id(pipeline)] = trace_listener


def stop_listening(pipeline: Any) -> None:
    """Stop calling the listener of `pipeline`."""
    with _lock:
        _listeners.pop(id(pipeline), None)
        _trace_listeners.pop(id(pipeline), None)
