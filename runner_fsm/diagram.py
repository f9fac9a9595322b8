"""Drawings of the run machine: Mermaid state diagrams and Graphviz dot, made from a spec."""

from __future__ import annotations

from runner_fsm.machine import MachineSpec

__all__ = ["DIAGRAM_FORMATS", "to_mermaid", "to_dot", "render"]

DIAGRAM_FORMATS = ("mermaid", "dot")


def _label(trigger: str, conditions: tuple[str, ...]) -> str:
    if not conditions:
        return trigger
    return f"{trigger} [{' and '.join(conditions)}]"


def to_mermaid(spec: MachineSpec) -> str:
    """Return `spec` as a Mermaid `stateDiagram-v2`."""
    lines = ["stateDiagram-v2", f"    [*] --> {spec.initial}"]
    for transition in spec.transitions:
        label = _label(transition.trigger, transition.conditions)
        lines.append(f"    {transition.source} --> {transition.dest}: {label}")
    for name in spec.terminal_states:
        lines.append(f"    {name} --> [*]")
    return "\n".join(lines) + "\n"


def to_dot(spec: MachineSpec) -> str:
    """Return `spec` as a Graphviz digraph; terminal states are drawn with a double border."""
    lines = ["digraph run_machine {", "    rankdir=LR;", '    node [shape=box, style=rounded];']
    lines.append(f'    "{spec.initial}" [penwidth=2];')
    for name in spec.terminal_states:
        lines.append(f'    "{name}" [peripheries=2];')
    for transition in spec.transitions:
        label = _label(transition.trigger, transition.conditions)
        lines.append(f'    "{transition.source}" -> "{transition.dest}" [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(spec: MachineSpec, diagram_format: str) -> str:
    """Return `spec` drawn in `diagram_format` (`mermaid` or `dot`)."""
    if diagram_format == "mermaid":
        return to_mermaid(spec)
    if diagram_format == "dot":
        return to_dot(spec)
    raise ValueError(f"unknown diagram format {diagram_format!r}; use one of {DIAGRAM_FORMATS}")
