"""Tests of `run_config` read from environment variables, `config.toml` and the project file."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from runner_fsm._config_layers import (
    Layer,
    env_layer,
    merge_layers,
    parse_env_value,
    toml_layer,
    unread_settings,
    yaml_layer,
)
from runner_fsm.cli import EXIT_FAILED, EXIT_USAGE, main
from runner_fsm.exceptions import ConfigError
from runner_fsm.policies import BackoffRetry, FixedRetry
from runner_fsm.project import load_project
from tests.helpers import journal_records, transitions

PROJECT = """\
sources:
  broken:
    type: sources.flaky.broken_source
destinations:
  warehouse:
    type: duckdb
pipelines:
  {name}:
    source: broken
    destination: warehouse
    run_config:
      retry_policy:
        type: fixed
        max_attempts: 3
"""

SOURCE = '''
import dlt


@dlt.source
def broken_source():
    @dlt.resource
    def numbers():
        yield {"n": 0}
        raise RuntimeError("the numbers API is down")

    return numbers
'''


pytestmark = pytest.mark.usefixtures("restore_process_state")


@pytest.fixture
def name(unique_name: str) -> str:
    return unique_name.replace("__", "_")


@pytest.fixture
def project_file(tmp_path: Path, name: str) -> Path:
    root = tmp_path / "project"
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "__init__.py").write_text("")
    (root / "sources" / "flaky.py").write_text(SOURCE)
    (root / ".dlt").mkdir()
    path = root / "dlt.yml"
    path.write_text(PROJECT.format(name=name))
    return path


def env_name(pipeline: str, *keys: str) -> str:
    return "__".join(["PIPELINES", pipeline, "RUN_CONFIG", *keys]).upper()


def write_config_toml(project_file: Path, text: str) -> Path:
    path = project_file.parent / ".dlt" / "config.toml"
    path.write_text(textwrap.dedent(text))
    return path


# --- values of environment variables -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("true", True),
        ("false", False),
        ("backoff", "backoff"),
        ('["load", "extract"]', ["load", "extract"]),
        ('{"type": "fixed", "max_attempts": 2}', {"type": "fixed", "max_attempts": 2}),
        ('{type = "fixed", max_attempts = 2}', {"type": "fixed", "max_attempts": 2}),
        ("my_policies.Custom", "my_policies.Custom"),
        ("", ""),
    ],
)
def test_env_value_parsing(text: str, value: Any) -> None:
    assert parse_env_value(text) == value


def test_env_layer_reads_nested_keys() -> None:
    environ = {
        env_name("flights", "retry_policy", "max_attempts"): "4",
        env_name("flights", "store_trace_info"): "true",
        env_name("other", "store_trace_info"): "true",
        "PIPELINES__FLIGHTS__DATASET_NAME": "ignored",
    }

    layer = env_layer("flights", environ)

    assert layer.values == {"retry_policy": {"max_attempts": 4}, "store_trace_info": True}
    assert layer.place(("retry_policy", "max_attempts")).key == (
        "PIPELINES__FLIGHTS__RUN_CONFIG__RETRY_POLICY__MAX_ATTEMPTS"
    )


def test_env_key_beats_whole_section_variable() -> None:
    environ = {
        env_name("flights"): '{"store_trace_info": true, "run_from_clean_folder": true}',
        env_name("flights", "run_from_clean_folder"): "false",
    }

    layer = env_layer("flights", environ)

    assert layer.values == {"store_trace_info": True, "run_from_clean_folder": False}
    assert layer.place(("store_trace_info",)).key == "PIPELINES__FLIGHTS__RUN_CONFIG"


def test_env_section_must_be_table() -> None:
    with pytest.raises(ConfigError) as caught:
        env_layer("flights", {env_name("flights"): "true"})

    assert caught.value.key == "PIPELINES__FLIGHTS__RUN_CONFIG"
    assert "JSON object" in str(caught.value)


def test_env_name_with_empty_part() -> None:
    with pytest.raises(ConfigError) as caught:
        env_layer("flights", {"PIPELINES__FLIGHTS__RUN_CONFIG__RETRY_POLICY____TYPE": "fixed"})

    assert "exactly two underscores" in str(caught.value)


# --- combining the places ------------------------------------------------------------------------


def layer(values: Any, source: str) -> Layer:
    return yaml_layer(values, source, {}, "flights")


def test_higher_layer_wins_per_key() -> None:
    merged, place_of = merge_layers(
        [
            layer({"retry_policy": {"type": "backoff", "max_attempts": 5, "min": 1}}, "yml"),
            layer({"retry_policy": {"max_attempts": 7}, "store_trace_info": True}, "toml"),
            layer({"retry_policy": {"min": 2}}, "env"),
        ]
    )

    assert merged == {
        "retry_policy": {"type": "backoff", "max_attempts": 7, "min": 2},
        "store_trace_info": True,
    }
    assert place_of("retry_policy.type").source == "yml"
    assert place_of("retry_policy.max_attempts").source == "toml"
    assert place_of("retry_policy.min").source == "env"
    assert place_of("store_trace_info").source == "toml"


def test_other_policy_type_replaces_the_policy() -> None:
    merged, place_of = merge_layers(
        [
            layer({"retry_policy": {"type": "backoff", "multiplier": 3}}, "yml"),
            layer({"retry_policy": {"type": "fixed"}}, "env"),
        ]
    )

    assert merged == {"retry_policy": {"type": "fixed"}}
    assert place_of("retry_policy").source == "env"


def test_same_policy_type_merges() -> None:
    merged, _ = merge_layers(
        [
            layer({"retry_policy": {"type": "backoff", "multiplier": 3}}, "yml"),
            layer({"retry_policy": {"type": "backoff", "max": 20}}, "env"),
        ]
    )

    assert merged == {"retry_policy": {"type": "backoff", "multiplier": 3, "max": 20}}


def test_scalar_replaces_table() -> None:
    merged, place_of = merge_layers(
        [layer({"retry_policy": {"type": "backoff"}}, "yml"), layer({"retry_policy": None}, "env")]
    )

    assert merged == {"retry_policy": None}
    assert place_of("retry_policy").source == "env"


def test_non_mapping_layer_reported() -> None:
    merged, place_of = merge_layers([layer(["a"], "yml"), layer({"store_trace_info": True}, "env")])

    assert merged == ["a"]
    assert place_of("").source == "yml"


def test_no_values_anywhere() -> None:
    merged, _ = merge_layers([layer(None, "yml"), layer({}, "env")])

    assert merged == {}


# --- config.toml ---------------------------------------------------------------------------------


def test_toml_layer_lines(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            """\
            [runtime]
            log_level = "INFO"

            [pipelines.flights.run_config]
            store_trace_info = true
            retry_policy.type = "fixed"
            retry_policy.max_attempts = 4

            [pipelines.other.run_config]
            store_trace_info = false
            """
        )
    )

    found = toml_layer(path, "flights")

    assert found is not None
    assert found.values == {
        "store_trace_info": True,
        "retry_policy": {"type": "fixed", "max_attempts": 4},
    }
    assert found.place(("store_trace_info",)).line == 5
    assert found.place(("retry_policy", "type")).line == 6
    assert found.place(("retry_policy", "max_attempts")).line == 7
    assert found.place(("retry_policy", "max_attempts")).key == (
        "pipelines.flights.run_config.retry_policy.max_attempts"
    )
    assert toml_layer(path, "third") is None
    assert toml_layer(tmp_path / "missing.toml", "flights") is None


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[pipelines.flights.run_config\nstore_trace_info = true\n")

    with pytest.raises(ConfigError) as caught:
        toml_layer(path, "flights")

    assert caught.value.source == str(path)
    assert "not valid TOML" in str(caught.value)


# --- the project ---------------------------------------------------------------------------------


def test_project_without_other_places(project_file: Path, name: str) -> None:
    config = load_project(project_file).run_config(name, environ={})

    assert isinstance(config.retry_policy, FixedRetry)
    assert config.retry_policy.max_attempts == 3
    assert config.retry_pipeline_steps == ["load"]


def test_config_toml_overrides_project_file(project_file: Path, name: str) -> None:
    write_config_toml(
        project_file,
        f"""\
        [pipelines.{name}.run_config]
        retry_pipeline_steps = ["extract", "load"]

        [pipelines.{name}.run_config.retry_policy]
        max_attempts = 5
        """,
    )

    config = load_project(project_file).run_config(name, environ={})

    assert isinstance(config.retry_policy, FixedRetry)
    assert config.retry_policy.max_attempts == 5
    assert config.retry_pipeline_steps == ["extract", "load"]


def test_environment_overrides_config_toml(project_file: Path, name: str) -> None:
    write_config_toml(
        project_file,
        f"""\
        [pipelines.{name}.run_config.retry_policy]
        max_attempts = 5
        """,
    )
    environ = {
        env_name(name, "retry_policy", "max_attempts"): "2",
        env_name(name, "run_from_clean_folder"): "true",
    }

    config = load_project(project_file).run_config(name, environ=environ)

    assert isinstance(config.retry_policy, FixedRetry)
    assert config.retry_policy.max_attempts == 2
    assert config.run_from_clean_folder is True


def test_environment_changes_policy_type(project_file: Path, name: str) -> None:
    environ = {env_name(name, "retry_policy"): '{"type": "backoff", "min": 0, "max": 0}'}

    config = load_project(project_file).run_config(name, environ=environ)

    assert isinstance(config.retry_policy, BackoffRetry)
    assert config.retry_policy.max_attempts == 5


def test_bad_environment_value_names_the_variable(project_file: Path, name: str) -> None:
    variable = env_name(name, "retry_policy", "max_attempts")

    with pytest.raises(ConfigError) as caught:
        load_project(project_file).run_config(name, environ={variable: "many"})

    assert caught.value.source == "environment"
    assert caught.value.key == variable
    assert caught.value.value == "many"


def test_unknown_environment_key_names_the_variable(project_file: Path, name: str) -> None:
    variable = env_name(name, "retry_polcy")

    with pytest.raises(ConfigError) as caught:
        load_project(project_file).run_config(name, environ={variable: "fixed"})

    assert caught.value.key == variable
    assert "retry_policy" in (caught.value.allowed or [])


def test_bad_toml_value_names_line(project_file: Path, name: str) -> None:
    toml_path = write_config_toml(
        project_file,
        f"""\
        [pipelines.{name}.run_config]
        store_trace_info = true
        run_from_clean_folder = "yes"
        """,
    )

    with pytest.raises(ConfigError) as caught:
        load_project(project_file)

    assert caught.value.source == str(toml_path)
    assert caught.value.line == 3
    assert caught.value.key == f"pipelines.{name}.run_config.run_from_clean_folder"


def test_project_file_error_line(project_file: Path, name: str) -> None:
    text = project_file.read_text().replace("max_attempts: 3", "max_attempts: zero")
    project_file.write_text(text)

    with pytest.raises(ConfigError) as caught:
        load_project(project_file).run_config(name, environ={})

    assert caught.value.source == str(project_file)
    assert caught.value.line == 14
    assert caught.value.key == f"pipelines.{name}.run_config.retry_policy.max_attempts"


def test_environment_hides_project_file_value(
    project_file: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key that the environment sets is not read from the project file, even when invalid."""
    text = project_file.read_text().replace("max_attempts: 3", "max_attempts: zero")
    project_file.write_text(text)
    monkeypatch.setenv(env_name(name, "retry_policy", "max_attempts"), "2")

    config = load_project(project_file).run_config(name)

    assert isinstance(config.retry_policy, FixedRetry)
    assert config.retry_policy.max_attempts == 2


# --- a run through the command line --------------------------------------------------------------


def attempts_of_last_run(project_file: Path, name: str) -> int:
    records = journal_records(project_file.parent / "_data" / "journal", name)
    run_id = records[-1]["run_id"]
    entered = [dest for _, dest, _ in transitions([r for r in records if r["run_id"] == run_id])]
    return entered.count("attempt")


def test_cli_run_reads_every_place(
    project_file: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project file retries only load, config.toml adds extract, the environment caps tries."""
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    assert main(["run", str(project_file), name]) == EXIT_FAILED
    assert attempts_of_last_run(project_file, name) == 1

    write_config_toml(
        project_file,
        f"""\
        [pipelines.{name}.run_config]
        retry_pipeline_steps = ["extract", "load"]
        """,
    )
    assert main(["run", str(project_file), name]) == EXIT_FAILED
    assert attempts_of_last_run(project_file, name) == 3

    monkeypatch.setenv(env_name(name, "retry_policy", "max_attempts"), "2")
    assert main(["run", str(project_file), name]) == EXIT_FAILED
    assert attempts_of_last_run(project_file, name) == 2


def test_cli_bad_environment_value_exits_2(
    project_file: Path,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    variable = env_name(name, "retry_pipeline_steps")
    monkeypatch.setenv(variable, "load")

    assert main(["run", str(project_file), name]) == EXIT_USAGE

    err = capsys.readouterr().err
    assert variable in err
    assert "environment" in err
    assert not (project_file.parent / "_data" / "journal" / f"{name}.jsonl").exists()


def test_policy_name_merges_keys(project_file: Path, name: str) -> None:
    """`retry_policy: backoff` in the project file counts as `{type: backoff}` when merged."""
    text = project_file.read_text().replace(
        "      retry_policy:\n        type: fixed\n        max_attempts: 3\n",
        "      retry_policy: backoff\n",
    )
    project_file.write_text(text)
    environ = {env_name(name, "retry_policy", "max_attempts"): "2"}

    config = load_project(project_file).run_config(name, environ=environ)

    assert isinstance(config.retry_policy, BackoffRetry)
    assert config.retry_policy.max_attempts == 2


def test_policy_without_type_anywhere(project_file: Path, name: str) -> None:
    """Policy keys from the environment over a file without a policy name no type."""
    text = project_file.read_text().replace(
        "      retry_policy:\n        type: fixed\n        max_attempts: 3\n", "      {}\n"
    ).replace("    run_config:\n      {}\n", "")
    project_file.write_text(text)
    environ = {env_name(name, "retry_policy", "min"): "20"}

    with pytest.raises(ConfigError) as caught:
        load_project(project_file).run_config(name, environ=environ)

    assert "has no `type`" in str(caught.value)
    assert caught.value.source == "environment"


def test_policy_error_names_origins(project_file: Path, name: str) -> None:
    """A check across keys set in different places lists where each key was set."""
    text = project_file.read_text().replace(
        "        type: fixed\n        max_attempts: 3\n", "        type: backoff\n        max: 5\n"
    )
    project_file.write_text(text)
    variable = env_name(name, "retry_policy", "min")

    with pytest.raises(ConfigError) as caught:
        load_project(project_file).run_config(name, environ={variable: "20"})

    message = str(caught.value)
    assert "must not be smaller than `min`" in message
    assert f"`min` from the environment variable {variable}" in message
    assert f"`max` from {project_file}:" in message


def test_unread_settings_are_named(tmp_path: Path) -> None:
    """Misspelled pipeline names and sections are reported instead of ignored in silence."""
    toml_path = tmp_path / "config.toml"
    toml_path.write_text(
        "[pipelines.orders.run_config]\nstore_trace_info = true\n"
        "[pipelines.orders.runconfig]\nstore_trace_info = true\n"
        "[pipelines.ordres.run_config]\nstore_trace_info = true\n"
    )
    environ = {
        "PIPELINES__ORDERS__RUN_CONFIG__STORE_TRACE_INFO": "true",
        "PIPELINES__ORDERS__RUN_CONFIG": "{}",
        "PIPELINES__ORDRES__RUN_CONFIG__STORE_TRACE_INFO": "true",
        "PIPELINES__ORDERS__RUNCONFIG__STORE_TRACE_INFO": "true",
        "SOURCES__ORDERS__API_KEY": "not a pipeline setting",
    }

    found = unread_settings(["orders"], [toml_path, tmp_path / "missing.toml"], environ)

    assert found == [
        "environment variable PIPELINES__ORDERS__RUNCONFIG__STORE_TRACE_INFO",
        "environment variable PIPELINES__ORDRES__RUN_CONFIG__STORE_TRACE_INFO",
        f"[pipelines.orders.runconfig] in {toml_path}",
        f"[pipelines.ordres] in {toml_path}",
    ]


def test_load_project_warns_of_unread_setting(
    project_file: Path, name: str, monkeypatch: pytest.MonkeyPatch, log_events: Any
) -> None:
    variable = env_name(name + "x", "store_trace_info")
    monkeypatch.setenv(variable, "true")

    load_project(project_file)

    warnings = [e for e in log_events.entries if e["event"] == "settings_not_read"]
    assert len(warnings) == 1
    assert f"environment variable {variable}" in warnings[0]["settings"]


def test_journal_config_origins(
    project_file: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's first record says which place set each `run_config` key."""
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    toml_path = write_config_toml(
        project_file, f'[pipelines.{name}.run_config]\nretry_pipeline_steps = ["load"]\n'
    )
    variable = env_name(name, "retry_policy", "max_attempts")
    monkeypatch.setenv(variable, "2")

    main(["run", str(project_file), name])

    records = journal_records(project_file.parent / "_data" / "journal", name)
    origins = records[0]["config_origins"]
    assert origins == {
        "retry_policy.type": f"{project_file}:13",
        "retry_policy.max_attempts": f"environment variable {variable}",
        "retry_pipeline_steps": f"{toml_path}:2",
    }
