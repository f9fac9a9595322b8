"""Tests of the run machine spec: the shipped spec, the checks of a broken one, the wheel."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from runner_fsm._run import Run
from runner_fsm.exceptions import SpecError
from runner_fsm.machine import default_spec_path, load_spec

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

PRODUCT_STATES = [
    "start",
    "replay_traces",
    "clean_folder",
    "sync",
    "finalize_pending",
    "attempt",
    "store_trace",
    "decide_retry",
    "waiting",
    "done",
    "failed",
]


def shipped_spec_data() -> dict[str, Any]:
    """Return the parsed YAML of the shipped spec, as a fresh dict to modify."""
    data = yaml.safe_load(default_spec_path().read_text(encoding="utf-8"))
    return copy.deepcopy(data)


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Return a function that writes a spec dict to tmp_path and returns the file."""

    def write(data: dict[str, Any]) -> Path:
        path = tmp_path / "broken_machine.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write


class TestShippedSpec:
    def test_shipped_spec_loads(self) -> None:
        """The shipped spec loads and is checked against the Run model."""
        spec = load_spec(model=Run)

        assert spec.path == str(default_spec_path())

    def test_shipped_spec_initial_state(self) -> None:
        """The shipped spec starts in `start`."""
        spec = load_spec(model=Run)

        assert spec.initial == "start"

    def test_shipped_spec_terminal_states(self) -> None:
        """The shipped spec ends in `done` or `failed`."""
        spec = load_spec(model=Run)

        assert sorted(spec.terminal_states) == ["done", "failed"]

    @pytest.mark.parametrize("state", PRODUCT_STATES)
    def test_shipped_spec_has_state(self, state: str) -> None:
        """Every state of the product is declared in the shipped spec."""
        spec = load_spec(model=Run)

        assert state in spec.states

    def test_shipped_spec_no_extra_states(self) -> None:
        """The shipped spec declares no state beyond those of the product."""
        spec = load_spec(model=Run)

        assert sorted(spec.states) == sorted(PRODUCT_STATES)

    def test_shipped_spec_guards_on_model(self) -> None:
        """Every guard of the shipped spec is a method of the Run model."""
        spec = load_spec(model=Run)

        for guard in spec.guards:
            assert callable(getattr(Run, guard, None)), guard

    def test_initial_flag_on_state(self, write_spec: Callable[..., Path]) -> None:
        """A state flagged `initial: true` is the initial state when no top-level key is set."""
        data = shipped_spec_data()
        del data["initial"]
        data["states"]["start"]["initial"] = True

        spec = load_spec(write_spec(data), model=Run)

        assert spec.initial == "start"

    def test_initial_flag_and_key_agree(self, write_spec: Callable[..., Path]) -> None:
        """The `initial` flag and the top-level key may name the same state."""
        data = shipped_spec_data()
        data["states"]["start"]["initial"] = True

        spec = load_spec(write_spec(data), model=Run)

        assert spec.initial == "start"


def add_initial_flag(data: dict[str, Any]) -> None:
    data["states"]["sync"]["initial"] = True


def remove_initial(data: dict[str, Any]) -> None:
    del data["initial"]


def set_undeclared_initial(data: dict[str, Any]) -> None:
    data["initial"] = "warm_up"


def add_exit_from_done(data: dict[str, Any]) -> None:
    data["transitions"].append({"trigger": "restarted", "source": "done", "dest": "failed"})


def give_done_an_action(data: dict[str, Any]) -> None:
    data["states"]["done"]["action"] = "open_run"


def add_state_without_exit(data: dict[str, Any]) -> None:
    data["states"]["stuck"] = {"action": "wait"}
    data["transitions"].insert(
        0,
        {
            "trigger": "opened",
            "source": "start",
            "dest": "stuck",
            "conditions": ["has_pending_data"],
        },
    )


def add_loop_without_terminal(data: dict[str, Any]) -> None:
    data["states"]["spin_a"] = {"action": "wait"}
    data["states"]["spin_b"] = {"action": "wait"}
    data["transitions"].insert(
        0,
        {
            "trigger": "opened",
            "source": "start",
            "dest": "spin_a",
            "conditions": ["has_pending_data"],
        },
    )
    data["transitions"].append({"trigger": "waited", "source": "spin_a", "dest": "spin_b"})
    data["transitions"].append({"trigger": "waited", "source": "spin_b", "dest": "spin_a"})


def add_unreachable_state(data: dict[str, Any]) -> None:
    data["states"]["orphan"] = {"action": "store_trace"}
    data["transitions"].append({"trigger": "trace_stored", "source": "orphan", "dest": "done"})


def guard_last_transition(data: dict[str, Any]) -> None:
    for transition in data["transitions"]:
        if transition["source"] == "decide_retry" and transition["dest"] == "failed":
            transition["conditions"] = ["retry_allowed"]


def add_unknown_guard(data: dict[str, Any]) -> None:
    data["transitions"][0]["conditions"] = ["is_monday"]


def set_unknown_action(data: dict[str, Any]) -> None:
    data["states"]["sync"]["action"] = "sync_everything"


def add_transition_to_undeclared(data: dict[str, Any]) -> None:
    data["transitions"].insert(
        0,
        {
            "trigger": "decided",
            "source": "decide_retry",
            "dest": "archive",
            "conditions": ["retry_allowed"],
        },
    )


def add_transition_from_undeclared(data: dict[str, Any]) -> None:
    data["transitions"].append({"trigger": "resumed", "source": "paused", "dest": "sync"})


def remove_waiting_action(data: dict[str, Any]) -> None:
    del data["states"]["waiting"]["action"]


def add_unknown_state_key(data: dict[str, Any]) -> None:
    data["states"]["sync"]["timeout"] = 30


def shadow_guarded_transition(data: dict[str, Any]) -> None:
    data["transitions"].insert(0, {"trigger": "opened", "source": "start", "dest": "sync"})


def name_trigger_like_attribute(data: dict[str, Any]) -> None:
    for transition in data["transitions"]:
        if transition["trigger"] == "waited":
            transition["trigger"] = "execute"


def make_terminal_a_string(data: dict[str, Any]) -> None:
    data["states"]["done"]["terminal"] = "false"


class TestBrokenSpecs:
    @pytest.mark.parametrize(
        "modify, state, reason",
        [
            (add_initial_flag, "sync", "exactly one initial state, found 2"),
            (set_undeclared_initial, "warm_up", "not declared"),
            (add_exit_from_done, "done", "terminal state has no exit"),
            (give_done_an_action, "done", "terminal state takes no `action`"),
            (add_state_without_exit, "stuck", "no transition out"),
            (add_loop_without_terminal, "spin_a", "no path leads from the state to a terminal"),
            (add_unreachable_state, "orphan", "cannot be reached from the initial state"),
            (guard_last_transition, "decide_retry", "last transition of trigger `decided`"),
            (add_unknown_guard, "start", "unknown guard `is_monday`"),
            (set_unknown_action, "sync", "unknown action `sync_everything`"),
            (add_transition_to_undeclared, "archive", "enters an undeclared state"),
            (add_transition_from_undeclared, "paused", "leaves an undeclared state"),
            (remove_waiting_action, "waiting", "needs an `action`"),
            (add_unknown_state_key, "sync", "unknown keys ['timeout']"),
            (shadow_guarded_transition, "start", "can never fire"),
            (name_trigger_like_attribute, "waiting", "name of an attribute of the run model"),
            (make_terminal_a_string, "done", "`terminal` must be true or false"),
        ],
    )
    def test_broken_spec_names_state(
        self,
        write_spec: Callable[..., Path],
        modify: Callable[[dict[str, Any]], None],
        state: str,
        reason: str,
    ) -> None:
        """A spec that breaks a rule raises SpecError naming the file, the state and the rule."""
        data = shipped_spec_data()
        modify(data)
        path = write_spec(data)

        with pytest.raises(SpecError) as caught:
            load_spec(path, model=Run)

        message = str(caught.value)
        assert str(path) in message
        assert f"`{state}`" in message or repr(state) in message
        assert reason in message

    def test_no_initial_state(self, write_spec: Callable[..., Path]) -> None:
        """A spec without an initial state raises SpecError naming the file."""
        data = shipped_spec_data()
        remove_initial(data)
        path = write_spec(data)

        with pytest.raises(SpecError) as caught:
            load_spec(path, model=Run)

        message = str(caught.value)
        assert str(path) in message
        assert "exactly one initial state, found 0" in message

    def test_two_initial_names_both(self, write_spec: Callable[..., Path]) -> None:
        """Two initial states raise SpecError naming both states."""
        data = shipped_spec_data()
        add_initial_flag(data)
        path = write_spec(data)

        with pytest.raises(SpecError) as caught:
            load_spec(path, model=Run)

        message = str(caught.value)
        assert "'sync'" in message
        assert "'start'" in message

    @pytest.mark.parametrize("modify", [add_unknown_guard, set_unknown_action])
    def test_names_checked_only_with_model(
        self, write_spec: Callable[..., Path], modify: Callable[[dict[str, Any]], None]
    ) -> None:
        """Guard and action names are checked against the model, so without one they load."""
        data = shipped_spec_data()
        modify(data)
        path = write_spec(data)

        spec = load_spec(path)

        assert spec.initial == "start"

    def test_invalid_yaml(self, tmp_path: Path) -> None:
        """A file that is not valid YAML raises SpecError naming the file."""
        path = tmp_path / "broken_machine.yaml"
        path.write_text("version: 1\nstates: [start, {done\n", encoding="utf-8")

        with pytest.raises(SpecError) as caught:
            load_spec(path, model=Run)

        message = str(caught.value)
        assert str(path) in message
        assert "not valid YAML" in message

    def test_missing_file(self, tmp_path: Path) -> None:
        """A spec file that does not exist raises SpecError naming the file."""
        path = tmp_path / "absent_machine.yaml"

        with pytest.raises(SpecError) as caught:
            load_spec(path, model=Run)

        assert str(path) in str(caught.value)

    @pytest.mark.parametrize("version", [2, 0, "1"])
    def test_unsupported_version(self, write_spec: Callable[..., Path], version: Any) -> None:
        """A spec version other than 1 raises SpecError naming the file and the version."""
        data = shipped_spec_data()
        data["version"] = version
        path = write_spec(data)

        with pytest.raises(SpecError) as caught:
            load_spec(path, model=Run)

        message = str(caught.value)
        assert str(path) in message
        assert f"unsupported spec version {version!r}" in message

    @pytest.mark.parametrize("document", ["[]", "just text", "version: 1\n"])
    def test_spec_not_machine(self, tmp_path: Path, document: str) -> None:
        """A YAML document that is not a mapping with states raises SpecError."""
        path = tmp_path / "broken_machine.yaml"
        path.write_text(document, encoding="utf-8")

        with pytest.raises(SpecError) as caught:
            load_spec(path, model=Run)

        assert str(path) in str(caught.value)


def build_wheel(destination: Path) -> Path:
    """Build a wheel of the repository into `destination` and return its file."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(destination)]
    offline = subprocess.run(
        [*command, "--no-build-isolation", str(REPOSITORY_ROOT)],
        capture_output=True,
        text=True,
    )
    if offline.returncode != 0:
        # Without hatchling in the environment, pip fetches it into an isolated build env.
        isolated = subprocess.run(
            [*command, str(REPOSITORY_ROOT)], capture_output=True, text=True
        )
        assert isolated.returncode == 0, isolated.stdout + isolated.stderr
    wheels = list(destination.glob("runner_fsm-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


class TestInstalledWheel:
    def test_wheel_finds_spec(self, tmp_path: Path) -> None:
        """A wheel installed without the checkout finds and loads its own spec."""
        wheel = build_wheel(tmp_path / "dist")

        with zipfile.ZipFile(wheel) as archive:
            assert "runner_fsm/specs/run_machine.yaml" in archive.namelist()

        site = tmp_path / "site"
        install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), wheel],
            capture_output=True,
            text=True,
        )
        assert install.returncode == 0, install.stdout + install.stderr

        script = (
            "import runner_fsm\n"
            "from runner_fsm._run import Run\n"
            "from runner_fsm.machine import default_spec_path, load_spec\n"
            "print(runner_fsm.__file__)\n"
            "print(default_spec_path())\n"
            "print(load_spec(model=Run).initial)\n"
        )
        env = {**os.environ, "PYTHONPATH": str(site), "RUNTIME__DLTHUB_TELEMETRY": "false"}
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env
        )
        assert result.returncode == 0, result.stderr

        package_file, spec_path, initial = result.stdout.split()
        assert Path(package_file).resolve().is_relative_to(site.resolve())
        assert Path(spec_path).resolve().is_relative_to(site.resolve())
        assert initial == "start"
