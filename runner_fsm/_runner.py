"""The runner: drives one dlt pipeline through the run machine and journals every transition."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from runner_fsm._clock import Clock, SystemClock
from runner_fsm._lock import PipelineLock, lock_path
from runner_fsm._resume import Interrupted, find_interrupted
from runner_fsm._run import Run
from runner_fsm._scrub import Scrubber
from runner_fsm._signals import StopRequest, watch_signals
from runner_fsm.exceptions import ConfigError
from runner_fsm.journal import journal_path
from runner_fsm.logs import get_logger
from runner_fsm.machine import MachineSpec, load_spec
from runner_fsm.policies import RetryPolicy, resolve_policy
from runner_fsm.run_config import ON_TERMINAL_PENDING, RunConfig, check_retry_steps
from runner_fsm.traces import TraceStore, known_secrets

if TYPE_CHECKING:
    from dlt.common.pipeline import LoadInfo
    from dlt.pipeline.pipeline import Pipeline

__all__ = ["Runner", "runner", "default_journal_dir"]


def default_journal_dir(pipeline: "Pipeline") -> Path:
    """Return the journal folder used when none is given: `journal` beside the pipelines folder.

    For dlt's default pipelines folder `~/.dlt/pipelines` that is `~/.dlt/journal`. It lies outside
    every pipeline working folder, so `run_from_clean_folder` cannot remove it.
    """
    return Path(pipeline.pipelines_dir).resolve().parent / "journal"


def _check_trace_target(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if hasattr(value, "pipeline_name") and hasattr(value, "run"):
        return value
    hint = (
        " A pipeline name works in dlt.yml, where the project defines the pipeline; from Python,"
        " pass the dlt.Pipeline object."
        if isinstance(value, str)
        else ""
    )
    raise ConfigError(
        f"`store_trace_info` must be True, False or a dlt.Pipeline, got {value!r}.{hint}",
        key="store_trace_info",
        value=value,
    )


class Runner:
    """Runs a dlt pipeline to completion: retries, pending packages, a clean folder, a journal.

    Every call of `run` is one run of the machine in `specs/run_machine.yaml`, with its own run id
    in the journal. A runner is not thread-safe: run one pipeline from one thread at a time.
    """

    def __init__(
        self,
        pipeline: "Pipeline",
        *,
        run_from_clean_folder: bool = False,
        store_trace_info: Any = False,
        retry_policy: Any = None,
        retry_pipeline_steps: Sequence[str] = ("load",),
        on_terminal_pending: str = "fail",
        journal_dir: Optional[os.PathLike[str] | str] = None,
        clock: Optional[Clock] = None,
        spec_path: Optional[os.PathLike[str] | str] = None,
        config_origins: Optional[dict[str, str]] = None,
    ) -> None:
        if not isinstance(run_from_clean_folder, bool):
            raise ConfigError(
                f"`run_from_clean_folder` must be True or False, got {run_from_clean_folder!r}.",
                key="run_from_clean_folder",
                value=run_from_clean_folder,
            )
        if on_terminal_pending not in ON_TERMINAL_PENDING:
            raise ConfigError(
                f"{on_terminal_pending!r} is not a valid way to handle a pending package whose"
                " jobs failed.",
                key="on_terminal_pending",
                value=on_terminal_pending,
                allowed=ON_TERMINAL_PENDING,
            )
        self.pipeline = pipeline
        self.config = RunConfig(
            store_trace_info=_check_trace_target(store_trace_info),
            run_from_clean_folder=run_from_clean_folder,
            retry_policy=resolve_policy(retry_policy),
            retry_pipeline_steps=check_retry_steps(retry_pipeline_steps),
            on_terminal_pending=on_terminal_pending,
            origins=dict(config_origins or {}),
        )
        self.journal_dir = Path(journal_dir) if journal_dir else default_journal_dir(pipeline)
        self.clock: Clock = clock or SystemClock()
        self.spec: MachineSpec = load_spec(Path(spec_path) if spec_path else None, model=Run)
        self.scrubber = Scrubber()
        self.stop = StopRequest()
        self.lock_taken_from: Optional[int] = None
        self._trace_store: Optional[TraceStore] = None
        self._secrets_known = False

    def trace_store(self) -> Optional[TraceStore]:
        """Return the trace store, created on first use, or None when traces are not stored."""
        if not self.config.store_trace_info:
            return None
        if self._trace_store is None:
            self._trace_store = TraceStore(
                self.pipeline, self.config.store_trace_info, self.scrubber
            )
        return self._trace_store

    def learn_secrets(self) -> None:
        """Have the scrubber learn the secret values of the destination credentials, once.

        The values are looked up when the scrubber first scrubs something.
        """
        if not self._secrets_known:
            pipeline = self.pipeline
            self.scrubber.add_later(lambda: known_secrets(pipeline))
            self._secrets_known = True

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy of this runner."""
        assert self.config.retry_policy is not None
        return self.config.retry_policy

    def run(self, data: Any = None, **kwargs: Any) -> Optional["LoadInfo"]:
        """Run the pipeline with `data` to completion and return the `LoadInfo` of the data.

        A run that an earlier process left interrupted is finished first, under its own run id:
        its pending packages are loaded and its spilled traces replayed. Then pending packages
        of an earlier run are loaded, and the data runs. `kwargs` go to `pipeline.run`. With
        `data=None` only pending packages are loaded, and their `LoadInfo` is returned (None
        when there were none). On failure the exception of the last failed step is raised; on
        SIGINT or SIGTERM, `RunInterrupted`.
        """
        _check_run_kwargs(self.pipeline, kwargs)
        self.learn_secrets()
        with self._exclusive():
            self._resume_interrupted()
            run = Run(self, data, kwargs, run_id=_new_run_id(self.clock))
            info: Optional["LoadInfo"] = run.execute()
        return info

    def finalize(self) -> Optional["LoadInfo"]:
        """Load pending packages only, under the retry policy, and return their `LoadInfo`."""
        return self.run(None)

    def resume(self) -> Optional[Interrupted]:
        """Finish the run that an earlier process left interrupted, if there is one.

        Returns what the journal showed of the interrupted run, or None when the last run ended.
        """
        self.learn_secrets()
        with self._exclusive():
            return self._resume_interrupted()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        name = self.pipeline.pipeline_name
        lock = PipelineLock(lock_path(self.journal_dir, name), name)
        taken_from = lock.acquire()
        if taken_from is not None:
            self.lock_taken_from = taken_from
        self.stop = StopRequest()
        try:
            with watch_signals(self.stop):
                yield
        finally:
            lock.release()

    def _resume_interrupted(self) -> Optional[Interrupted]:
        path = journal_path(self.journal_dir, self.pipeline.pipeline_name)
        interrupted, unreadable = find_interrupted(path)
        log = get_logger(pipeline=self.pipeline.pipeline_name)
        for report in unreadable:
            log.warning("journal_line_unreadable", line=report, journal=str(path))
        if interrupted is None:
            return None
        log.warning(
            "resuming_interrupted_run",
            run_id=interrupted.run_id,
            last_state=interrupted.last_state,
            tries=interrupted.tries,
        )
        Run(self, None, {}, run_id=interrupted.run_id, resumed=interrupted).execute()
        return interrupted


def _check_run_kwargs(pipeline: Any, kwargs: dict[str, Any]) -> None:
    import inspect

    accepted = set(inspect.signature(pipeline.run).parameters) - {"data"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(
            f"`pipeline.run` takes no argument {', '.join(f'`{k}`' for k in unknown)}.",
            key=unknown[0],
            value=kwargs[unknown[0]],
            allowed=sorted(accepted),
        )


def _new_run_id(clock: Clock) -> str:
    return f"{clock.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def runner(
    pipeline: "Pipeline",
    *,
    run_from_clean_folder: bool = False,
    store_trace_info: Any = False,
    retry_policy: Any = None,
    retry_pipeline_steps: Sequence[str] = ("load",),
    on_terminal_pending: str = "fail",
    journal_dir: Optional[os.PathLike[str] | str] = None,
    clock: Optional[Clock] = None,
) -> Runner:
    """Return a `Runner` for `pipeline`; the arguments are the keys of `run_config` in dlt.yml."""
    return Runner(
        pipeline,
        run_from_clean_folder=run_from_clean_folder,
        store_trace_info=store_trace_info,
        retry_policy=retry_policy,
        retry_pipeline_steps=retry_pipeline_steps,
        on_terminal_pending=on_terminal_pending,
        journal_dir=journal_dir,
        clock=clock,
    )
