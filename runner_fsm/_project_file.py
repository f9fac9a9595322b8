"""Reading and checking a dlt project file: the entries of `dlt.yml` with the line of every key.

Only the structure is checked here: keys, types and the references between entries. Importing
source types and building destinations is the work of `runner_fsm.project`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dlt.common.storages import FileStorage

from runner_fsm.exceptions import ConfigError

__all__ = [
    "DATA_FOLDER",
    "PIPELINE_KEYS",
    "DLT_COLLECTORS",
    "TOP_LEVEL_KEYS",
    "BUILTIN_SOURCE_EXAMPLES",
    "DestinationDefinition",
    "FileLines",
    "PipelineDefinition",
    "ProjectFile",
    "SourceDefinition",
    "parse_project_file",
]

TOP_LEVEL_KEYS = ("sources", "destinations", "pipelines")
IGNORED_TOP_LEVEL_KEYS = ("project",)
PIPELINE_KEYS = ("source", "destination", "dataset_name", "progress", "run_config")
SOURCE_KEYS = ("type", "with_args")
# the collectors that `dlt.pipeline(progress=...)` accepts by name
DLT_COLLECTORS = ("log", "tqdm", "enlighten", "alive_progress")
DATA_FOLDER = "_data"

# source types that dlt ships, listed when a source type cannot be found
BUILTIN_SOURCE_EXAMPLES = ("rest_api", "sql_database", "filesystem")

KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class SourceDefinition:
    """One entry of `sources`.

    `config` contains the entry's keys other than `type` and `with_args`. `line` is the line of the
    entry's name and `lines` maps keys inside the entry (`type`, `with_args.rows`) to their lines.
    """

    name: str
    type: str
    with_args: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int | None:
        """Return the line of `key` inside the entry, or the entry's line if the key is absent."""
        return self.lines.get(key, self.line)


@dataclass(frozen=True)
class DestinationDefinition:
    """One entry of `destinations`. `config` contains the entry's keys other than `type`."""

    name: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int | None:
        """Return the line of `key` inside the entry, or the entry's line if the key is absent."""
        return self.lines.get(key, self.line)


@dataclass(frozen=True)
class PipelineDefinition:
    """One entry of `pipelines`. `run_config` is the raw mapping, validated by `Project.run_config`."""

    name: str
    destination: str
    source: str | None = None
    dataset_name: str | None = None
    progress: str | None = None
    run_config: Mapping[str, Any] | None = None
    line: int | None = None
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int | None:
        """Return the line of `key` inside the entry, or the entry's line if the key is absent."""
        return self.lines.get(key, self.line)


# --- reading the YAML file -----------------------------------------------------------------------


class FileLines:
    """Line numbers of the keys of one YAML file, and errors that point at them."""

    def __init__(self, source: str, lines: dict[KeyPath, int]) -> None:
        self.source = source
        self._lines = lines

    def line_of(self, path: Sequence[str]) -> int | None:
        """Return the line of `path`, or of its closest parent that exists in the file."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return self._lines.get(())

    def lines_under(self, path: Sequence[str]) -> dict[str, int]:
        """Return the lines of all keys below `path`, named by their dotted path relative to it."""
        prefix = tuple(path)
        return {
            ".".join(key[len(prefix) :]): line
            for key, line in self._lines.items()
            if len(key) > len(prefix) and key[: len(prefix)] == prefix
        }

    def error(
        self,
        message: str,
        path: Sequence[str],
        *,
        value: Any = None,
        allowed: Sequence[Any] | None = None,
    ) -> ConfigError:
        """Build a `ConfigError` for the key at `path` (empty for the whole file)."""
        return ConfigError(
            message,
            source=self.source,
            line=self.line_of(path),
            key=".".join(path) or None,
            value=value,
            allowed=allowed,
        )


def _read_text(path: Path, display_path: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "the project file does not exist. Pass the path of an existing dlt.yml.",
            source=display_path,
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            "the path is a folder, not a project file. Pass the path of the dlt.yml inside it.",
            source=display_path,
        ) from None
    except UnicodeDecodeError as ex:
        raise ConfigError(
            f"the project file is not UTF-8 text ({ex.reason} at byte {ex.start}).",
            source=display_path,
        ) from ex
    except OSError as ex:
        raise ConfigError(
            f"the project file cannot be read: {ex.strerror}.", source=display_path
        ) from ex


def _yaml_error(ex: yaml.YAMLError, text: str, display_path: str) -> ConfigError:
    # the messages leave out PyYAML's snippet of the document, which may show a secret
    if isinstance(ex, yaml.MarkedYAMLError) and ex.problem_mark is not None:
        mark = ex.problem_mark
        context = f" ({ex.context})" if ex.context else ""
        # at the end of the file the problem mark is past the last line: an unclosed quote or
        # bracket is better found where it opened, which is the context mark
        last_line = text.count("\n") - (1 if text.endswith("\n") else 0)
        if mark.line > last_line and ex.context_mark is not None:
            mark = ex.context_mark
            context += f", opened at line {mark.line + 1}"
        return ConfigError(
            f"invalid YAML at column {mark.column + 1}: {ex.problem}{context}.",
            source=display_path,
            line=mark.line + 1,
            value=ex.problem,
        )
    if isinstance(ex, yaml.reader.ReaderError):
        line = text.count("\n", 0, ex.position) + 1
        return ConfigError(
            f"invalid YAML: character #x{ex.character:04x} is not allowed in a YAML file.",
            source=display_path,
            line=line,
        )
    return ConfigError(f"invalid YAML: {ex}.", source=display_path)


def _parse_yaml(text: str, display_path: str) -> tuple[Any, FileLines]:
    """Parse `text` into Python data and the line of every key, using the node tree of PyYAML."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as ex:
        raise _yaml_error(ex, text, display_path) from ex
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as ex:
        raise _yaml_error(ex, text, display_path) from ex
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _index_lines(node, (), lines, display_path)
    return data, FileLines(display_path, lines)


def _index_lines(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], display_path: str
) -> None:
    """Record the 1-based line of every mapping key and list item below `node` in `lines`."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            if key in seen and key != "<<":
                raise ConfigError(
                    f"duplicate key {key!r}. Each key may appear once in a mapping.",
                    source=display_path,
                    line=key_node.start_mark.line + 1,
                    key=".".join(path + (key,)),
                    value=key,
                )
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _index_lines(value_node, path + (key,), lines, display_path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, path + (str(index),), lines, display_path)


# --- validating the document ---------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_top_level(data: Any, where: FileLines) -> Mapping[str, Any]:
    if data is None:
        raise where.error("the project file is empty. Define at least one pipeline.", ["pipelines"])
    if not isinstance(data, Mapping):
        raise where.error(
            f"the top level must be a mapping with the keys {', '.join(TOP_LEVEL_KEYS)},"
            f" got a {_type_name(data)}.",
            [],
            allowed=TOP_LEVEL_KEYS,
        )
    for key in data:
        if key == "profiles":
            raise where.error(
                "runner-fsm applies no profiles. Move the settings of the profile you run into"
                " .dlt/config.toml and .dlt/secrets.toml, then remove `profiles`.",
                ["profiles"],
                value=key,
                allowed=TOP_LEVEL_KEYS + IGNORED_TOP_LEVEL_KEYS,
            )
        if key not in TOP_LEVEL_KEYS and key not in IGNORED_TOP_LEVEL_KEYS:
            raise where.error(
                f"unknown top-level key {key!r}.",
                [str(key)],
                value=key,
                allowed=TOP_LEVEL_KEYS + IGNORED_TOP_LEVEL_KEYS,
            )
    if not data.get("pipelines"):
        raise where.error(
            "the project file defines no pipeline. Add a `pipelines` section with at least one"
            " pipeline.",
            ["pipelines"],
        )
    return data


def _entries(data: Mapping[str, Any], section: str, where: FileLines) -> dict[str, Any]:
    """Return the entries of the top-level `section` by name, checking that names are strings."""
    entries = data.get(section)
    if entries is None:
        return {}
    if not isinstance(entries, Mapping):
        raise where.error(
            f"`{section}` must be a mapping of names to entries, got a {_type_name(entries)}.",
            [section],
        )
    for name in entries:
        if not isinstance(name, str) or not name:
            raise where.error(
                f"the names in `{section}` must be non-empty strings, got {name!r}.",
                [section, str(name)],
                value=name,
            )
    return dict(entries)


def _entry_mapping(entry: Any, path: KeyPath, where: FileLines) -> Mapping[str, Any]:
    if entry is None:
        return {}
    if not isinstance(entry, Mapping):
        raise where.error(
            f"an entry must be a mapping of keys such as `type`, got a {_type_name(entry)}.", path
        )
    for key in entry:
        if not isinstance(key, str):
            raise where.error(
                f"the keys of an entry must be strings, got {key!r}.",
                path + (str(key),),
                value=key,
            )
    return entry


def _entry_type(entry: Mapping[str, Any], name: str, path: KeyPath, where: FileLines) -> str:
    kind = entry.get("type", name)
    if not isinstance(kind, str) or not kind.strip():
        raise where.error(
            f"`type` must be a non-empty string, got {kind!r}.", path + ("type",), value=kind
        )
    return kind.strip()


def _reject_misspelled_keys(
    mapping: Mapping[str, Any], known: Sequence[str], path: KeyPath, where: FileLines
) -> None:
    """Reject a configuration key that looks like a misspelling of a key of the entry itself.

    Other keys of an entry are configuration values, so a typo such as `with_arg` would otherwise
    pass silently as a value that nothing reads.
    """
    for key in mapping:
        if key in known or not isinstance(key, str):
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        if close:
            raise where.error(
                f"{key!r} looks like a misspelling of `{close[0]}`. Every other key of the entry"
                " is passed on as a configuration value, so a misspelled key would be ignored."
                f" Rename it to `{close[0]}`.",
                path + (key,),
                value=key,
                allowed=known,
            )


def _parse_source(name: str, entry: Any, where: FileLines) -> SourceDefinition:
    path = ("sources", name)
    mapping = _entry_mapping(entry, path, where)
    _reject_misspelled_keys(mapping, SOURCE_KEYS, path, where)
    with_args = mapping.get("with_args")
    if with_args is None:
        with_args = {}
    if not isinstance(with_args, Mapping):
        # the value itself is left out of the message, because arguments may contain secrets
        raise where.error(
            f"`with_args` must be a mapping of argument names to values, got a"
            f" {_type_name(with_args)}. Write for example `with_args: {{rows: 10}}`.",
            path + ("with_args",),
        )
    for argument in with_args:
        if not isinstance(argument, str) or not argument.isidentifier():
            raise where.error(
                f"{argument!r} is not a valid argument name.",
                path + ("with_args", str(argument)),
                value=argument,
            )
    return SourceDefinition(
        name=name,
        type=_entry_type(mapping, name, path, where),
        with_args=dict(with_args),
        config={k: v for k, v in mapping.items() if k not in SOURCE_KEYS},
        line=where.line_of(path),
        lines=where.lines_under(path),
    )


def _parse_destination(name: str, entry: Any, where: FileLines) -> DestinationDefinition:
    path = ("destinations", name)
    mapping = _entry_mapping(entry, path, where)
    _reject_misspelled_keys(mapping, ("type",), path, where)
    return DestinationDefinition(
        name=name,
        type=_entry_type(mapping, name, path, where),
        config={k: v for k, v in mapping.items() if k != "type"},
        line=where.line_of(path),
        lines=where.lines_under(path),
    )


def _check_reference(
    value: Any, key: str, path: KeyPath, defined: Mapping[str, Any], where: FileLines
) -> str:
    """Check that `value` names an entry of the top-level section `key + "s"`."""
    section = f"{key}s"
    if value is None:
        raise where.error(
            f"the pipeline has no `{key}`. Add `{key}: <name>` naming an entry of `{section}`.",
            path,
            allowed=list(defined),
        )
    if not isinstance(value, str) or value not in defined:
        raise where.error(
            f"{value!r} is not defined in `{section}`.", path, value=value, allowed=list(defined)
        )
    return value


def _parse_pipeline(
    name: str,
    entry: Any,
    sources: Mapping[str, SourceDefinition],
    destinations: Mapping[str, DestinationDefinition],
    where: FileLines,
) -> PipelineDefinition:
    path = ("pipelines", name)
    try:
        FileStorage.validate_file_name_component(name)
    except ValueError as ex:
        raise where.error(
            f"the pipeline name {name!r} cannot be used as a folder name: {ex}.", path, value=name
        ) from ex
    mapping = _entry_mapping(entry, path, where)
    for key in mapping:
        if key not in PIPELINE_KEYS:
            raise where.error(
                f"unknown key {key!r} in a pipeline.",
                path + (key,),
                value=key,
                allowed=PIPELINE_KEYS,
            )
    destination = _check_reference(
        mapping.get("destination"), "destination", path + ("destination",), destinations, where
    )
    source = None
    if "source" in mapping:
        source = _check_reference(mapping["source"], "source", path + ("source",), sources, where)
    dataset_name = mapping.get("dataset_name")
    if dataset_name is not None and (not isinstance(dataset_name, str) or not dataset_name):
        raise where.error(
            f"`dataset_name` must be a non-empty string, got {dataset_name!r}.",
            path + ("dataset_name",),
            value=dataset_name,
        )
    progress = mapping.get("progress")
    if progress is not None and (not isinstance(progress, str) or not progress):
        raise where.error(
            f"`progress` must be the name of one of dlt's collectors or a dotted path to a"
            f" collector class or object, got {progress!r}.",
            path + ("progress",),
            value=progress,
            allowed=[*DLT_COLLECTORS, "<module>.<Collector>"],
        )
    return PipelineDefinition(
        name=name,
        destination=destination,
        source=source,
        dataset_name=dataset_name,
        progress=progress,
        run_config=mapping.get("run_config"),
        line=where.line_of(path),
        lines=where.lines_under(path),
    )


@dataclass(frozen=True)
class ProjectFile:
    """The checked entries of a project file and the lines of its keys."""

    sources: dict[str, SourceDefinition]
    destinations: dict[str, DestinationDefinition]
    pipelines: dict[str, PipelineDefinition]
    lines: FileLines


def parse_project_file(file_path: Path) -> ProjectFile:
    """Read and check the structure of the project file at `file_path`.

    Raises `ConfigError` naming the file, the line and the key of the first problem.
    """
    display_path = str(file_path)
    text = _read_text(file_path, display_path)
    data, where = _parse_yaml(text, display_path)
    document = _check_top_level(data, where)
    sources = {
        name: _parse_source(name, entry, where)
        for name, entry in _entries(document, "sources", where).items()
    }
    destinations = {
        name: _parse_destination(name, entry, where)
        for name, entry in _entries(document, "destinations", where).items()
    }
    pipelines = {
        name: _parse_pipeline(name, entry, sources, destinations, where)
        for name, entry in _entries(document, "pipelines", where).items()
    }
    return ProjectFile(sources, destinations, pipelines, where)

