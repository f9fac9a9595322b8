"""dlt's rule for which failures may be retried, with the exceptions the runner adds to it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from dlt.common.exceptions import TerminalException
from dlt.pipeline.exceptions import PipelineStepFailed

from runner_fsm.exceptions import GeneratorNotRetryable, PendingPackageFailed

__all__ = [
    "Verdict",
    "classify",
    "failed_step",
    "exception_chain",
    "interrupting_signal",
    "root_cause",
]


@dataclass(frozen=True)
class Verdict:
    """Whether a failure may be retried at all, before the retry policy is asked."""

    retryable: bool
    terminal: bool
    reason: str


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield `exc`, the exception a `PipelineStepFailed` wraps, and their causes and contexts."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = getattr(current, "exception", None)
        for nxt in (inner, current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                stack.append(nxt)


def interrupting_signal(exc: BaseException) -> Optional[int]:
    """Return the signal number when `exc` or its chain is an interrupt (SIGINT or SIGTERM).

    dlt wraps a KeyboardInterrupt raised inside a step in `PipelineStepFailed`, and raises
    `SignalReceivedException` after it drained its load jobs on a signal; both count.
    """
    import signal

    for inner in exception_chain(exc):
        code = getattr(inner, "signal_code", None)
        if isinstance(code, int):
            return code
        if isinstance(inner, KeyboardInterrupt):
            return int(getattr(inner, "signum", signal.SIGINT))
    return None


def root_cause(exc: BaseException) -> BaseException:
    """Return the original exception under dlt's wrappers.

    Follows the exception a `PipelineStepFailed` wraps, then `__cause__` links (`raise ... from`),
    so a resource that raised `ConnectionError` gives that `ConnectionError`.
    """
    current = exc
    inner = getattr(current, "exception", None)
    if isinstance(inner, BaseException):
        current = inner
    seen = {id(current)}
    while current.__cause__ is not None and id(current.__cause__) not in seen:
        current = current.__cause__
        seen.add(id(current))
    return current


def failed_step(exc: BaseException) -> Optional[str]:
    """Return the dlt step that raised `exc` (`sync`, `extract`, `normalize`, `load`) or None."""
    if isinstance(exc, PipelineStepFailed):
        return str(exc.step)
    return None


def _is_schema_update_race(exc: BaseException) -> bool:
    try:
        from dlt.common.destination.exceptions import SchemaUpdateError
    except ImportError:  # NOTE: dlt releases before SchemaUpdateError have no such race error
        return False
    return any(isinstance(e, SchemaUpdateError) for e in exception_chain(exc))


# Messages of servers that rejected the credentials. dlt reports these as connection errors,
# which it treats as transient, but a retry with the same credentials fails the same way.
_AUTH_FAILURES = re.compile(
    r"password authentication failed|role \"[^\"]*\" does not exist|authentication failed"
    r"|access denied for user|invalid username/password|login failed for user",
    re.IGNORECASE,
)


def is_rejected_credentials(exc: BaseException) -> bool:
    """Return whether the message of `exc` or of its chain reports a rejected login.

    NOTE: this matches the wording of PostgreSQL, MySQL/MariaDB, Oracle and SQL Server errors;
    another destination that words it differently is retried like any connection error.
    """
    return any(_AUTH_FAILURES.search(str(e)) for e in exception_chain(exc))


def _is_terminal(exc: BaseException) -> bool:
    # dlt's rule checks the exception and its context. The wrapped step exception and its
    # context are checked too, because PipelineStepFailed itself is never terminal.
    candidates = [exc, exc.__context__]
    inner = getattr(exc, "exception", None)
    if isinstance(inner, BaseException):
        candidates += [inner, inner.__context__]
    return any(isinstance(e, TerminalException) for e in candidates if e is not None)


def classify(exc: BaseException, retry_steps: Sequence[str]) -> Verdict:
    """Decide whether `exc` may be retried when `retry_steps` are the steps that are retried.

    A failure in dlt's `sync` step counts as one in `load`, because an unreachable or locked
    destination often shows first when the state is synced. A `SchemaUpdateError` in the load step
    is retried although dlt marks it terminal: it is a schema update that lost a race with a
    parallel loader, and dlt applies only the missing changes on the next try.
    """
    if isinstance(exc, (GeneratorNotRetryable, PendingPackageFailed)):
        return Verdict(False, True, "the failure cannot be fixed by a retry")
    if interrupting_signal(exc) is not None:
        return Verdict(False, True, "the run was interrupted by a signal")
    step = failed_step(exc)
    rule_step = "load" if step == "sync" else step
    if rule_step is not None and rule_step not in retry_steps:
        return Verdict(
            False, _is_terminal(exc), f"step `{step}` is not in retry_pipeline_steps {list(retry_steps)}"
        )
    if rule_step == "load" and _is_schema_update_race(exc):
        return Verdict(True, False, "a schema update that lost a race is retried")
    if _is_terminal(exc):
        return Verdict(False, True, "the exception is terminal")
    if is_rejected_credentials(exc):
        return Verdict(False, True, "the destination rejected the credentials")
    return Verdict(True, False, "the exception is transient")
