"""The places a pipeline's `run_config` is read from, and how their values are combined.

A pipeline `flights` of a project file reads its `run_config` from, highest precedence first:

1. environment variables named in dlt's way: `PIPELINES__FLIGHTS__RUN_CONFIG__<KEY>`, with
   `__` between the parts of a nested key (`..._RUN_CONFIG__RETRY_POLICY__MAX_ATTEMPTS=3`);
2. the table `[pipelines.flights.run_config]` of `.dlt/config.toml` beside the project file;
3. the same table of `config.toml` in dlt's global folder;
4. `pipelines.flights.run_config` in the project file.

A key set in a higher place replaces the same key of the places below it; keys that it does not
set keep their values. Nested keys combine the same way, with one exception: a place that sets
`retry_policy` to another policy `type` replaces the whole `retry_policy` of the places below it,
because the parameters of one policy type do not fit another. A `retry_policy` given as a type
name (`retry_policy: backoff`) counts as `{type: backoff}`.

The value of an environment variable is read as JSON, then as a TOML value, and otherwise kept
as the string it is: `3` is a number, `true` a boolean, `["load", "normalize"]` a list,
`{"type": "fixed"}` a table and `backoff` a string.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import orjson
import tomlkit
from tomlkit.exceptions import TOMLKitError

from runner_fsm.exceptions import ConfigError

__all__ = [
    "KeyPath",
    "Layer",
    "Place",
    "describe_place",
    "leaf_keys",
    "env_layer",
    "merge_layers",
    "unread_settings",
    "toml_layer",
    "yaml_layer",
]

KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class Place:
    """The origin of a value: the file (or `environment`), its line and its key there."""

    source: Optional[str]
    line: Optional[int]
    key: str


def describe_place(place: Place) -> str:
    """Return where a value was set, for messages and the journal: a variable, or file:line."""
    if place.source == "environment":
        return f"environment variable {place.key}"
    line = f":{place.line}" if place.line is not None else ""
    return f"{place.source}{line}"


def leaf_keys(values: Any, prefix: str = "") -> list[str]:
    """Return the dotted keys of the values of `values` that are not mappings themselves."""
    if not isinstance(values, Mapping) or not values:
        return [prefix] if prefix else []
    keys: list[str] = []
    for key, value in values.items():
        keys.extend(leaf_keys(value, f"{prefix}.{key}" if prefix else str(key)))
    return keys


@dataclass
class Layer:
    """The `run_config` values of one place, and where each key of them was written."""

    values: dict[str, Any]
    source: Optional[str]
    key_of: Callable[[KeyPath], str]  # the key of a path, spelled as this place spells it
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def place(self, path: KeyPath) -> Place:
        """Return the place of `path`, with the line of the path or of its closest parent."""
        line = None
        probe = path
        while line is None and probe:
            line = self.lines.get(probe)
            probe = probe[:-1]
        if line is None:
            line = self.lines.get(())
        return Place(self.source, line, self.key_of(path))


def _dotted(prefix: str) -> Callable[[KeyPath], str]:
    def key_of(path: KeyPath) -> str:
        return ".".join((prefix, *path))

    return key_of


def section_path(pipeline_name: str) -> KeyPath:
    """Return the configuration section of the `run_config` of pipeline `pipeline_name`."""
    return ("pipelines", pipeline_name, "run_config")


def yaml_layer(
    values: Optional[Mapping[str, Any]], source: str, lines: Mapping[str, int], pipeline_name: str
) -> Layer:
    """Return the `run_config` of the project file, with `lines` the lines of its keys."""
    key_lines = {tuple(k.split(".")): line for k, line in lines.items() if k}
    if "" in lines:
        key_lines[()] = lines[""]
    data = dict(values) if isinstance(values, Mapping) else values
    return Layer(data, source, _dotted(".".join(section_path(pipeline_name))), key_lines)  # type: ignore[arg-type]


# --- environment variables -----------------------------------------------------------------------


def env_prefix(pipeline_name: str) -> str:
    """Return the name of the environment variable that contains the whole `run_config`."""
    return "__".join(section_path(pipeline_name)).upper()


def parse_env_value(text: str) -> Any:
    """Read the value of an environment variable as JSON, as a TOML value, or as a string."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return tomlkit.parse(f"value = {text}").unwrap()["value"]
    except TOMLKitError:
        return text


def env_layer(pipeline_name: str, environ: Optional[Mapping[str, str]] = None) -> Layer:
    """Return the `run_config` values that environment variables set for `pipeline_name`."""
    environ = os.environ if environ is None else environ
    prefix = env_prefix(pipeline_name)
    variables: dict[KeyPath, str] = {}
    values: dict[str, Any] = {}
    # the variable of the whole section first, so that a variable of one key overrides it
    names = sorted((n for n in environ if n == prefix or n.startswith(prefix + "__")), key=len)
    for name in names:
        parts = name[len(prefix) :].split("__")[1:]
        path = tuple(p.lower() for p in parts)
        if any(not p for p in path):
            raise ConfigError(
                "the name of the environment variable has an empty part. Separate the parts of"
                " a key with exactly two underscores, as in"
                f" {prefix}__RETRY_POLICY__MAX_ATTEMPTS.",
                source="environment",
                key=name,
            )
        value = parse_env_value(environ[name])
        variables[path] = name
        if not path:
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"`{name}` sets the whole `run_config`, so its value must be a JSON object"
                    f" or a TOML inline table, got {environ[name]!r}. Set one key with"
                    f" {prefix}__<KEY> instead.",
                    source="environment",
                    key=name,
                    value=environ[name],
                )
            values.update(copy.deepcopy(dict(value)))
            continue
        node = values
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value

    def key_of(path: KeyPath) -> str:
        probe = path
        while probe not in variables and probe:
            probe = probe[:-1]
        return variables.get(probe) or "__".join((prefix, *path)).upper()

    return Layer(values, "environment", key_of)


# --- config.toml ---------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")


def _split_key(text: str) -> KeyPath:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def _toml_key_lines(text: str) -> dict[KeyPath, int]:
    """Return the line of each table and key of a TOML text (quoted dots are not handled)."""
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(table, number)
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment:
            lines.setdefault(table + _split_key(assignment.group(1)), number)
    return lines


def toml_layer(path: Path, pipeline_name: str) -> Optional[Layer]:
    """Return the `run_config` of `pipeline_name` in the TOML file `path`, or None if it has none."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as ex:
        raise ConfigError(f"the file cannot be read: {ex}.", source=str(path)) from ex
    try:
        document = tomlkit.parse(text).unwrap()
    except TOMLKitError as ex:
        raise ConfigError(f"the file is not valid TOML: {ex}.", source=str(path)) from ex
    section = section_path(pipeline_name)
    node: Any = document
    for part in section:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    key_lines = {
        key[len(section) :]: line
        for key, line in _toml_key_lines(text).items()
        if key[: len(section)] == section
    }
    values = dict(node) if isinstance(node, Mapping) else node
    return Layer(values, str(path), _dotted(".".join(section)), key_lines)


# --- settings that no pipeline reads -------------------------------------------------------------


def unread_settings(
    pipeline_names: list[str],
    toml_paths: list[Path],
    environ: Optional[Mapping[str, str]] = None,
) -> list[str]:
    """Name the `pipelines` settings of the environment and TOML files that no pipeline reads.

    A misspelled pipeline name or `run_config` section would otherwise be ignored in silence.
    """
    environ = os.environ if environ is None else environ
    prefixes = {env_prefix(name) for name in pipeline_names}
    found = [
        f"environment variable {name}"
        for name in sorted(environ)
        if name.startswith("PIPELINES__")
        and not any(name == prefix or name.startswith(prefix + "__") for prefix in prefixes)
    ]
    for path in toml_paths:
        try:
            document = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
        except (OSError, UnicodeDecodeError, TOMLKitError):
            continue  # toml_layer reports a file that cannot be read
        pipelines = document.get("pipelines")
        if not isinstance(pipelines, Mapping):
            continue
        for name, section in pipelines.items():
            if name not in pipeline_names:
                found.append(f"[pipelines.{name}] in {path}")
            elif isinstance(section, Mapping):
                found.extend(
                    f"[pipelines.{name}.{key}] in {path}" for key in section if key != "run_config"
                )
    return found


# --- combining the places ------------------------------------------------------------------------


def _replaces(path: KeyPath, lower: Mapping[str, Any], upper: Mapping[str, Any]) -> bool:
    """Return True if `upper` replaces `lower` as a whole instead of being merged into it."""
    return path == ("retry_policy",) and "type" in upper and upper["type"] != lower.get("type")


def _policy_as_table(values: Any) -> Any:
    """Return `values` with a `retry_policy` given by name written as `{type: <name>}`."""
    if isinstance(values, Mapping) and isinstance(values.get("retry_policy"), str):
        return {**values, "retry_policy": {"type": values["retry_policy"]}}
    return values


def merge_layers(layers: list[Layer]) -> tuple[Any, Callable[[str], Place]]:
    """Combine `layers`, lowest precedence first, into one `run_config`.

    Returns the combined values and a function that gives the `Place` of a dotted key of them.
    The first layer whose values are not a mapping is returned as it is, so that the error about
    it names its place.
    """
    merged: Any = None
    owners: dict[KeyPath, Layer] = {}

    def take(path: KeyPath, value: Any, layer: Layer) -> None:
        for owned in [p for p in owners if p[: len(path)] == path]:
            del owners[owned]
        owners[path] = layer
        if isinstance(value, Mapping):
            for key, child in value.items():
                take(path + (str(key),), child, layer)

    def overlay(base: dict[str, Any], upper: Mapping[str, Any], path: KeyPath, layer: Layer) -> None:
        for key, value in upper.items():
            child_path = path + (str(key),)
            lower = base.get(key)
            if (
                isinstance(value, Mapping)
                and isinstance(lower, dict)
                and not _replaces(child_path, lower, value)
            ):
                overlay(lower, value, child_path, layer)
            else:
                base[key] = copy.deepcopy(value)
                take(child_path, value, layer)

    for layer in layers:
        layer.values = _policy_as_table(layer.values)
        if layer.values is None:
            continue
        if not isinstance(layer.values, Mapping):
            merged = layer.values
            owners = {(): layer}
            break
        if merged is None:
            merged = {}
            owners[()] = layer
        overlay(merged, layer.values, (), layer)

    def place_of(key: str) -> Place:
        path = tuple(key.split(".")) if key else ()
        probe = path
        while probe not in owners and probe:
            probe = probe[:-1]
        layer = owners.get(probe) or (layers[-1] if layers else None)
        if layer is None:
            return Place(None, None, key or "run_config")
        return layer.place(path)

    return merged, place_of
