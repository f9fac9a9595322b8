"""runner-fsm: run dlt pipelines to completion as journaled, declarative state machines.

    import runner_fsm
    load_info = runner_fsm.runner(pipeline, retry_policy=runner_fsm.backoff()).run(data)
"""

from runner_fsm._version import __version__
from runner_fsm.exceptions import (
    ConfigError,
    GeneratorNotRetryable,
    JournalError,
    PendingPackageFailed,
    PolicyError,
    RunFailed,
    RunnerFsmError,
    SpecError,
)
from runner_fsm.policies import (
    AttemptRecord,
    BackoffRetry,
    FixedRetry,
    NoRetry,
    RetryDecision,
    backoff,
    fixed,
    from_tenacity,
    no_retry,
)
from runner_fsm.runner import Runner, runner

__all__ = [
    "__version__",
    "runner",
    "Runner",
    "AttemptRecord",
    "RetryDecision",
    "NoRetry",
    "FixedRetry",
    "BackoffRetry",
    "no_retry",
    "fixed",
    "backoff",
    "from_tenacity",
    "RunnerFsmError",
    "ConfigError",
    "SpecError",
    "PolicyError",
    "JournalError",
    "RunFailed",
    "PendingPackageFailed",
    "GeneratorNotRetryable",
]
