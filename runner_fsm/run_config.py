"""The `run_config` of a pipeline: its keys, their types and their defaults.

The keys and defaults of dltHub's runner are kept: `store_trace_info: false`,
`run_from_clean_folder: false`, no `retry_policy` (one attempt) and
`retry_pipeline_steps: ["load"]`. `on_terminal_pending` is a key of runner-fsm's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from runner_fsm.exceptions import ConfigError
from runner_fsm.policies import RetryPolicy, resolve_policy

__all__ = [
    "RunConfig",
    "RETRYABLE_STEPS",
    "ON_TERMINAL_PENDING",
    "RUN_CONFIG_KEYS",
    "parse_run_config",
    "check_retry_steps",
]

RETRYABLE_STEPS = ("extract", "normalize", "load")
ON_TERMINAL_PENDING = ("fail", "abort")
RUN_CONFIG_KEYS = (
    "store_trace_info",
    "run_from_clean_folder",
    "retry_policy",
    "retry_pipeline_steps",
    "on_terminal_pending",
)

LineOf = Callable[[str], Optional[int]]


@dataclass
class RunConfig:
    """The run settings of one pipeline.

    `store_trace_info` is False, True, the name of another pipeline of the project file, or (from
    Python) a `dlt.Pipeline`. `retry_policy` is the policy object built from the configuration.
    """

    store_trace_info: Any = False
    run_from_clean_folder: bool = False
    retry_policy: Optional[RetryPolicy] = None
    retry_pipeline_steps: Sequence[str] = field(default_factory=lambda: ["load"])
    on_terminal_pending: str = "fail"


def _no_line(_key: str) -> Optional[int]:
    return None


def check_retry_steps(
    value: Any,
    *,
    source: Optional[str] = None,
    line: Optional[int] = None,
    key: str = "retry_pipeline_steps",
) -> list[str]:
    """Return `value` as a list of dlt steps, or raise `ConfigError` naming the bad step."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(
            f"`retry_pipeline_steps` must be a list of steps, got {value!r}."
            " Write for example `retry_pipeline_steps: [\"load\"]`.",
            source=source,
            line=line,
            key=key,
            value=value,
            allowed=RETRYABLE_STEPS,
        )
    for step in value:
        if step not in RETRYABLE_STEPS:
            raise ConfigError(
                f"{step!r} is not a dlt pipeline step that can be retried.",
                source=source,
                line=line,
                key=key,
                value=step,
                allowed=RETRYABLE_STEPS,
            )
    return list(value)


def _check_bool(key: str, value: Any, source: Optional[str], line: Optional[int]) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(
            f"`{key}` must be true or false, got {value!r}.",
            source=source,
            line=line,
            key=key,
            value=value,
            allowed=[True, False],
        )
    return value


def _check_trace_target(
    value: Any, source: Optional[str], line: Optional[int], key: str
) -> Union[bool, str, Any]:
    if isinstance(value, (bool, str)) and value != "":
        return value
    if type(value).__name__ == "Pipeline" and hasattr(value, "pipeline_name"):
        return value
    raise ConfigError(
        f"`store_trace_info` must be true, false or the name of a pipeline, got {value!r}.",
        source=source,
        line=line,
        key=key,
        value=value,
        allowed=[True, False, "<pipeline name>"],
    )


def parse_run_config(
    data: Optional[Mapping[str, Any]],
    *,
    source: Optional[str] = None,
    line_of: LineOf = _no_line,
    key_prefix: str = "run_config",
) -> RunConfig:
    """Validate a `run_config` mapping and return the `RunConfig` it describes.

    `line_of(key)` returns the line of `key` in `source`, so that errors point at it.
    """
    if data is None:
        return RunConfig()
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"`{key_prefix}` must be a mapping of keys, got {data!r}.",
            source=source,
            line=line_of(""),
            key=key_prefix,
            value=data,
        )
    for key in data:
        if key not in RUN_CONFIG_KEYS:
            raise ConfigError(
                f"unknown key {key!r} in `{key_prefix}`.",
                source=source,
                line=line_of(str(key)),
                key=f"{key_prefix}.{key}",
                value=data[key],
                allowed=RUN_CONFIG_KEYS,
            )
    config = RunConfig()
    if "store_trace_info" in data:
        line = line_of("store_trace_info")
        config.store_trace_info = _check_trace_target(
            data["store_trace_info"], source, line, f"{key_prefix}.store_trace_info"
        )
    if "run_from_clean_folder" in data:
        line = line_of("run_from_clean_folder")
        value = data["run_from_clean_folder"]
        config.run_from_clean_folder = _check_bool(
            f"{key_prefix}.run_from_clean_folder", value, source, line
        )
    if "retry_pipeline_steps" in data:
        line = line_of("retry_pipeline_steps")
        config.retry_pipeline_steps = check_retry_steps(
            data["retry_pipeline_steps"],
            source=source,
            line=line,
            key=f"{key_prefix}.retry_pipeline_steps",
        )
    if "on_terminal_pending" in data:
        value = data["on_terminal_pending"]
        if value not in ON_TERMINAL_PENDING:
            raise ConfigError(
                f"{value!r} is not a valid way to handle a pending package whose jobs failed.",
                source=source,
                line=line_of("on_terminal_pending"),
                key=f"{key_prefix}.on_terminal_pending",
                value=value,
                allowed=ON_TERMINAL_PENDING,
            )
        config.on_terminal_pending = value
    if "retry_policy" in data:
        config.retry_policy = _parse_policy(data["retry_policy"], source, line_of, key_prefix)
    return config


def _parse_policy(
    value: Any, source: Optional[str], line_of: LineOf, key_prefix: str
) -> Optional[RetryPolicy]:
    if value is None:
        return None
    try:
        return resolve_policy(value)
    except ConfigError as ex:
        key = ex.key or "retry_policy"
        sub_key = key.partition(".")[2]
        line = line_of(f"retry_policy.{sub_key}" if sub_key else "retry_policy")
        if line is None:
            line = line_of("retry_policy")
        raise ConfigError(
            ex.reason,
            source=source,
            line=line,
            key=f"{key_prefix}.{key}",
            value=ex.value,
            allowed=ex.allowed,
        ) from ex
