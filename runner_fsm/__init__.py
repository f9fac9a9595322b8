"""runner-fsm: run dlt pipelines to completion as journaled, declarative state machines.

    import runner_fsm
    load_info = runner_fsm.runner(pipeline, retry_policy=runner_fsm.backoff()).run(data)
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from runner_fsm._runner import Runner, runner
    from runner_fsm.callbacks import RunnerCallbacks


def __getattr__(name: str) -> Any:
    # the runner imports dlt, which takes a moment: commands such as `runner-fsm --help` and
    # the journal readers do without it
    if name in ("Runner", "runner", "default_journal_dir"):
        from runner_fsm import _runner

        return getattr(_runner, name)
    if name == "RunnerCallbacks":
        from runner_fsm.callbacks import RunnerCallbacks

        return RunnerCallbacks
    raise AttributeError(f"module 'runner_fsm' has no attribute {name!r}")

__all__ = [
    "__version__",
    "runner",
    "Runner",
    "RunnerCallbacks",
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
