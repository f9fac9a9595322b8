"""Fault points for tests: kill the process with SIGKILL at a named point of a run.

Set `RUNNER_FSM_FAULT` to one of these points:

- `kill@state:<state>`: right after the journal records entering the state;
- `kill@step:<step>`: right after a dlt step such as `extract`, `normalize` or `load` ends and is
  journaled;
- `kill@inside:<step>`: at the first progress update of dlt inside the step, before it ends;
- `kill@jobs:<n>`: inside the load step, when the n-th job of the run has finished.

Add `#<k>` to fire on the k-th time the point is reached, for example `kill@state:attempt#2`.
With the variable unset, nothing happens.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Optional

from runner_fsm.exceptions import ConfigError

__all__ = ["FAULT_VARIABLE", "FaultPoint", "counting_collector", "fault_from_environment"]

FAULT_VARIABLE = "RUNNER_FSM_FAULT"
KINDS = ("state", "step", "inside", "jobs")


class FaultPoint:
    """One armed fault: a kind (`state`, `step` or `jobs`), a name and the occurrence to fire on."""

    def __init__(self, kind: str, name: str, occurrence: int) -> None:
        self.kind = kind
        self.name = name
        self.occurrence = occurrence
        self.seen = 0

    def reached(self, kind: str, name: str) -> None:
        """Count one arrival at point (`kind`, `name`); kill the process on the armed one."""
        if kind != self.kind or name != self.name:
            return
        self.seen += 1
        if self.seen == self.occurrence:
            os.kill(os.getpid(), signal.SIGKILL)


def fault_from_environment() -> Optional[FaultPoint]:
    """Return the fault armed in `RUNNER_FSM_FAULT`, or None; raise ConfigError when malformed."""
    text = os.environ.get(FAULT_VARIABLE, "").strip()
    if not text:
        return None
    action, _, point = text.partition("@")
    kind, _, rest = point.partition(":")
    name, _, occurrence = rest.partition("#")
    valid_occurrence = not occurrence or (occurrence.isdigit() and int(occurrence) >= 1)
    if action != "kill" or kind not in KINDS or not name or not valid_occurrence:
        raise ConfigError(
            f"the fault point {text!r} is invalid. Write kill@state:<state>, kill@step:<step>,"
            " kill@inside:<step> or kill@jobs:<n>, optionally followed by #<k> with k a"
            " positive whole number, or unset the variable.",
            source="environment",
            key=FAULT_VARIABLE,
            value=text,
        )
    return FaultPoint(kind, name, int(occurrence) if occurrence else 1)


def counting_collector(inner: Any, fault: FaultPoint) -> Any:
    """Wrap dlt's progress collector `inner` so that its progress updates reach `fault`."""
    from dlt.common.runtime.collector_base import Collector

    class JobCountingCollector(Collector):
        def __init__(self) -> None:
            self.jobs = 0
            self.label = ""

        def update(
            self,
            name: str,
            inc: int = 1,
            total: Optional[int] = None,
            inc_total: Optional[int] = None,
            message: Optional[str] = None,
            label: Optional[str] = None,
        ) -> None:
            inner.update(name, inc, total, inc_total, message, label)
            # dlt labels its steps "Extract ...", "Normalize ..." and "Load ..."
            step = self.label.split(" ", 1)[0].lower()
            if step:
                fault.reached("inside", step)
            if name == "Jobs" and inc > 0:
                for _ in range(inc):
                    self.jobs += 1
                    fault.reached("jobs", str(self.jobs))

        def _start(self, step: str) -> None:
            self.label = step
            inner.step = step
            inner._start(step)

        def _stop(self) -> None:
            inner._stop()

    return JobCountingCollector()
