"""Retry policies: small callables that decide, from one failed attempt, whether to try again.

A policy is any callable that takes an `AttemptRecord` and returns a `RetryDecision` (a plain
`bool`, or a `(bool, wait_seconds)` tuple, is accepted too). The machine calls it as the guard of
the `decide_retry -> waiting` transition, after dlt's own rule has ruled out terminal errors and
steps that are not retried, so a policy only decides whether to try again and how long to wait first.
"""

from __future__ import annotations

import importlib
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Protocol, Union

from runner_fsm.exceptions import PolicyError

__all__ = [
    "AttemptRecord",
    "RetryDecision",
    "RetryPolicy",
    "NoRetry",
    "FixedRetry",
    "BackoffRetry",
    "no_retry",
    "fixed",
    "backoff",
    "from_tenacity",
    "resolve_policy",
    "decide",
    "BUILTIN_POLICY_TYPES",
]


@dataclass(frozen=True)
class AttemptRecord:
    """One failed try of an operation, as a retry policy receives it.

    `attempt` counts the tries of this operation from 1 and includes the one that failed.
    `elapsed_s` is the time since its first try started, in seconds. `exception` is the original
    exception under dlt's wrappers (the exception a `PipelineStepFailed` wraps, followed through
    `raise ... from` links), and `step_exception` is what the step raised, such as the
    `PipelineStepFailed` itself. `operation` is the state of the machine that failed
    (`sync`, `finalize_pending` or `attempt`). `step` is the dlt pipeline step that raised (`sync`,
    `extract`, `normalize`, `load`) or None when dlt did not say.
    """

    attempt: int
    elapsed_s: float
    exception: BaseException
    step: Optional[str]
    operation: str
    step_exception: Optional[BaseException] = None


@dataclass(frozen=True)
class RetryDecision:
    """A policy's decision: whether to try again, and the wait before the next try, in seconds."""

    retry: bool
    wait_s: float = 0.0
    reason: str = ""


class RetryPolicy(Protocol):
    """The interface of a retry policy."""

    def __call__(self, record: AttemptRecord) -> Any: ...


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyError(
            f"`{name}` must be an integer of at least {minimum}, got {value!r}.",
            key=f"retry_policy.{name}",
            value=value,
        )
    return value


def _check_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise PolicyError(
            f"`{name}` must be a number of seconds of at least 0, got {value!r}.",
            key=f"retry_policy.{name}",
            value=value,
        )
    if math.isinf(value):
        raise PolicyError(
            f"`{name}` must be finite, got {value!r}.", key=f"retry_policy.{name}", value=value
        )
    return float(value)


class NoRetry:
    """Make a single attempt and never retry."""

    type_name = "none"

    def __call__(self, record: AttemptRecord) -> RetryDecision:
        return RetryDecision(False, reason="retry policy `none` makes a single attempt")

    def describe(self) -> dict[str, Any]:
        return {"type": self.type_name}


class FixedRetry:
    """Retry at once, without waiting, up to `max_attempts` tries in all."""

    type_name = "fixed"

    def __init__(self, max_attempts: int = 3) -> None:
        self.max_attempts = _check_int("max_attempts", max_attempts, 1)

    def __call__(self, record: AttemptRecord) -> RetryDecision:
        if record.attempt >= self.max_attempts:
            return RetryDecision(False, reason=f"max_attempts={self.max_attempts} reached")
        return RetryDecision(True, 0.0)

    def describe(self) -> dict[str, Any]:
        return {"type": self.type_name, "max_attempts": self.max_attempts}


class BackoffRetry:
    """Retry up to `max_attempts` tries with exponential waits.

    The wait after failed attempt n is `multiplier * 2**(n-1)` seconds, clamped to `[min, max]`.
    """

    type_name = "backoff"

    def __init__(
        self,
        max_attempts: int = 5,
        multiplier: float = 2,
        min: float = 4,  # noqa: A002 - the key name of the configuration file
        max: float = 10,  # noqa: A002
    ) -> None:
        self.max_attempts = _check_int("max_attempts", max_attempts, 1)
        self.multiplier = _check_seconds("multiplier", multiplier)
        self.min = _check_seconds("min", min)
        self.max = _check_seconds("max", max)
        if self.max < self.min:
            raise PolicyError(
                f"`max` ({max!r}) must not be smaller than `min` ({min!r}).",
                key="retry_policy.max",
                value=max,
            )

    def wait_after(self, attempt: int) -> float:
        """Return the wait in seconds after failed attempt number `attempt` (counted from 1)."""
        # the exponent is capped so that a large attempt number cannot overflow a float
        raw = self.multiplier * 2.0 ** min(attempt - 1, 1000)
        return float(min(max(raw, self.min), self.max))

    def __call__(self, record: AttemptRecord) -> RetryDecision:
        if record.attempt >= self.max_attempts:
            return RetryDecision(False, reason=f"max_attempts={self.max_attempts} reached")
        return RetryDecision(True, self.wait_after(record.attempt))

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "max_attempts": self.max_attempts,
            "multiplier": self.multiplier,
            "min": self.min,
            "max": self.max,
        }


def no_retry() -> NoRetry:
    """Return the policy of type `none`: one attempt."""
    return NoRetry()


def fixed(max_attempts: int = 3) -> FixedRetry:
    """Return the policy of type `fixed`: up to `max_attempts` tries, no wait."""
    return FixedRetry(max_attempts)


def backoff(
    max_attempts: int = 5,
    multiplier: float = 2,
    min: float = 4,  # noqa: A002
    max: float = 10,  # noqa: A002
) -> BackoffRetry:
    """Return the policy of type `backoff` with dltHub's defaults."""
    return BackoffRetry(max_attempts=max_attempts, multiplier=multiplier, min=min, max=max)


BUILTIN_POLICY_TYPES: Mapping[str, Callable[..., Any]] = {
    "none": NoRetry,
    "fixed": FixedRetry,
    "backoff": BackoffRetry,
}


class TenacityPolicy:
    """A `tenacity.Retrying` object used as a retry policy.

    The object's `stop` and `wait` strategies are called on a `RetryCallState` built from the
    attempt record, and its `retry` strategy too, so `retry_if_exception_type(...)` limits which
    exceptions are retried. Callbacks such as `before_sleep` are not called, and the runner, not
    tenacity, sleeps.
    """

    type_name = "tenacity"

    def __init__(self, retrying: Any) -> None:
        self.retrying = retrying

    def _call_state(self, record: AttemptRecord) -> Any:
        import tenacity

        state = tenacity.RetryCallState(self.retrying, fn=None, args=(), kwargs={})
        state.attempt_number = record.attempt
        state.start_time = 0.0
        future = tenacity.Future(record.attempt)
        future.set_exception(record.exception)
        state.outcome = future
        state.outcome_timestamp = record.elapsed_s
        return state

    def __call__(self, record: AttemptRecord) -> RetryDecision:
        state = self._call_state(record)
        if not self.retrying.retry(state):
            return RetryDecision(False, reason="the tenacity retry strategy rejected the exception")
        # tenacity computes the wait before it calls the stop strategy, which may read it
        wait_s = float(self.retrying.wait(state))
        state.upcoming_sleep = wait_s
        if self.retrying.stop(state):
            return RetryDecision(False, reason="the tenacity stop strategy stopped the retries")
        return RetryDecision(True, wait_s)

    def describe(self) -> dict[str, Any]:
        return {"type": self.type_name, "retrying": repr(self.retrying)}


def from_tenacity(retrying: Any) -> TenacityPolicy:
    """Translate a `tenacity.Retrying` object into a retry policy."""
    return TenacityPolicy(retrying)


def _is_tenacity_retrying(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module.startswith("tenacity") and all(
        hasattr(value, name) for name in ("stop", "wait", "retry")
    )


def _import_object(path: str, key: str) -> Any:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise PolicyError(
            f"`{path}` is neither a built-in policy type nor a dotted path such as"
            " `my_package.policies.my_policy`.",
            key=key,
            value=path,
            allowed=list(BUILTIN_POLICY_TYPES),
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as ex:
        raise PolicyError(
            f"the module `{module_name}` of retry policy `{path}` cannot be imported: {ex}. Check"
            " the dotted path and that the module is on the Python path.",
            key=key,
            value=path,
        ) from ex
    try:
        return getattr(module, attr)
    except AttributeError:
        raise PolicyError(
            f"the module `{module_name}` has no attribute `{attr}`, so retry policy `{path}` is"
            " not found.",
            key=key,
            value=path,
        ) from None


def _policy_from_mapping(spec: Mapping[str, Any]) -> RetryPolicy:
    kind = spec.get("type")
    params = {k: v for k, v in spec.items() if k != "type"}
    if not isinstance(kind, str) or not kind:
        raise PolicyError(
            f"`retry_policy` needs a `type`, got {kind!r}.",
            key="retry_policy.type",
            value=kind,
            allowed=list(BUILTIN_POLICY_TYPES) + ["a dotted path to a policy"],
        )
    factory = BUILTIN_POLICY_TYPES.get(kind)
    if factory is None:
        factory = _import_object(kind, "retry_policy.type")
        if not inspect.isclass(factory) and params:
            raise PolicyError(
                f"`{kind}` is a callable, not a class, so it takes no parameters, but"
                f" {sorted(params)} were given. Remove them or point `type` at a policy class.",
                key="retry_policy",
                value=kind,
            )
        if not inspect.isclass(factory):
            return _check_callable(factory, kind)
    _check_parameters(kind, factory, params)
    return _check_callable(factory(**params), kind)


def _check_parameters(kind: str, factory: Callable[..., Any], params: Mapping[str, Any]) -> None:
    signature = inspect.signature(factory)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    known = [name for name in signature.parameters if name != "self"]
    unknown = sorted(set(params) - set(known))
    if unknown and not accepts_any:
        raise PolicyError(
            f"unknown parameter {', '.join(f'`{u}`' for u in unknown)} for retry policy"
            f" `{kind}`.",
            key=f"retry_policy.{unknown[0]}",
            value=params[unknown[0]],
            allowed=known,
        )


def _check_callable(policy: Any, name: str) -> RetryPolicy:
    if not callable(policy):
        raise PolicyError(
            f"retry policy `{name}` is a {type(policy).__name__}, not a callable that takes an"
            " AttemptRecord.",
            key="retry_policy",
            value=name,
        )
    return policy  # type: ignore[no-any-return]


def resolve_policy(value: Any) -> RetryPolicy:
    """Build a retry policy from what a user passed.

    Accepts None (one attempt), a built-in type name or a dotted path, a mapping with `type` and
    the policy's parameters (the `retry_policy` of `dlt.yml`), a `tenacity.Retrying` object, or
    any callable policy.
    """
    if value is None:
        return NoRetry()
    if isinstance(value, str):
        return _policy_from_mapping({"type": value})
    if isinstance(value, Mapping):
        return _policy_from_mapping(value)
    if _is_tenacity_retrying(value):
        return TenacityPolicy(value)
    if callable(value):
        return value  # type: ignore[no-any-return]
    raise PolicyError(
        f"a retry policy must be a mapping with `type`, a type name, a dotted path, a"
        f" tenacity.Retrying object or a callable, got {type(value).__name__} {value!r}.",
        key="retry_policy",
        value=value,
        allowed=list(BUILTIN_POLICY_TYPES),
    )


PolicyAnswer = Union[RetryDecision, bool, tuple[Any, ...]]


def decide(policy: RetryPolicy, record: AttemptRecord) -> RetryDecision:
    """Call `policy` on `record` and normalize its return value into a `RetryDecision`."""
    answer: PolicyAnswer = policy(record)
    decision = _as_decision(answer)
    wait_s = decision.wait if isinstance(decision, _Invalid) else decision.wait_s
    if isinstance(decision, _Invalid) or not _is_valid_wait(wait_s):
        raise PolicyError(
            f"retry policy {policy!r} returned {answer!r}; a policy must return a RetryDecision,"
            " a bool or a (bool, wait_seconds) tuple, with a wait that is a finite number of"
            " seconds of at least 0.",
            key="retry_policy",
            value=repr(answer),
        )
    return decision


@dataclass(frozen=True)
class _Invalid:
    wait: Any = None


def _is_valid_wait(wait: Any) -> bool:
    if isinstance(wait, bool) or not isinstance(wait, (int, float)):
        return False
    return math.isfinite(wait) and wait >= 0


def _as_decision(answer: Any) -> Union[RetryDecision, _Invalid]:
    if isinstance(answer, RetryDecision):
        if not isinstance(answer.retry, bool):
            return _Invalid()
        return answer
    if isinstance(answer, bool):
        return RetryDecision(answer)
    if isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], bool):
        if not _is_valid_wait(answer[1]):
            return _Invalid(answer[1])
        return RetryDecision(answer[0], float(answer[1]))
    return _Invalid()


def describe_policy(policy: RetryPolicy) -> dict[str, Any]:
    """Return a JSON-ready description of `policy` for the journal."""
    describe = getattr(policy, "describe", None)
    if callable(describe):
        return dict(describe())
    return {"type": "custom", "callable": getattr(policy, "__qualname__", repr(policy))}
