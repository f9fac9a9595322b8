"""`runner-fsm spec`: the run machine drawn as Mermaid and Graphviz dot from its spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runner_fsm.cli import main
from runner_fsm.diagram import render, to_dot, to_mermaid
from runner_fsm.machine import default_spec_path, load_spec

README = Path(__file__).resolve().parent.parent / "README.md"


class TestDiagram:
    def test_mermaid_has_every_transition(self) -> None:
        """Each transition of the spec is one Mermaid line, with its trigger and guards."""
        spec = load_spec()

        text = to_mermaid(spec)

        for transition in spec.transitions:
            guards = f" [{' and '.join(transition.conditions)}]" if transition.conditions else ""
            line = f"    {transition.source} --> {transition.dest}: {transition.trigger}{guards}"
            assert line in text.splitlines()

    def test_mermaid_marks_start_and_ends(self) -> None:
        """The initial state comes from [*] and the terminal states lead to it."""
        text = to_mermaid(load_spec())

        assert "    [*] --> start" in text.splitlines()
        assert "    done --> [*]" in text.splitlines()
        assert "    failed --> [*]" in text.splitlines()

    def test_dot_has_every_transition(self) -> None:
        """Each transition of the spec is one dot edge, and the terminal states are doubled."""
        spec = load_spec()

        text = to_dot(spec)

        assert text.startswith("digraph run_machine {")
        assert text.rstrip().endswith("}")
        assert text.count(" -> ") == len(spec.transitions)
        assert '    "done" [peripheries=2];' in text.splitlines()

    def test_unknown_format_rejected(self) -> None:
        """An unknown format raises ValueError naming it."""
        with pytest.raises(ValueError, match="svg"):
            render(load_spec(), "svg")

    def test_readme_diagram_is_current(self) -> None:
        """The diagram in the README is the one the shipped spec draws."""
        text = README.read_text(encoding="utf-8")

        assert "```mermaid\n" + to_mermaid(load_spec()) + "```" in text


class TestSpecCommand:
    @pytest.mark.parametrize("diagram_format", ["mermaid", "dot"])
    def test_command_prints_diagram(
        self, diagram_format: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`runner-fsm spec --format F` prints the diagram and exits 0."""
        code = main(["spec", "--format", diagram_format])

        assert code == 0
        assert capsys.readouterr().out == render(load_spec(), diagram_format)

    def test_broken_spec_exits_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A spec with a transition out of `done` exits 2 and names the state."""
        data = yaml.safe_load(default_spec_path().read_text(encoding="utf-8"))
        data["transitions"].append({"trigger": "again", "source": "done", "dest": "sync"})
        path = tmp_path / "machine.yaml"
        path.write_text(yaml.safe_dump(data))

        code = main(["spec", "--spec", str(path)])

        assert code == 2
        assert "`done`" in capsys.readouterr().err

    def test_spec_command_skips_dlt(self) -> None:
        """Drawing the machine does not import dlt, so it starts fast."""
        code = "import sys; from runner_fsm.cli import main; main(['spec']); print('dlt' in sys.modules)"

        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

        assert result.stdout.strip().splitlines()[-1] == "False"
