"""The `run_config` of a pipeline: its keys, their types and their defaults.

The keys and defaults of dltHub's runner are kept: `store_trace_info: false`,
`run_from_clean_folder: false`, no `retry_policy` (one attempt) and
`retry_pipeline_steps: ["load"]`. `on_terminal_pending` is a key of runner-fsm's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from runner_fsm._config_layers import Place, describe_place
from runner_fsm.exceptions import ConfigError
from runner_fsm.policies import BUILTIN_POLICY_TYPES, RetryPolicy, resolve_policy

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
PlaceOf = Callable[[str], Place]


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
    # where each key was set (`retry_policy.max_attempts` -> `dlt.yml:14`), when read from files
    origins: dict[str, str] = field(default_factory=dict)


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


def _check_bool(value: Any, place: Place) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(
            f"the value must be true or false, got {value!r}.",
            source=place.source,
            line=place.line,
            key=place.key,
            value=value,
            allowed=[True, False],
        )
    return value


def _check_trace_target(value: Any, place: Place) -> Union[bool, str, Any]:
    if isinstance(value, (bool, str)) and value != "":
        return value
    if type(value).__name__ == "Pipeline" and hasattr(value, "pipeline_name"):
        return value
    raise ConfigError(
        f"`store_trace_info` must be true, false or the name of a pipeline, got {value!r}.",
        source=place.source,
        line=place.line,
        key=place.key,
        value=value,
        allowed=[True, False, "<pipeline name>"],
    )


def _places_in_file(source: Optional[str], line_of: LineOf, key_prefix: str) -> PlaceOf:
    def place_of(key: str) -> Place:
        return Place(source, line_of(key), f"{key_prefix}.{key}" if key else key_prefix)

    return place_of


def parse_run_config(
    data: Optional[Mapping[str, Any]],
    *,
    source: Optional[str] = None,
    line_of: LineOf = _no_line,
    key_prefix: str = "run_config",
    place_of: Optional[PlaceOf] = None,
) -> RunConfig:
    """Validate a `run_config` mapping and return the `RunConfig` it describes.

    `place_of(key)` returns where the dotted `key` was written, so that errors point at it. Without
    it, every key comes from `source`, `line_of(key)` returns its line and `key_prefix` is the path
    of the mapping in the file.
    """
    where = place_of or _places_in_file(source, line_of, key_prefix)
    if data is None:
        return RunConfig()
    if not isinstance(data, Mapping):
        place = where("")
        raise ConfigError(
            f"`{place.key}` must be a mapping of keys, got {data!r}.",
            source=place.source,
            line=place.line,
            key=place.key,
            value=data,
        )
    for key in data:
        if key not in RUN_CONFIG_KEYS:
            place = where(str(key))
            raise ConfigError(
                f"unknown key {key!r} in `run_config`.",
                source=place.source,
                line=place.line,
                key=place.key,
                value=data[key],
                allowed=RUN_CONFIG_KEYS,
            )
    config = RunConfig()
    if "store_trace_info" in data:
        config.store_trace_info = _check_trace_target(
            data["store_trace_info"], where("store_trace_info")
        )
    if "run_from_clean_folder" in data:
        config.run_from_clean_folder = _check_bool(
            data["run_from_clean_folder"], where("run_from_clean_folder")
        )
    if "retry_pipeline_steps" in data:
        place = where("retry_pipeline_steps")
        config.retry_pipeline_steps = check_retry_steps(
            data["retry_pipeline_steps"], source=place.source, line=place.line, key=place.key
        )
    if "on_terminal_pending" in data:
        value = data["on_terminal_pending"]
        if value not in ON_TERMINAL_PENDING:
            place = where("on_terminal_pending")
            raise ConfigError(
                f"{value!r} is not a valid way to handle a pending package whose jobs failed.",
                source=place.source,
                line=place.line,
                key=place.key,
                value=value,
                allowed=ON_TERMINAL_PENDING,
            )
        config.on_terminal_pending = value
    if "retry_policy" in data:
        config.retry_policy = _parse_policy(data["retry_policy"], where)
    return config


def _parse_policy(value: Any, where: PlaceOf) -> Optional[RetryPolicy]:
    if value is None:
        return None
    if isinstance(value, Mapping) and "type" not in value:
        place = where("retry_policy")
        raise ConfigError(
            "`retry_policy` has no `type`. Set `type` (for example `type: backoff`) where the"
            f" policy is set.{_origins(value, where)}",
            source=place.source,
            line=place.line,
            key=place.key,
            value=dict(value),
            allowed=BUILTIN_POLICY_TYPES,
        )
    try:
        return resolve_policy(value)
    except ConfigError as ex:
        # the policy names its keys relative to `run_config`: `retry_policy.max_attempts`
        place = where(ex.key or "retry_policy")
        raise ConfigError(
            ex.reason + _origins(value, where),
            source=place.source,
            line=place.line,
            key=place.key,
            value=ex.value,
            allowed=ex.allowed,
        ) from ex


def _origins(policy: Any, where: PlaceOf) -> str:
    """Name where each key of `policy` was set, when the keys come from more than one place."""
    if not isinstance(policy, Mapping):
        return ""
    places = {str(key): where(f"retry_policy.{key}") for key in policy}
    if len({place.source for place in places.values()}) < 2:
        return ""
    described = [
        f"`{key}` from {'the ' if place.source == 'environment' else ''}{describe_place(place)}"
        for key, place in places.items()
    ]
    return " The keys of `retry_policy` come from: " + "; ".join(described) + "."
