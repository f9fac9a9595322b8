"""Load a dlt project file (`dlt.yml`) and build the dlt pipelines and sources it defines.

The file has three top-level sections, in the layout of dltHub projects::

    sources:
      flights:
        type: sources.flights.flights_source  # dotted path, relative to the project folder
        with_args: {rows: 10}                 # keyword arguments of the source function
        api_url: https://example.com          # any other key is a configuration value
    destinations:
      warehouse:
        type: duckdb                          # a dlt destination type
    pipelines:
      flights:
        source: flights
        destination: warehouse
        dataset_name: nyc_flights
        run_config: {retry_policy: {type: backoff, max_attempts: 5}}

Top-level keys other than `sources`, `destinations` and `pipelines` are errors, with one
exception: `project` is accepted and not read, so that the metadata of a dltHub project file does
not stop it from loading. `profiles` is rejected, because runner-fsm applies no profile and
silently running with the settings of the wrong profile is worse than failing.

A source or destination entry without `type` uses its entry name as the type, so
`destinations: {duckdb: {}}` is a duckdb destination. A pipeline needs `destination`. Its `source`
is needed only to run it: a pipeline without one can still receive traces
(`store_trace_info: <pipeline name>`).

Configuration values. The keys of a source entry other than `type` and `with_args`, and the keys
of a destination entry other than `type`, are configuration values. They reach the source or
destination through dlt's configuration system, so a source argument declared as
`dlt.config.value` or `dlt.secrets.value` receives them. A source is named after its entry, so a
source entry `gh` of type `sources.github.github_source` reads its values from
`sources.github.gh.<key>`. A standalone dlt resource reads them from
`sources.<module>.<resource name>.<key>`, and a plain function takes no configuration values. A
destination entry `warehouse` reads its values from `destination.warehouse.<key>`. dlt queries its
providers in this order, and the first that contains the value wins:

1. environment variables (`SOURCES__GITHUB__GH__API_KEY`, `SOURCES__GH__API_KEY`,
   `DESTINATION__WAREHOUSE__CREDENTIALS`, ...),
2. `.dlt/secrets.toml` beside the project file, merged over the one in dlt's global folder,
3. `.dlt/config.toml` beside the project file, merged over the one in dlt's global folder,
4. the project file itself,
5. the secret vaults that dlt's `[providers]` configuration enables (Airflow, Google, AWS).

Within one provider dlt tries the most specific key first (`sources.github.gh.api_key`, then
`sources.github.api_key`, `sources.gh.api_key`, `sources.api_key`, `api_key`). Destination values
can also be written with the pipeline name as the first section
(`<pipeline>.destination.warehouse.credentials`), which dlt looks up first while the pipeline
loads.

Data folder. `<project folder>/_data` contains `pipelines/` (the working folders of the pipelines),
`journal/` (the run journals) and `local/` (the files of local destinations: a duckdb destination
with no credentials configured anywhere writes `local/<pipeline name>.duckdb`, and relative paths
of local destinations such as `filesystem` are resolved in `local/`).

dlt's run context is process-wide. `make_pipeline` and `make_source` activate the project's run
context (settings folder `<project folder>/.dlt`, the project file as a configuration provider,
`_data/local` as the folder of local files), and it stays active after they return, because dlt
resolves destination credentials only when the pipeline loads. The working directory of the
process is not changed.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.configuration.providers.doc import BaseDocProvider
from dlt.common.configuration.providers.provider import ConfigProvider
from dlt.common.configuration.resolve import resolve_single_provider_value
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.destination.reference import Destination, DestinationReference
from dlt.common.runtime.collector import NULL_COLLECTOR
from dlt.common.runtime.collector_base import Collector
from dlt.common.runtime.run_context import DOT_DLT, RunContext
from dlt.extract import DltResource, DltSource, SourceFactory, SourceReference
from dlt.extract.exceptions import UnknownSourceReference

from runner_fsm._config_layers import (
    describe_place,
    env_layer,
    leaf_keys,
    merge_layers,
    section_path,
    toml_layer,
    unread_settings,
    yaml_layer,
)
from runner_fsm._project_file import (
    BUILTIN_SOURCE_EXAMPLES,
    DATA_FOLDER,
    DLT_COLLECTORS,
    PIPELINE_KEYS,
    TOP_LEVEL_KEYS,
    DestinationDefinition,
    FileLines,
    PipelineDefinition,
    SourceDefinition,
    parse_project_file,
)
from runner_fsm.exceptions import ConfigError
from runner_fsm.logs import get_logger
from runner_fsm.run_config import RunConfig, parse_run_config

__all__ = [
    "DATA_FOLDER",
    "PIPELINE_KEYS",
    "TOP_LEVEL_KEYS",
    "DestinationDefinition",
    "PipelineDefinition",
    "Project",
    "ProjectFileProvider",
    "ProjectRunContext",
    "SourceDefinition",
    "load_project",
]

# --- dlt configuration: the project file as a provider, and the project's run context -----------


class ProjectFileProvider(BaseDocProvider):
    """A dlt configuration provider that returns the configuration values of a project file.

    The document has the layout of dlt's TOML files: `sources.<section>.<name>.<key>` and
    `destination.<name>.<key>`. The provider accepts secrets, so that a source argument declared
    as `dlt.secrets.value` can be set in the project file.
    """

    def __init__(self, path: Path) -> None:
        super().__init__({})
        self._path = path

    @property
    def name(self) -> str:
        return f"project file {self._path.name}"

    @property
    def supports_secrets(self) -> bool:
        return True

    @property
    def locations(self) -> Sequence[str]:
        return [str(self._path)]

    def set_section(self, path: Sequence[str], values: Mapping[str, Any]) -> None:
        """Replace the values under the section `path` (for example `("destination", "dw")`)."""
        node = self._config_doc
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[path[-1]] = dict(values)


class ProjectRunContext(RunContext):
    """dlt's run context for a project: settings in `<root>/.dlt`, local files in `_data/local`.

    The provider of the project file comes after dlt's environment and TOML providers. The
    environment variables `DLT_PROJECT_DIR`, `DLT_DATA_DIR` and `DLT_LOCAL_DIR` are not read,
    because the project file's folder fixes these places.
    """

    def __init__(self, root: Path, data_dir: Path, file_provider: ProjectFileProvider) -> None:
        super().__init__(str(root))
        self._project_data_dir = str(data_dir)
        self._file_provider = file_provider

    @property
    def run_dir(self) -> str:
        return self._init_run_dir

    @property
    def settings_dir(self) -> str:
        return os.path.join(self._init_run_dir, DOT_DLT)

    @property
    def local_dir(self) -> str:
        return os.path.join(self._project_data_dir, "local")

    @property
    def data_dir(self) -> str:
        return self._project_data_dir

    @property
    def module(self) -> None:
        # dlt would import the project folder's name as a module to find sources in it
        return None

    def initial_providers(self) -> list[ConfigProvider]:
        return [*super().initial_providers(), self._file_provider]


# --- the project ---------------------------------------------------------------------------------


class Project:
    """A loaded and validated project file, and the factory of its dlt pipelines and sources."""

    def __init__(
        self,
        path: Path,
        sources: dict[str, SourceDefinition],
        destinations: dict[str, DestinationDefinition],
        pipelines: dict[str, PipelineDefinition],
        lines: FileLines,
    ) -> None:
        self.path = path
        self.root = path.parent
        self.data_dir = self.root / DATA_FOLDER
        self.sources = sources
        self.destinations = destinations
        self.pipelines = pipelines
        self._lines = lines
        self._file_provider = ProjectFileProvider(path)
        for destination in destinations.values():
            self._file_provider.set_section(("destination", destination.name), destination.config)
        self._run_context = ProjectRunContext(self.root, self.data_dir, self._file_provider)

    def __repr__(self) -> str:
        return f"Project({str(self.path)!r}, pipelines={sorted(self.pipelines)})"

    @property
    def pipelines_dir(self) -> Path:
        """The folder of the pipelines' working folders."""
        return self.data_dir / "pipelines"

    @property
    def journal_dir(self) -> Path:
        """The folder of the run journals."""
        return self.data_dir / "journal"

    @property
    def local_dir(self) -> Path:
        """The folder of the files of local destinations, such as duckdb databases."""
        return self.data_dir / "local"

    def pipeline_definition(self, name: str) -> PipelineDefinition:
        """Return the pipeline `name`, or raise `ConfigError` listing the pipelines of the file."""
        definition = self.pipelines.get(name)
        if definition is None:
            raise self._lines.error(
                f"pipeline {name!r} is not defined in the project file.",
                ["pipelines"],
                value=name,
                allowed=sorted(self.pipelines),
            )
        return definition

    def run_config(self, name: str, environ: Mapping[str, str] | None = None) -> RunConfig:
        """Validate the `run_config` of pipeline `name` and return it.

        The keys come from the environment (`environ`, by default `os.environ`), the
        `config.toml` files of dlt and the project file, in the precedence that
        `runner_fsm._config_layers` describes. `store_trace_info` given as a string must name
        another pipeline of the file.
        """
        definition = self.pipeline_definition(name)
        path = section_path(name)
        lines = self._lines.lines_under(path)
        own_line = self._lines.line_of(path)
        if own_line is not None:
            lines[""] = own_line
        layers = [yaml_layer(definition.run_config, self._lines.source, lines, name)]
        for toml_path in self.config_toml_paths():
            layer = toml_layer(toml_path, name)
            if layer is not None:
                layers.append(layer)
        layers.append(env_layer(name, environ))
        data, place_of = merge_layers(layers)
        config = parse_run_config(data, place_of=place_of)
        config.origins = {key: describe_place(place_of(key)) for key in leaf_keys(data)}
        target = config.store_trace_info
        if isinstance(target, str) and (target == name or target not in self.pipelines):
            others = sorted(p for p in self.pipelines if p != name)
            place = place_of("store_trace_info")
            raise ConfigError(
                f"`store_trace_info` must be true, false or the name of another pipeline of the"
                f" project file, got {target!r}.",
                source=place.source,
                line=place.line,
                key=place.key,
                value=target,
                allowed=[True, False, *others],
            )
        return config

    def config_toml_paths(self) -> list[Path]:
        """Return the `config.toml` files that dlt reads, lowest precedence (dlt's global) first."""
        settings = Path(self._run_context.settings_dir) / "config.toml"
        global_file = Path(self._run_context.global_dir) / "config.toml"
        return [global_file, settings] if global_file != settings else [settings]

    def activate(self) -> None:
        """Make the project dlt's active run context and put its folder on `sys.path`.

        Does nothing if the project is already active. See the module documentation for what
        the run context sets.

        NOTE: dlt has one run context per process. With two projects in one process, a pipeline
        loads with the settings of the project that was activated last.
        """
        _put_first_on_sys_path(self.root)
        plugged = Container()[PluggableRunContext]
        if plugged.context is not self._run_context:
            plugged.reload(self._run_context)

    def make_pipeline(self, name: str, *, pipelines_dir: Path | None = None) -> dlt.Pipeline:
        """Create (or attach to) the dlt pipeline `name` with its destination and dataset.

        The working folder goes to `pipelines_dir`, by default `_data/pipelines`.
        """
        definition = self.pipeline_definition(name)
        self.activate()
        destination = self._make_destination(definition)
        folder = Path(pipelines_dir) if pipelines_dir is not None else self.pipelines_dir
        # dlt names the dataset `<pipeline name>_dataset` when `dataset_name` is None
        progress = self.make_collector(name)
        return dlt.pipeline(
            pipeline_name=name,
            destination=destination,
            dataset_name=definition.dataset_name,  # type: ignore[arg-type]
            pipelines_dir=str(folder),
            progress=progress if progress is not None else NULL_COLLECTOR,
        )

    def make_collector(self, name: str) -> Collector | None:
        """Build the progress collector that the `progress` key of pipeline `name` names.

        `progress` is the name of one of dlt's collectors (`log`, `tqdm`, `enlighten`,
        `alive_progress`) or a dotted path, relative to the project folder, to a `Collector`
        subclass (created with no arguments) or object. Returns None when the key is absent.
        """
        definition = self.pipeline_definition(name)
        ref = definition.progress
        if ref is None:
            return None
        path = ["pipelines", name, "progress"]
        allowed = [*DLT_COLLECTORS, "<module>.<Collector>"]

        def fail(message: str) -> ConfigError:
            return self._lines.error(message, path, value=ref, allowed=allowed)

        if "." not in ref:
            if ref not in DLT_COLLECTORS:
                raise fail(f"{ref!r} is not one of dlt's collectors nor a dotted path.")
            target: Any = getattr(dlt.progress, ref)
        else:
            self.activate()
            module_name, _, attribute = ref.rpartition(".")
            module = self._import_project_module(module_name, fail)
            if module is None:
                raise fail(
                    f"module `{module_name}` is not found in the project folder {self.root} or"
                    " on the Python path."
                )
            if not hasattr(module, attribute):
                raise fail(f"module `{module_name}` has no attribute `{attribute}`.")
            target = getattr(module, attribute)
        if isinstance(target, Collector):
            return target
        if not (isinstance(target, type) and issubclass(target, Collector)):
            raise fail(
                f"{ref!r} is a {type(target).__name__}, not a dlt Collector. Subclass"
                " `runner_fsm.RunnerCallbacks` (or dlt's `Collector`) and name the class."
            )
        try:
            collector: Collector = target()
        except Exception as ex:  # noqa: BLE001 - any error of the user's class is reported
            raise fail(
                f"creating the collector failed: {type(ex).__name__}: {ex}. The class must be"
                " callable with no arguments."
            ) from ex
        return collector

    def make_source(
        self, name: str, *, limit: int | None = None, resources: list[str] | None = None
    ) -> Any:
        """Build the source of pipeline `name`, as a `DltSource` or `DltResource` for `run`.

        `resources` selects resources of the source by name. `limit` caps the number of items
        that each resource yields, through dlt's `add_limit`. A page, a list or an Arrow batch
        yielded at once counts as one item. Each call builds a new source, so that a retry can
        extract again.
        """
        _check_limit(limit)
        definition = self.pipeline_definition(name)
        if definition.source is None:
            raise self._lines.error(
                "the pipeline has no `source`, so it cannot be run. Add `source: <name>` naming an"
                " entry of `sources`.",
                ["pipelines", name, "source"],
                allowed=sorted(self.sources),
            )
        source_definition = self.sources[definition.source]
        self.activate()
        target = self._import_source_type(source_definition)
        data = self._call_source(source_definition, target)
        data = _select_resources(data, resources, source_definition)
        if limit is not None:
            data = data.add_limit(limit)
        return data

    # --- sources ---

    def _source_error(
        self, source: SourceDefinition, key: str, message: str, **kwargs: Any
    ) -> ConfigError:
        path = ["sources", source.name] + (key.split(".") if key else [])
        return self._lines.error(message, path, **kwargs)

    def _import_source_type(self, source: SourceDefinition) -> Any:
        """Import the object that the source's `type` names."""
        ref = source.type
        if "." in ref:
            module_name, _, attribute = ref.rpartition(".")
            module = self._import_project_module(
                module_name,
                lambda message: self._source_error(source, "type", message, value=ref),
            )
            if module is not None:
                if not hasattr(module, attribute):
                    raise self._source_error(
                        source,
                        "type",
                        f"module `{module_name}` has no attribute `{attribute}`.",
                        value=ref,
                        allowed=_source_candidates(module),
                    )
                return getattr(module, attribute)
            if ref.count(".") >= 2:
                raise self._source_error(
                    source,
                    "type",
                    f"module `{module_name}` of source type {ref!r} is not found in the project"
                    f" folder {self.root} or on the Python path.",
                    value=ref,
                )
        return self._find_dlt_source(source)

    def _import_project_module(
        self, module_name: str, fail: Callable[[str], ConfigError]
    ) -> Any:
        """Import `module_name`, or return None if neither it nor a parent package exists.

        An error raised while importing the module is reported by the `ConfigError` that
        `fail(message)` builds.
        """
        _forget_modules_of_other_folders(module_name, self.root)
        importlib.invalidate_caches()
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as ex:
            if ex.name is not None and (module_name + ".").startswith(ex.name + "."):
                return None
            failure: Exception = ex
        except Exception as ex:  # noqa: BLE001 - any error of the user's module is reported
            failure = ex
        raise fail(
            f"importing module `{module_name}` failed: {type(failure).__name__}: {failure}."
        ) from failure

    def _find_dlt_source(self, source: SourceDefinition) -> Any:
        """Find a source by dlt's short references, such as `rest_api` or `sql_database`."""
        try:
            return SourceReference.find(source.type)
        except UnknownSourceReference as ex:
            raise self._source_error(
                source,
                "type",
                f"source type {source.type!r} is not found. {_describe_import_traces(ex)} Use a"
                " dotted path to a source function, relative to the project folder"
                " (`sources.<module>.<function>`), or a source that dlt ships, such as"
                f" {', '.join(BUILTIN_SOURCE_EXAMPLES)}.",
                value=source.type,
            ) from ex

    def _call_source(self, source: SourceDefinition, target: Any) -> Any:
        """Call the source factory, resource or function that `type` names with `with_args`."""
        if isinstance(target, SourceFactory):
            factory = target.clone(name=source.name)
            self._file_provider.set_section(
                ("sources", factory.ref.section, source.name), source.config
            )
            return self._call_with_config(source, factory, factory.ref.section, source.name)
        if isinstance(target, DltResource):
            self._file_provider.set_section(("sources", target.section, target.name), source.config)
            if target._args_bound:
                # NOTE: a resource object defined at module level is returned itself, so every call
                # shares it, and `add_limit` or a consumed generator affects later calls
                self._reject_with_args(source, "a resource that is already bound to arguments")
                return target
            return self._call_with_config(source, target, target.section, target.name)
        if isinstance(target, DltSource):
            self._reject_with_args(source, "a source object, not a function")
            return target
        if callable(target):
            self._reject_config(source)
            data = self._call_with_config(source, target, source.name, source.name)
            if isinstance(data, (DltSource, DltResource)):
                return data
            return dlt.resource(data, name=source.name)
        raise self._source_error(
            source,
            "type",
            f"{source.type!r} is a {type(target).__name__}, not a dlt source, resource or"
            " function.",
            value=source.type,
        )

    def _reject_config(self, source: SourceDefinition) -> None:
        """Raise for configuration values given to a plain function, which dlt cannot inject."""
        if source.config:
            key = next(iter(source.config))
            raise self._source_error(
                source,
                key,
                f"{source.type!r} is a plain function, so dlt passes it no configuration values."
                " Pass its arguments in `with_args`, or decorate it with `@dlt.source` or"
                " `@dlt.resource`.",
                value=key,
            )

    def _reject_with_args(self, source: SourceDefinition, description: str) -> None:
        if source.with_args:
            raise self._source_error(
                source,
                "with_args",
                f"{source.type!r} is {description}, so it takes no `with_args`. Remove"
                " `with_args`.",
                value=sorted(source.with_args),
            )

    def _call_with_config(
        self, source: SourceDefinition, function: Callable[..., Any], section: str, name: str
    ) -> Any:
        unknown = _unknown_argument(function, source.with_args)
        if unknown is not None:
            argument, accepted = unknown
            raise self._source_error(
                source,
                f"with_args.{argument}",
                f"{source.type!r} takes no argument {argument!r}.",
                value=argument,
                allowed=accepted,
            )
        try:
            return function(**source.with_args)
        except ConfigFieldMissingException as ex:
            raise self._missing_config_error(source, ex, section, name) from ex

    def _missing_config_error(
        self, source: SourceDefinition, ex: ConfigFieldMissingException, section: str, name: str
    ) -> ConfigError:
        fields = ", ".join(f"`{f}`" for f in ex.fields)
        example = "__".join(["SOURCES", section, name, ex.fields[0]]).upper()
        settings = Path(self._run_context.settings_dir)
        return self._source_error(
            source,
            "",
            f"source {source.name!r} is missing configuration values: {fields}. Set them as keys"
            f" of this entry, in the section [sources.{section}.{name}] of"
            f" {settings / 'secrets.toml'} or {settings / 'config.toml'}, or as environment"
            f" variables such as {example}.",
            value=list(ex.fields),
        )

    # --- destinations ---

    def _make_destination(self, pipeline: PipelineDefinition) -> Destination[Any, Any]:
        definition = self.destinations[pipeline.destination]
        factory = self._find_destination_factory(definition)
        arguments: dict[str, Any] = {"destination_name": definition.name}
        factory_class = DestinationReference.ensure_factory(factory)
        configured = _configured_credentials(definition.name, pipeline.name)
        if isinstance(configured, str) and _is_relative_path(configured):
            # dlt resolves a relative path of a local destination, such as
            # `credentials: orders.duckdb`, in the folder of local files, and expects it to exist
            self.local_dir.mkdir(parents=True, exist_ok=True)
        if issubclass(factory_class, dlt.destinations.duckdb) and configured is None:
            self.local_dir.mkdir(parents=True, exist_ok=True)
            arguments["credentials"] = str(self.local_dir / f"{pipeline.name}.duckdb")
        destination: Destination[Any, Any] = factory(**arguments)
        return destination

    def _find_destination_factory(self, definition: DestinationDefinition) -> Any:
        try:
            return DestinationReference.find(definition.type)
        except UnknownDestinationModule as ex:
            raise self._lines.error(
                f"destination type {definition.type!r} is not known to dlt. Use one of dlt's"
                " destination types or a dotted path to a destination factory.",
                ["destinations", definition.name, "type"],
                value=definition.type,
                allowed=_builtin_destination_types(),
            ) from ex


# --- helpers -------------------------------------------------------------------------------------


def _put_first_on_sys_path(folder: Path) -> None:
    """Put `folder` first on `sys.path`, without adding it twice."""
    entry = str(folder)
    if sys.path and sys.path[0] == entry:
        return
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def _module_is_in_folder(module: Any, folder: Path) -> bool:
    places = [getattr(module, "__file__", None), *list(getattr(module, "__path__", None) or [])]
    return any(place and Path(place).is_relative_to(folder) for place in places)


def _folder_has_module(folder: Path, parts: Sequence[str]) -> bool:
    package = folder.joinpath(*parts)
    return package.is_dir() or package.with_name(parts[-1] + ".py").is_file()


def _forget_modules_of_other_folders(module_name: str, folder: Path) -> None:
    """Drop imported modules of `module_name`'s package that `folder` also contains.

    Two projects loaded in one process may both have a `sources` package. Python caches the first
    one in `sys.modules`, so the second project's modules are dropped from the cache before they
    are imported. Packages that `folder` does not contain (such as `dlt`) are never dropped.
    """
    parts = module_name.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        module = sys.modules.get(name)
        if module is None or _module_is_in_folder(module, folder):
            continue
        if not _folder_has_module(folder, parts[:depth]):
            return
        for cached in [n for n in sys.modules if n == name or n.startswith(name + ".")]:
            del sys.modules[cached]
        return


def _source_candidates(module: Any) -> list[str]:
    """Return the names of the dlt sources and resources defined in `module`."""
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and isinstance(value, (SourceFactory, DltResource))
    )


def _describe_import_traces(ex: UnknownSourceReference) -> str:
    reasons = []
    for trace in ex.traces:
        reason: str = trace.reason
        if reason == "MissingDependencyException":
            reason = f"missing dependency: {trace.exc}"
        reasons.append(f"`{trace.module}.{trace.attr_name}`: {reason}")
    if not reasons:
        return ""
    return "Tried " + "; ".join(reasons) + "."


def _unknown_argument(
    function: Callable[..., Any], arguments: Mapping[str, Any]
) -> tuple[str, list[str]] | None:
    """Return an argument of `arguments` that `function` does not take, and those it takes."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    parameters = signature.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    accepted = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for argument in arguments:
        if argument not in accepted:
            return argument, accepted
    return None


def _select_resources(data: Any, names: list[str] | None, source: SourceDefinition) -> Any:
    if names is None:
        return data
    if isinstance(data, DltSource):
        available = list(data.resources.keys())
    else:
        available = [data.name]
    if not names:
        raise ConfigError(
            f"the list of resources is empty. Name at least one resource of source"
            f" {source.name!r}.",
            key="--resources",
            allowed=available,
        )
    for name in names:
        if name not in available:
            raise ConfigError(
                f"source {source.name!r} ({source.type}) has no resource {name!r}.",
                key="--resources",
                value=name,
                allowed=available,
            )
    if isinstance(data, DltSource):
        return data.with_resources(*names)
    return data


def _check_limit(limit: Any) -> None:
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(
            f"the limit must be a positive integer (a number of items per resource), got"
            f" {limit!r}.",
            key="--limit",
            value=limit,
        )


# dlt annotates the optional `pipeline_name` and `config_section` as `str` with a None default
_lookup: Callable[..., tuple[Any, Any]] = resolve_single_provider_value


def _is_relative_path(value: str) -> bool:
    """Return True if `value` is a relative file path, not an absolute path or a URL."""
    return bool(value) and "://" not in value and not os.path.isabs(os.path.expanduser(value))


def _configured_credentials(destination_name: str, pipeline_name: str) -> Any:
    """Return the credentials that a configuration provider contains for `destination_name`.

    Looks up the keys that dlt reads for a destination's credentials, both as one value
    (`destination.<name>.credentials`) and as the `database` field of the credentials, with and
    without the pipeline name as the first section. Returns None when no provider has them.
    """
    providers = Container()[PluggableRunContext].providers.providers
    sections = ("destination", destination_name)
    for provider in providers:
        if provider.is_empty:
            continue
        for pipeline in (pipeline_name, None):
            value, _ = _lookup(provider, "credentials", Any, pipeline, None, sections)
            if value is None:
                value, _ = _lookup(provider, "database", Any, pipeline, "credentials", sections)
            if value is not None:
                return value
    return None


def _builtin_destination_types() -> list[str]:
    prefix = "dlt.destinations."
    return sorted(
        ref[len(prefix) :]
        for ref in DestinationReference.DESTINATIONS
        if ref.startswith(prefix) and ref != prefix + "destination"
    )


def load_project(path: str | os.PathLike[str]) -> Project:
    """Parse and validate the project file at `path` and return the `Project` it defines.

    Checks the structure of every entry, the references between them and every `run_config`.
    Source types and destination types are imported and checked later, by `make_source` and
    `make_pipeline`, with the same kind of errors. Raises `ConfigError` naming the file, the line
    and the key.
    """
    file_path = Path(path).expanduser().absolute()
    parsed = parse_project_file(file_path)
    project = Project(file_path, parsed.sources, parsed.destinations, parsed.pipelines, parsed.lines)
    # a retry policy `type` may be a dotted path into the project folder
    _put_first_on_sys_path(project.root)
    for name in parsed.pipelines:
        project.run_config(name)
    unread = unread_settings(list(parsed.pipelines), project.config_toml_paths())
    if unread:
        get_logger().warning(
            "settings_not_read",
            settings=unread,
            hint="pipeline settings are read from PIPELINES__<PIPELINE>__RUN_CONFIG__<KEY> and"
            " [pipelines.<pipeline>.run_config], with <pipeline> a pipeline of the project file",
            pipelines=sorted(parsed.pipelines),
        )
    return project
