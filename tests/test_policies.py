"""Tests of the retry policies: built-in types, parameter checks, resolution and tenacity."""

from __future__ import annotations

import math
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import tenacity

from runner_fsm.exceptions import ConfigError, PolicyError
from runner_fsm.policies import (
    AttemptRecord,
    BackoffRetry,
    FixedRetry,
    NoRetry,
    RetryDecision,
    TenacityPolicy,
    backoff,
    decide,
    fixed,
    from_tenacity,
    no_retry,
    resolve_policy,
)


def make_record(
    attempt: int = 1,
    elapsed_s: float = 0.0,
    exception: Optional[BaseException] = None,
    step: Optional[str] = "load",
    operation: str = "attempt",
) -> AttemptRecord:
    """Build the record of a failed try, by default a ValueError in the load step."""
    if exception is None:
        exception = ValueError("the destination rejected the load")
    return AttemptRecord(
        attempt=attempt,
        elapsed_s=elapsed_s,
        exception=exception,
        step=step,
        operation=operation,
    )


POLICY_MODULE_SOURCE = '''
from runner_fsm.policies import RetryDecision

MAX_TRIES = 42


def retry_once(record):
    """Retry the first failed try only."""
    return record.attempt < 2


class CappedWait:
    """Retry up to `max_attempts` tries, waiting `wait_s` seconds each time."""

    def __init__(self, max_attempts=3, wait_s=1.5):
        self.max_attempts = max_attempts
        self.wait_s = wait_s

    def __call__(self, record):
        return RetryDecision(record.attempt < self.max_attempts, self.wait_s)


class NotAPolicy:
    """A class whose instances cannot be called."""
'''


@pytest.fixture
def policy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Write a module of user policies under tmp_path, put it on sys.path, return its name."""
    name = f"user_policies_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(POLICY_MODULE_SOURCE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))

    yield name

    sys.modules.pop(name, None)


class TestBackoff:
    def test_backoff_default_parameters(self) -> None:
        """backoff() uses 5 tries, multiplier 2 and waits clamped to [4, 10] seconds."""
        policy = backoff()

        assert policy.max_attempts == 5
        assert policy.multiplier == 2
        assert policy.min == 4
        assert policy.max == 10

    @pytest.mark.parametrize(
        "params, attempt, expected_wait",
        [
            # multiplier 2, [1, 10]: 2*1, 2*2, 2*4, then 2*8=16 and 2*16=32 clamp to 10
            ({"multiplier": 2, "min": 1, "max": 10, "max_attempts": 10}, 1, 2.0),
            ({"multiplier": 2, "min": 1, "max": 10, "max_attempts": 10}, 2, 4.0),
            ({"multiplier": 2, "min": 1, "max": 10, "max_attempts": 10}, 3, 8.0),
            ({"multiplier": 2, "min": 1, "max": 10, "max_attempts": 10}, 4, 10.0),
            ({"multiplier": 2, "min": 1, "max": 10, "max_attempts": 10}, 5, 10.0),
            # defaults, [4, 10]: 2 clamps up to 4, then 4, 8, and 16 clamps down to 10
            ({}, 1, 4.0),
            ({}, 2, 4.0),
            ({}, 3, 8.0),
            ({}, 4, 10.0),
            # multiplier 0.5, [0, 100]: 0.5, 1, 2, 0.5*2**7=64, 0.5*2**8=128 clamps to 100
            ({"multiplier": 0.5, "min": 0, "max": 100, "max_attempts": 20}, 1, 0.5),
            ({"multiplier": 0.5, "min": 0, "max": 100, "max_attempts": 20}, 2, 1.0),
            ({"multiplier": 0.5, "min": 0, "max": 100, "max_attempts": 20}, 3, 2.0),
            ({"multiplier": 0.5, "min": 0, "max": 100, "max_attempts": 20}, 8, 64.0),
            ({"multiplier": 0.5, "min": 0, "max": 100, "max_attempts": 20}, 9, 100.0),
            # min == max gives a constant wait
            ({"multiplier": 3, "min": 5, "max": 5, "max_attempts": 4}, 1, 5.0),
            ({"multiplier": 3, "min": 5, "max": 5, "max_attempts": 4}, 3, 5.0),
            # multiplier 0 waits the minimum
            ({"multiplier": 0, "min": 0, "max": 10, "max_attempts": 4}, 3, 0.0),
        ],
    )
    def test_backoff_wait_table(
        self, params: dict[str, Any], attempt: int, expected_wait: float
    ) -> None:
        """backoff retries after attempt n with multiplier * 2**(n-1) clamped to [min, max]."""
        policy = backoff(**params)

        decision = decide(policy, make_record(attempt=attempt))

        assert decision.retry is True
        assert decision.wait_s == expected_wait

    @pytest.mark.parametrize("attempt", [3, 4, 100])
    def test_backoff_stops_at_max_attempts(self, attempt: int) -> None:
        """backoff stops once the failed try is the last allowed one, or a later one."""
        policy = backoff(max_attempts=3)

        decision = decide(policy, make_record(attempt=attempt))

        assert decision.retry is False
        assert "max_attempts=3" in decision.reason

    def test_backoff_defaults_stop_at_five(self) -> None:
        """backoff() retries tries 1 to 4 and stops after try 5."""
        policy = backoff()

        retries = [decide(policy, make_record(attempt=n)).retry for n in range(1, 7)]

        assert retries == [True, True, True, True, False, False]

    @pytest.mark.parametrize("attempt", [1_001, 10**6, 10**100])
    def test_backoff_huge_attempt_no_overflow(self, attempt: int) -> None:
        """backoff returns the max wait for huge attempt numbers instead of overflowing."""
        policy = backoff(max_attempts=10**200, multiplier=1e6, min=0, max=30)

        decision = decide(policy, make_record(attempt=attempt))

        assert decision.retry is True
        assert decision.wait_s == 30.0

    def test_backoff_wait_after_matches_decision(self) -> None:
        """BackoffRetry.wait_after doubles the wait after each attempt while under max."""
        policy = BackoffRetry(max_attempts=10, multiplier=1, min=0, max=1000)

        waits = [policy.wait_after(n) for n in range(1, 6)]

        assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]


class TestFixedAndNoRetry:
    def test_fixed_default_three_tries(self) -> None:
        """fixed() retries tries 1 and 2 at once and stops after try 3."""
        policy = fixed()

        decisions = [decide(policy, make_record(attempt=n)) for n in (1, 2, 3)]

        assert [d.retry for d in decisions] == [True, True, False]
        assert [d.wait_s for d in decisions[:2]] == [0.0, 0.0]

    def test_fixed_single_attempt(self) -> None:
        """fixed(max_attempts=1) never retries."""
        policy = fixed(max_attempts=1)

        decision = decide(policy, make_record(attempt=1))

        assert decision.retry is False

    @pytest.mark.parametrize("attempt", [1, 2, 50])
    def test_no_retry_never_retries(self, attempt: int) -> None:
        """no_retry() declines every failed try."""
        policy = no_retry()

        decision = decide(policy, make_record(attempt=attempt))

        assert decision.retry is False


class TestParameterChecks:
    @pytest.mark.parametrize(
        "factory, params, key, bad_value",
        [
            (backoff, {"max_attempts": 0}, "max_attempts", 0),
            (backoff, {"max_attempts": -1}, "max_attempts", -1),
            (backoff, {"max_attempts": "3"}, "max_attempts", "3"),
            (backoff, {"max_attempts": True}, "max_attempts", True),
            (backoff, {"max_attempts": 2.5}, "max_attempts", 2.5),
            (fixed, {"max_attempts": 0}, "max_attempts", 0),
            (fixed, {"max_attempts": "3"}, "max_attempts", "3"),
            (backoff, {"min": -1}, "min", -1),
            (backoff, {"multiplier": -0.5}, "multiplier", -0.5),
            (backoff, {"multiplier": "2"}, "multiplier", "2"),
            (backoff, {"min": 5, "max": 2}, "max", 2),
            (backoff, {"max": math.nan}, "max", math.nan),
            (backoff, {"min": math.nan}, "min", math.nan),
            (backoff, {"max": math.inf}, "max", math.inf),
            (backoff, {"multiplier": math.inf}, "multiplier", math.inf),
        ],
    )
    def test_invalid_parameter_raises(
        self, factory: Any, params: dict[str, Any], key: str, bad_value: Any
    ) -> None:
        """An invalid policy parameter raises PolicyError naming the key and the value."""
        with pytest.raises(PolicyError) as caught:
            factory(**params)

        assert isinstance(caught.value, ConfigError)
        assert caught.value.key == f"retry_policy.{key}"
        assert f"`{key}`" in str(caught.value)
        assert repr(bad_value) in str(caught.value)


class TestResolvePolicy:
    def test_resolve_none_single_attempt(self) -> None:
        """resolve_policy(None) returns the policy of one attempt."""
        policy = resolve_policy(None)

        assert isinstance(policy, NoRetry)

    @pytest.mark.parametrize(
        "name, policy_class",
        [("backoff", BackoffRetry), ("fixed", FixedRetry), ("none", NoRetry)],
    )
    def test_resolve_builtin_type_name(self, name: str, policy_class: type) -> None:
        """A built-in type name resolves to that policy with its defaults."""
        policy = resolve_policy(name)

        assert isinstance(policy, policy_class)

    def test_resolve_backoff_name_defaults(self) -> None:
        """The name `backoff` uses the same defaults as backoff()."""
        policy = resolve_policy("backoff")

        assert policy.describe() == backoff().describe()

    def test_resolve_mapping_with_parameters(self) -> None:
        """A mapping with `type` passes the other keys as parameters."""
        policy = resolve_policy({"type": "backoff", "max_attempts": 2})

        assert isinstance(policy, BackoffRetry)
        assert policy.max_attempts == 2
        assert decide(policy, make_record(attempt=1)).retry is True
        assert decide(policy, make_record(attempt=2)).retry is False

    def test_resolve_mapping_invalid_value(self) -> None:
        """A mapping with an invalid parameter value raises PolicyError naming the key."""
        with pytest.raises(PolicyError) as caught:
            resolve_policy({"type": "fixed", "max_attempts": 0})

        assert caught.value.key == "retry_policy.max_attempts"

    def test_resolve_mapping_unknown_parameter(self) -> None:
        """An unknown parameter raises PolicyError that lists the allowed parameters."""
        with pytest.raises(PolicyError) as caught:
            resolve_policy({"type": "backoff", "max_tries": 3})

        message = str(caught.value)
        assert "`max_tries`" in message
        assert caught.value.key == "retry_policy.max_tries"
        assert caught.value.allowed == ["max_attempts", "multiplier", "min", "max"]
        for allowed in ("max_attempts", "multiplier", "min", "max"):
            assert repr(allowed) in message

    def test_resolve_none_type_rejects_parameters(self) -> None:
        """The type `none` takes no parameters, so any parameter raises PolicyError."""
        with pytest.raises(PolicyError) as caught:
            resolve_policy({"type": "none", "max_attempts": 3})

        assert caught.value.key == "retry_policy.max_attempts"

    @pytest.mark.parametrize("mapping", [{}, {"type": ""}, {"type": 3}, {"max_attempts": 3}])
    def test_resolve_mapping_missing_type(self, mapping: dict[str, Any]) -> None:
        """A mapping without a non-empty string `type` raises PolicyError."""
        with pytest.raises(PolicyError) as caught:
            resolve_policy(mapping)

        assert caught.value.key == "retry_policy.type"

    @pytest.mark.parametrize("name", ["exponential", "Backoff", "retry_forever"])
    def test_resolve_unknown_type_name(self, name: str) -> None:
        """A type that is neither built in nor a dotted path raises and lists the built-ins."""
        with pytest.raises(PolicyError) as caught:
            resolve_policy(name)

        message = str(caught.value)
        assert f"`{name}`" in message
        assert caught.value.allowed == ["none", "fixed", "backoff"]
        assert "dotted path" in message

    def test_resolve_dotted_path_function(self, policy_module: str) -> None:
        """A dotted path to a function resolves to that function, used as the policy."""
        policy = resolve_policy(f"{policy_module}.retry_once")

        assert policy is sys.modules[policy_module].retry_once
        assert decide(policy, make_record(attempt=1)).retry is True
        assert decide(policy, make_record(attempt=2)).retry is False

    def test_resolve_colon_path_function(self, policy_module: str) -> None:
        """A `module:attribute` path resolves like a dotted path."""
        policy = resolve_policy({"type": f"{policy_module}:retry_once"})

        assert policy is sys.modules[policy_module].retry_once

    def test_resolve_dotted_path_class(self, policy_module: str) -> None:
        """A dotted path to a class is instantiated with the mapping's parameters."""
        policy = resolve_policy(
            {"type": f"{policy_module}.CappedWait", "max_attempts": 4, "wait_s": 2.5}
        )

        assert type(policy).__name__ == "CappedWait"
        assert policy.max_attempts == 4
        assert decide(policy, make_record(attempt=3)) == RetryDecision(True, 2.5)
        assert decide(policy, make_record(attempt=4)).retry is False

    def test_resolve_class_unknown_parameter(self, policy_module: str) -> None:
        """An unknown parameter of a user class raises and lists the class's parameters."""
        with pytest.raises(PolicyError) as caught:
            resolve_policy({"type": f"{policy_module}.CappedWait", "delay": 2})

        assert caught.value.allowed == ["max_attempts", "wait_s"]

    def test_resolve_missing_module(self) -> None:
        """A dotted path whose module does not exist raises PolicyError naming the module."""
        path = f"missing_policies_{uuid.uuid4().hex[:8]}.retry_once"

        with pytest.raises(PolicyError) as caught:
            resolve_policy(path)

        message = str(caught.value)
        assert f"`{path.rpartition('.')[0]}`" in message
        assert "cannot be imported" in message
        assert caught.value.key == "retry_policy.type"

    def test_resolve_missing_attribute(self, policy_module: str) -> None:
        """A dotted path to an attribute the module lacks raises PolicyError naming both."""
        with pytest.raises(PolicyError) as caught:
            resolve_policy(f"{policy_module}.retry_twice")

        message = str(caught.value)
        assert f"`{policy_module}`" in message
        assert "no attribute `retry_twice`" in message

    def test_resolve_function_with_parameters(self, policy_module: str) -> None:
        """Parameters given for a function path raise PolicyError naming them."""
        with pytest.raises(PolicyError) as caught:
            resolve_policy({"type": f"{policy_module}.retry_once", "max_attempts": 3})

        message = str(caught.value)
        assert "takes no parameters" in message
        assert "max_attempts" in message

    def test_resolve_non_callable_attribute(self, policy_module: str) -> None:
        """A dotted path to a value that is not callable raises PolicyError."""
        with pytest.raises(PolicyError) as caught:
            resolve_policy(f"{policy_module}.MAX_TRIES")

        message = str(caught.value)
        assert f"`{policy_module}.MAX_TRIES`" in message
        assert "not a callable" in message

    def test_resolve_class_of_non_callables(self, policy_module: str) -> None:
        """A class whose instances cannot be called is rejected as a policy."""
        with pytest.raises(PolicyError) as caught:
            resolve_policy(f"{policy_module}.NotAPolicy")

        assert "not a callable" in str(caught.value)

    def test_resolve_callable_returned_unchanged(self) -> None:
        """A callable passed directly is the policy itself."""

        def always(record: AttemptRecord) -> bool:
            return True

        policy = resolve_policy(always)

        assert policy is always

    @pytest.mark.parametrize("value", [42, 2.5, ["backoff"]])
    def test_resolve_unsupported_value(self, value: Any) -> None:
        """A value that is no mapping, string, tenacity object or callable raises PolicyError."""
        with pytest.raises(PolicyError) as caught:
            resolve_policy(value)

        assert repr(value) in str(caught.value)


class TestDecide:
    @pytest.mark.parametrize(
        "answer, expected",
        [
            (True, RetryDecision(True, 0.0)),
            (False, RetryDecision(False, 0.0)),
            ((True, 2.5), RetryDecision(True, 2.5)),
            ((True, 3), RetryDecision(True, 3.0)),
            ((False, 0), RetryDecision(False, 0.0)),
            (RetryDecision(True, 1.25, "flaky"), RetryDecision(True, 1.25, "flaky")),
        ],
    )
    def test_decide_normalizes_return_value(self, answer: Any, expected: RetryDecision) -> None:
        """decide turns a bool, a (bool, wait) tuple or a RetryDecision into a RetryDecision."""
        decision = decide(lambda record: answer, make_record())

        assert decision == expected

    def test_decide_passes_record(self) -> None:
        """decide calls the policy with the record it was given."""
        seen: list[AttemptRecord] = []
        failed_try = make_record(attempt=2, elapsed_s=3.5, step="normalize", operation="attempt")

        def record_and_decline(record: AttemptRecord) -> bool:
            seen.append(record)
            return False

        decide(record_and_decline, failed_try)

        assert seen == [failed_try]

    @pytest.mark.parametrize(
        "answer",
        [
            "yes",
            1,
            None,
            (True,),
            (True, 1.0, "reason"),
            [True, 1.0],
        ],
    )
    def test_decide_invalid_return_value(self, answer: Any) -> None:
        """decide raises PolicyError for a return value that is no bool, pair or RetryDecision."""
        with pytest.raises(PolicyError) as caught:
            decide(lambda record: answer, make_record())

        assert repr(answer) in str(caught.value)

    @pytest.mark.parametrize(
        "answer",
        [
            (True, -1),
            (True, math.nan),
            (True, math.inf),
            RetryDecision(True, -0.5),
            RetryDecision(True, math.nan),
        ],
    )
    def test_decide_invalid_wait(self, answer: Any) -> None:
        """decide raises PolicyError for a negative, NaN or infinite wait."""
        with pytest.raises(PolicyError) as caught:
            decide(lambda record: answer, make_record())

        assert "wait" in str(caught.value)

    @pytest.mark.parametrize("answer", [(True, "soon"), (True, None), RetryDecision(True, "5")])
    def test_decide_non_numeric_wait(self, answer: Any) -> None:
        """decide raises PolicyError for a wait that is not a number."""
        with pytest.raises(PolicyError):
            decide(lambda record: answer, make_record())


class TestTenacity:
    def test_tenacity_object_resolves(self) -> None:
        """resolve_policy and from_tenacity both wrap a tenacity.Retrying object."""
        retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(2))

        resolved = resolve_policy(retrying)
        wrapped = from_tenacity(retrying)

        assert isinstance(resolved, TenacityPolicy)
        assert isinstance(wrapped, TenacityPolicy)
        assert resolved.retrying is retrying

    @pytest.mark.parametrize(
        "attempt, expected",
        [(1, RetryDecision(True, 7.0)), (2, RetryDecision(True, 7.0))],
    )
    def test_tenacity_fixed_wait_retries(self, attempt: int, expected: RetryDecision) -> None:
        """stop_after_attempt(3) with wait_fixed(7) retries tries 1 and 2 after 7 s."""
        policy = resolve_policy(
            tenacity.Retrying(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(7))
        )

        decision = decide(policy, make_record(attempt=attempt))

        assert decision == expected

    def test_tenacity_stop_after_attempt(self) -> None:
        """stop_after_attempt(3) stops after the third try."""
        policy = resolve_policy(
            tenacity.Retrying(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(7))
        )

        decision = decide(policy, make_record(attempt=3))

        assert decision.retry is False
        assert "stop" in decision.reason

    @pytest.mark.parametrize(
        "attempt, expected_wait",
        # multiplier * 2**(n-1) = 1, 2, 4, 8 clamped to [2, 5]
        [(1, 2.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)],
    )
    def test_tenacity_exponential_wait(self, attempt: int, expected_wait: float) -> None:
        """wait_exponential(multiplier=1, min=2, max=5) sets the wait of each retry."""
        policy = resolve_policy(
            tenacity.Retrying(wait=tenacity.wait_exponential(multiplier=1, min=2, max=5))
        )

        decision = decide(policy, make_record(attempt=attempt))

        assert decision.retry is True
        assert decision.wait_s == expected_wait

    @pytest.mark.parametrize(
        "elapsed_s, expected_retry",
        [(0.0, True), (9.99, True), (10.0, False), (60.0, False)],
    )
    def test_tenacity_stop_after_delay(self, elapsed_s: float, expected_retry: bool) -> None:
        """stop_after_delay(10) stops once elapsed_s reaches 10 seconds."""
        policy = resolve_policy(tenacity.Retrying(stop=tenacity.stop_after_delay(10)))

        decision = decide(policy, make_record(attempt=2, elapsed_s=elapsed_s))

        assert decision.retry is expected_retry

    def test_tenacity_retry_type_rejects_other(self) -> None:
        """retry_if_exception_type(ValueError) declines to retry a KeyError."""
        policy = resolve_policy(
            tenacity.Retrying(retry=tenacity.retry_if_exception_type(ValueError))
        )

        decision = decide(policy, make_record(exception=KeyError("id")))

        assert decision.retry is False
        assert "retry strategy" in decision.reason

    def test_tenacity_retry_type_accepts_subclass(self) -> None:
        """retry_if_exception_type(ValueError) retries a subclass of ValueError."""

        class RateLimited(ValueError):
            pass

        policy = resolve_policy(
            tenacity.Retrying(retry=tenacity.retry_if_exception_type(ValueError))
        )

        decision = decide(policy, make_record(exception=RateLimited("429")))

        assert decision.retry is True

    def test_tenacity_stop_before_delay(self) -> None:
        """stop_before_delay(10) stops when elapsed 8 s plus the 3 s wait reach 10 s."""
        policy = resolve_policy(
            tenacity.Retrying(stop=tenacity.stop_before_delay(10), wait=tenacity.wait_fixed(3))
        )

        decision = decide(policy, make_record(attempt=2, elapsed_s=8.0))

        assert decision.retry is False
