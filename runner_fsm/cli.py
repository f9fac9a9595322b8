"""The `runner-fsm` command line.

Exit codes: 0 the run is done; 1 the run failed (terminal error or retries exhausted); 2 invalid
command line or configuration; 3 another runner holds the pipeline's lock; 130 and 143
interrupted by SIGINT or SIGTERM. dlt is imported only by the commands that need it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:
    from runner_fsm.project import Project

__all__ = ["main", "build_parser", "EXIT_DONE", "EXIT_FAILED", "EXIT_USAGE", "EXIT_LOCKED"]

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be a positive integer")
    return value


def _resource_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: give resource names separated by commas, such as"
            " `flights,airlines`"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `runner-fsm`."""
    parser = argparse.ArgumentParser(
        prog="runner-fsm",
        description="Run dlt pipelines to completion as journaled state machines.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run one pipeline of a dlt project file",
        description="Run PIPELINE of the project file DLT_YML: load pending packages left by"
        " earlier runs, then extract, normalize and load the source, with the retry policy of"
        " its run_config.",
    )
    _add_common_options(run)
    run.add_argument(
        "--limit",
        type=_positive_int,
        help="extract at most N items (pages or batches) from each resource of the source",
        metavar="N",
    )
    run.add_argument(
        "--resources",
        type=_resource_list,
        help="load only these resources of the source, separated by commas",
        metavar="A,B",
    )
    resume = commands.add_parser(
        "resume",
        help="finish a run of PIPELINE that a crash or a signal interrupted",
        description="Finish the last run of PIPELINE if a crash or a signal interrupted it: load"
        " its pending packages and replay its spilled traces, under its own run id. Does not run"
        " the source. `run` does the same before it runs the source.",
    )
    _add_common_options(resume)
    journal = commands.add_parser(
        "journal",
        help="audit a journal",
        description="Audit the journal of a pipeline.",
    )
    journal_commands = journal.add_subparsers(dest="journal_command", required=True, metavar="COMMAND")
    verify = journal_commands.add_parser(
        "verify",
        help="check the sequence numbers and the hash chain of a journal",
        description="Check every record of a journal: its sequence number, its link to the record"
        " before it and its hash. Names the first broken line and exits with 1.",
    )
    listing = journal_commands.add_parser(
        "list",
        help="one line per run: id, start, end, state, tries, rows, duration",
        description="List the runs of a journal, one line each.",
    )
    show = journal_commands.add_parser(
        "show",
        help="every record of a run, one line each",
        description="Print every transition and event of one run (default: the last run).",
    )
    show.add_argument("--run", metavar="ID", help="the run id to show (default: the last run)")
    show.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="lines for a terminal (text, the default) or the records as JSON lines (json)",
    )
    for command in (verify, listing, show):
        command.add_argument(
            "target",
            metavar="DLT_YML_OR_JOURNAL",
            help="a journal file (.jsonl), or a project file (dlt.yml) followed by PIPELINE",
        )
        command.add_argument(
            "pipeline", metavar="PIPELINE", nargs="?", help="name of a pipeline in DLT_YML"
        )
        _add_journal_dir_option(command)
    spec = commands.add_parser(
        "spec",
        help="draw the run machine as a Mermaid or Graphviz diagram",
        description="Print the states and transitions of the run machine, read from its spec.",
    )
    spec.add_argument(
        "--format",
        choices=("mermaid", "dot"),
        default="mermaid",
        help="Mermaid stateDiagram-v2 (the default) or Graphviz dot",
    )
    _add_spec_option(spec, "draw")
    return parser


def _add_common_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("dlt_yml", metavar="DLT_YML", help="path of the project file (dlt.yml)")
    command.add_argument("pipeline", metavar="PIPELINE", help="name of a pipeline in DLT_YML")
    _add_journal_dir_option(command)
    command.add_argument(
        "--log-format",
        choices=("console", "json"),
        default="console",
        help="log lines readable on a terminal (console, the default) or JSON lines (json)",
    )
    _add_spec_option(command, "run")


def _add_journal_dir_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--journal-dir",
        type=Path,
        help="folder of the journal files (default: _data/journal beside DLT_YML)",
    )


def _add_spec_option(command: argparse.ArgumentParser, verb: str) -> None:
    command.add_argument(
        "--spec",
        type=Path,
        help=f"machine spec (YAML) to {verb} instead of the one shipped with runner-fsm",
        metavar="PATH",
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as ex:
        return int(ex.code or 0)
    if args.command == "spec":
        return _spec_command(args)
    if args.command == "journal":
        return _closing_pipe_ok(_journal_command, args)
    from runner_fsm.logs import configure_logging

    if args.log_format == "json":
        # dlt's own log lines become JSON too, so that every line of the stream is JSON
        os.environ.setdefault("RUNTIME__LOG_FORMAT", "JSON")
    configure_logging(args.log_format)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        if args.command in ("run", "resume"):
            return _run_command(args)
    finally:
        signal.signal(signal.SIGTERM, previous)
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE


def _closing_pipe_ok(command: Any, args: argparse.Namespace) -> int:
    """Run an output command; a reader that closes the pipe early (`| head`) ends it quietly."""
    try:
        code: int = command(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # the interpreter flushes stdout again at exit; point it at /dev/null first
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_DONE
    return code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like SIGINT's KeyboardInterrupt so that the same paths handle it."""

    signum = signal.SIGTERM


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def _print_error(message: str, log_format: str) -> None:
    if log_format == "json":
        from runner_fsm.logs import get_logger

        get_logger().error("cli_error", error=message)
    else:
        print(f"runner-fsm: error: {message}", file=sys.stderr)


def _prepare(args: argparse.Namespace, locks: list[Any]) -> tuple[Any, Any]:
    from runner_fsm._faults import fault_from_environment
    from runner_fsm._lock import PipelineLock, lock_path
    from runner_fsm._run import Run
    from runner_fsm._runner import Runner
    from runner_fsm.journal import check_journal_dir
    from runner_fsm.machine import load_spec
    from runner_fsm.project import load_project

    fault_from_environment()  # a malformed fault point is an error before any work starts
    project: Project = load_project(args.dlt_yml)
    run_config = project.run_config(args.pipeline)
    load_spec(args.spec, model=Run)
    source = None
    if args.command == "run":
        source = project.make_source(args.pipeline, limit=args.limit, resources=args.resources)
    journal_dir = args.journal_dir or project.data_dir / "journal"
    # an unusable journal folder is a command line error, found before any work starts
    check_journal_dir(journal_dir, args.pipeline)
    # the lock is taken before dlt opens the working folder, which dlt may reset
    lock = PipelineLock(lock_path(journal_dir, args.pipeline), args.pipeline)
    taken_from = lock.acquire()
    locks.append(lock)
    pipeline = project.make_pipeline(args.pipeline)
    trace_target = run_config.store_trace_info
    if isinstance(trace_target, str) and not isinstance(trace_target, bool):
        trace_target = project.make_pipeline(trace_target)
    runner = Runner(
        pipeline,
        run_from_clean_folder=run_config.run_from_clean_folder,
        store_trace_info=trace_target,
        retry_policy=run_config.retry_policy,
        retry_pipeline_steps=run_config.retry_pipeline_steps,
        on_terminal_pending=run_config.on_terminal_pending,
        journal_dir=journal_dir,
        spec_path=args.spec,
        config_origins=run_config.origins,
    )
    # the run journals a takeover of a dead holder's lock, which the CLI took on its behalf
    runner.lock_taken_from = taken_from
    return runner, source


def _run_command(args: argparse.Namespace) -> int:
    from runner_fsm._classify import interrupting_signal
    from runner_fsm._scrub import Scrubber
    from runner_fsm.exceptions import ConfigError, JournalError, PipelineLocked, SpecError

    runner: Any = None
    locks: list[Any] = []
    try:
        runner, source = _prepare(args, locks)
        if args.command == "resume":
            _report_resume(runner.resume())
        else:
            runner.run(source)
    except (ConfigError, SpecError, JournalError) as ex:
        _print_error(str(ex), args.log_format)
        return EXIT_USAGE
    except PipelineLocked as ex:
        _print_error(str(ex), args.log_format)
        return EXIT_LOCKED
    except BaseException as ex:  # noqa: BLE001 - the journal and the log hold the details
        if not isinstance(ex, Exception) and not isinstance(ex, KeyboardInterrupt):
            raise
        scrubber = runner.scrubber if runner is not None else Scrubber()
        signum = interrupting_signal(ex)
        if signum is not None:
            name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
            _print_error(f"the run of pipeline `{args.pipeline}` was stopped by {name}", args.log_format)
            return EXIT_SIGTERM if signum == signal.SIGTERM else EXIT_SIGINT
        message = scrubber.scrub(_first_line(ex))
        _print_error(f"the run of pipeline `{args.pipeline}` failed: {message}", args.log_format)
        return EXIT_FAILED
    finally:
        for lock in locks:
            lock.release()
    return EXIT_DONE


def _spec_command(args: argparse.Namespace) -> int:
    from runner_fsm.diagram import render
    from runner_fsm.exceptions import SpecError
    from runner_fsm.machine import load_spec

    try:
        spec = load_spec(args.spec)
    except SpecError as ex:
        print(f"runner-fsm: error: {ex}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(render(spec, args.format))
    return EXIT_DONE


def _journal_files(args: argparse.Namespace) -> list[tuple[Optional[str], Path]]:
    """Return the journals that the command names, with their pipelines when a project names them.

    A project file without PIPELINE names every journal of the project, for `list` and `verify`.
    """
    from runner_fsm.exceptions import ConfigError
    from runner_fsm.journal import journal_path

    target = Path(args.target)
    is_project = target.suffix in (".yml", ".yaml")
    if target.suffix == ".jsonl" or (not is_project and target.is_file() and args.pipeline is None):
        return [(None, target)]
    journal_dir = args.journal_dir or target.absolute().parent / "_data" / "journal"
    if args.pipeline is not None:
        return [(None, journal_path(journal_dir, args.pipeline))]
    if args.journal_command == "show":
        raise ConfigError(
            f"`{target}` is a project file, so name the pipeline whose run to show:"
            f" runner-fsm journal show {target} PIPELINE."
        )
    if not target.is_file():
        raise ConfigError(
            f"`{target}` is neither a journal file (.jsonl) nor an existing project file. Pass"
            " a journal file, or a dlt.yml and the name of a pipeline."
        )
    journals = sorted(Path(journal_dir).glob("*.jsonl"))
    if not journals:
        raise ConfigError(
            f"the project has no journals in `{journal_dir}`: no pipeline of it has run yet."
            " Pass --journal-dir when the runs wrote their journals elsewhere."
        )
    return [(path.stem, path) for path in journals]


def _journal_command(args: argparse.Namespace) -> int:
    from runner_fsm.exceptions import ConfigError

    try:
        journals = _journal_files(args)
    except ConfigError as ex:
        print(f"runner-fsm: error: {ex}", file=sys.stderr)
        return EXIT_USAGE
    for _, path in journals:
        if not path.is_file():
            others = sorted(p.stem for p in path.parent.glob("*.jsonl"))
            known = f" Journals in that folder: {', '.join(others)}." if others else ""
            print(
                f"runner-fsm: error: the journal `{path}` does not exist: the pipeline has not"
                f" run with this journal folder, or its name is misspelled.{known}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    if args.journal_command == "list":
        return _list_runs(journals)
    if args.journal_command == "show":
        return _show_run(journals[0][1], args.run, args.format)
    return max(_verify(path) for _, path in journals)


def _list_runs(journals: list[tuple[Optional[str], Path]]) -> int:
    from runner_fsm.audit import summarize_runs

    # the pipeline column appears when the journals of a whole project are listed
    by_project = any(name is not None for name, _ in journals)
    width = max([len("pipeline")] + [len(name or "") for name, _ in journals])
    first = f"{'pipeline':<{width}} " if by_project else ""
    print(
        f"{first}{'run id':<26} {'started':<32} {'ended':<32} {'state':<11} {'tries':>5}"
        f" {'rows':>10} {'duration':>9}"
    )
    for name, path in journals:
        prefix = f"{name or '':<{width}} " if by_project else ""
        for run in summarize_runs(path):
            duration = f"{run.duration_s:.1f} s" if run.duration_s is not None else "-"
            print(
                f"{prefix}{run.run_id:<26} {run.started:<32} {run.ended or '-':<32}"
                f" {run.state:<11} {run.attempts:>5} {run.rows:>10,} {duration:>9}"
            )
    return EXIT_DONE


def _show_run(path: Path, run_id: Optional[str], output_format: str) -> int:
    import orjson

    from runner_fsm.audit import describe_record, run_records

    records = run_records(path, run_id)
    if not records:
        print(f"runner-fsm: error: no run `{run_id}` in the journal `{path}`.", file=sys.stderr)
        return EXIT_USAGE
    for record in records:
        if output_format == "json":
            sys.stdout.write(orjson.dumps(record).decode() + "\n")
        else:
            print(describe_record(record))
    return EXIT_DONE


def _verify(path: Path) -> int:
    from runner_fsm.audit import verify_journal

    result = verify_journal(path)
    for skipped in result.skipped:
        print(f"skipped an unreadable line, as a torn write leaves it: {skipped}", file=sys.stderr)
    if not result.ok:
        print(f"{path}:{result.problem_line}: {result.problem}")
        return EXIT_FAILED
    runs = "1 run" if result.runs == 1 else f"{result.runs} runs"
    records = "1 record" if result.records == 1 else f"{result.records} records"
    print(f"{path}: valid, {records} of {runs}")
    return EXIT_DONE


def _report_resume(interrupted: Any) -> None:
    if interrupted is None:
        print("no interrupted run to resume: the last run ended")
    else:
        print(f"resumed run {interrupted.run_id}, interrupted in state {interrupted.last_state}")


def _first_line(ex: BaseException) -> str:
    from runner_fsm._messages import headline

    inner = getattr(ex, "exception", None)
    shown = inner if isinstance(inner, BaseException) else ex
    return f"{type(shown).__name__}: {headline(str(shown))}"


if __name__ == "__main__":
    sys.exit(main())
