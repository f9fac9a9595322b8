"""The declarative run machine: loads a spec from `specs/`, checks it and binds it to `transitions`.

A spec names, for every state, the action the runner calls in it, and lists the transitions with
their triggers and guards. `load_spec` rejects a spec that breaks a rule of the machine (one initial
state, no exit from a terminal state, no dead end, no unknown guard or action), naming the state,
before any run starts.
"""

from __future__ import annotations

import copy
import functools
from collections import defaultdict, deque
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import yaml

from runner_fsm.exceptions import SpecError

__all__ = [
    "StateSpec",
    "TransitionSpec",
    "MachineSpec",
    "default_spec_path",
    "load_spec",
    "parse_spec",
    "bind_machine",
]

SPEC_FILE = "run_machine.yaml"


@dataclass(frozen=True)
class StateSpec:
    """One state: its action (a method name of the run model) or, for terminal states, none."""

    name: str
    action: Optional[str]
    terminal: bool
    description: str = ""


@dataclass(frozen=True)
class TransitionSpec:
    """One transition: fires on `trigger` in `source` when every guard in `conditions` holds."""

    trigger: str
    source: str
    dest: str
    conditions: tuple[str, ...] = ()


@dataclass(frozen=True)
class MachineSpec:
    """A checked machine spec."""

    path: str
    initial: str
    states: Mapping[str, StateSpec]
    transitions: Sequence[TransitionSpec]
    version: int = 1
    guards: frozenset[str] = field(default_factory=frozenset)

    @property
    def terminal_states(self) -> list[str]:
        return [name for name, state in self.states.items() if state.terminal]

    def outgoing(self, state: str) -> list[TransitionSpec]:
        return [t for t in self.transitions if t.source == state]


def default_spec_path() -> Path:
    """Return the path of the run machine spec shipped with the package.

    An installed wheel contains the spec in `runner_fsm/specs/`. A source checkout or an editable
    install reads it from the repository's `specs/` folder.
    """
    packaged = resources.files("runner_fsm").joinpath("specs", SPEC_FILE)
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parent.parent / "specs" / SPEC_FILE
    if checkout.is_file():
        return checkout
    raise SpecError(
        "the run machine spec is missing from the installation; reinstall runner-fsm.",
        spec_path=str(packaged),
    )


def load_spec(path: Optional[Path] = None, model: Any = None) -> MachineSpec:
    """Read, parse and check the machine spec at `path` (default: the shipped spec).

    When `model` is given, every action and guard name must be a callable attribute of it.
    """
    spec_path = path or default_spec_path()
    try:
        text = Path(spec_path).read_text(encoding="utf-8")
    except OSError as ex:
        raise SpecError(f"cannot read the spec: {ex}", spec_path=str(spec_path)) from ex
    try:
        data = copy.deepcopy(_parse_yaml(text))
    except yaml.YAMLError as ex:
        raise SpecError(f"the spec is not valid YAML: {ex}", spec_path=str(spec_path)) from ex
    return parse_spec(data, spec_path=str(spec_path), model=model)


@functools.lru_cache(maxsize=8)
def _parse_yaml(text: str) -> Any:
    """Parse a spec text, with libyaml where PyYAML has it; a runner per run reads the same text."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def _require(condition: bool, message: str, spec_path: str, state: Optional[str] = None) -> None:
    if not condition:
        raise SpecError(message, spec_path=spec_path, state=state)


def _parse_states(raw: Any, spec_path: str) -> dict[str, StateSpec]:
    _require(
        isinstance(raw, Mapping) and bool(raw),
        "`states` must be a non-empty mapping of state names.",
        spec_path,
    )
    states: dict[str, StateSpec] = {}
    for name, body in raw.items():
        body = body or {}
        _require(isinstance(body, Mapping), "a state must be a mapping.", spec_path, str(name))
        unknown = set(body) - {"action", "terminal", "description", "initial"}
        _require(not unknown, f"unknown keys {sorted(unknown)}.", spec_path, str(name))
        terminal = body.get("terminal", False)
        _require(isinstance(terminal, bool), "`terminal` must be true or false.", spec_path, str(name))
        action = body.get("action")
        _require(
            terminal or isinstance(action, str),
            "a state that is not terminal needs an `action`.",
            spec_path,
            str(name),
        )
        _require(
            not (terminal and action), "a terminal state takes no `action`.", spec_path, str(name)
        )
        description = str(body.get("description", ""))
        states[str(name)] = StateSpec(str(name), action, terminal, description)
    return states


def _parse_initial(data: Mapping[str, Any], states: Mapping[str, Any], spec_path: str) -> str:
    flagged = [name for name, body in (data.get("states") or {}).items()
               if isinstance(body, Mapping) and body.get("initial")]
    initial = data.get("initial")
    if initial is not None:
        flagged = [name for name in flagged if name != initial] + [initial]
    _require(
        len(flagged) == 1,
        f"the machine needs exactly one initial state, found {len(flagged)}: {flagged}.",
        spec_path,
    )
    name = str(flagged[0])
    _require(name in states, "the initial state is not declared in `states`.", spec_path, name)
    return name


def _parse_transitions(raw: Any, states: Mapping[str, StateSpec], spec_path: str) -> list[TransitionSpec]:
    _require(isinstance(raw, list) and bool(raw), "`transitions` must be a non-empty list.", spec_path)
    transitions = []
    for index, item in enumerate(raw):
        _require(
            isinstance(item, Mapping) and {"trigger", "source", "dest"} <= set(item),
            f"transition #{index + 1} needs `trigger`, `source` and `dest`: {item!r}.",
            spec_path,
        )
        source, dest = str(item["source"]), str(item["dest"])
        _require(source in states, f"transition #{index + 1} leaves an undeclared state.", spec_path, source)
        _require(dest in states, f"transition #{index + 1} enters an undeclared state.", spec_path, dest)
        conditions = item.get("conditions") or []
        if isinstance(conditions, str):
            conditions = [conditions]
        transitions.append(
            TransitionSpec(str(item["trigger"]), source, dest, tuple(str(c) for c in conditions))
        )
    return transitions


def _check_terminal(spec: MachineSpec) -> None:
    for name in spec.terminal_states:
        exits = spec.outgoing(name)
        _require(
            not exits,
            f"a terminal state has no exit, but it has transitions to {[t.dest for t in exits]}.",
            spec.path,
            name,
        )
    _require(bool(spec.terminal_states), "the machine has no terminal state.", spec.path)


def _check_triggers_total(spec: MachineSpec) -> None:
    groups: dict[tuple[str, str], list[TransitionSpec]] = defaultdict(list)
    for transition in spec.transitions:
        groups[(transition.source, transition.trigger)].append(transition)
    for (source, trigger), group in groups.items():
        for transition in group[:-1]:
            _require(
                bool(transition.conditions),
                f"the transition of trigger `{trigger}` to `{transition.dest}` has no guards, so"
                " the transitions listed after it can never fire.",
                spec.path,
                source,
            )
        _require(
            not group[-1].conditions,
            f"the last transition of trigger `{trigger}` has guards {list(group[-1].conditions)},"
            " so the trigger can fire none; end the list with a transition without conditions.",
            spec.path,
            source,
        )


def _reachable(start: Iterable[str], edges: Mapping[str, set[str]]) -> set[str]:
    seen = set(start)
    queue = deque(seen)
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _check_graph(spec: MachineSpec) -> None:
    forward: dict[str, set[str]] = defaultdict(set)
    backward: dict[str, set[str]] = defaultdict(set)
    for transition in spec.transitions:
        forward[transition.source].add(transition.dest)
        backward[transition.dest].add(transition.source)
    from_initial = _reachable([spec.initial], forward)
    to_terminal = _reachable(spec.terminal_states, backward)
    for name, state in spec.states.items():
        if not state.terminal:
            _require(bool(spec.outgoing(name)), "a dead end: the state has no transition out.", spec.path, name)
        _require(name in from_initial, "the state cannot be reached from the initial state.", spec.path, name)
        _require(
            name in to_terminal,
            "a dead end: no path leads from the state to a terminal state.",
            spec.path,
            name,
        )


def _check_names(spec: MachineSpec, model: Any) -> None:
    for name, state in spec.states.items():
        if state.action and not callable(getattr(model, state.action, None)):
            raise SpecError(f"unknown action `{state.action}`.", spec_path=spec.path, state=name)
    for transition in spec.transitions:
        if hasattr(model, transition.trigger):
            raise SpecError(
                f"trigger `{transition.trigger}` has the name of an attribute of the run model;"
                " rename the trigger.",
                spec_path=spec.path,
                state=transition.source,
            )
        for guard in transition.conditions:
            if not callable(getattr(model, guard, None)):
                raise SpecError(
                    f"unknown guard `{guard}` on trigger `{transition.trigger}`.",
                    spec_path=spec.path,
                    state=transition.source,
                )


def parse_spec(data: Any, *, spec_path: str, model: Any = None) -> MachineSpec:
    """Check the parsed YAML `data` of a spec and return it as a `MachineSpec`."""
    _require(isinstance(data, Mapping), "the spec must be a mapping.", spec_path)
    unknown = set(data) - {"version", "initial", "states", "transitions"}
    _require(not unknown, f"unknown top-level keys {sorted(unknown)}.", spec_path)
    version = data.get("version", 1)
    _require(type(version) is int and version == 1, f"unsupported spec version {data.get('version')!r}; this runner reads version 1.", spec_path)
    states = _parse_states(data.get("states"), spec_path)
    initial = _parse_initial(data, states, spec_path)
    transitions = _parse_transitions(data.get("transitions"), states, spec_path)
    guards = frozenset(c for t in transitions for c in t.conditions)
    spec = MachineSpec(spec_path, initial, states, transitions, 1, guards)
    _check_terminal(spec)
    _check_triggers_total(spec)
    _check_graph(spec)
    if model is not None:
        _check_names(spec, model)
    return spec


def bind_machine(spec: MachineSpec, model: Any, after_state_change: str) -> Any:
    """Build a `transitions.Machine` for `model` from `spec`.

    Guards and the `after_state_change` callback receive the `EventData` of the transition.
    """
    from transitions import Machine

    _check_names(spec, model)
    return Machine(
        model=model,
        states=list(spec.states),
        transitions=[
            {
                "trigger": t.trigger,
                "source": t.source,
                "dest": t.dest,
                "conditions": list(t.conditions),
            }
            for t in spec.transitions
        ],
        initial=spec.initial,
        auto_transitions=False,
        send_event=True,
        after_state_change=after_state_change,
        model_attribute="state",
    )
