"""PostgreSQL faults: a killed loader connection, a stopped server, a wrong password, a lock race.

The tests that stop a server or check a password start a throwaway PostgreSQL cluster of their own
(`initdb` and `pg_ctl` from PATH) on a free loopback port. PostgreSQL refuses to run as root, so
under root the cluster runs as the unprivileged `postgres` OS user through `setpriv`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import dlt
import psycopg2
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

import runner_fsm
from runner_fsm._lock import PipelineLock, lock_path
from runner_fsm.exceptions import PipelineLocked
from runner_fsm.journal import GENESIS_HASH, read_records, record_hash
from tests.helpers import journal_records

pytestmark = pytest.mark.postgres

CLUSTER_USER = "postgres"


# -- the machine's server --------------------------------------------------------------------------


def count_rows(connection: Any, dataset: str, table: str) -> tuple[int, int]:
    """Return the number of rows and of distinct `i` values of `dataset.table`."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*), count(DISTINCT i) FROM "{dataset}"."{table}"')
        total, distinct = cursor.fetchone()
    return int(total), int(distinct)


# -- a throwaway cluster ---------------------------------------------------------------------------


def find_free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """A PostgreSQL cluster of one test, in a folder of its own under the system temp folder.

    The folder is not under tmp_path, because pytest makes that folder readable by root only.
    """

    def __init__(self, host_auth: str) -> None:
        self.initdb = shutil.which("initdb")
        self.pg_ctl = shutil.which("pg_ctl")
        self.root = Path(tempfile.mkdtemp(prefix="runner_fsm_pg_"))
        self.data = self.root / "data"
        self.port = find_free_port()
        self.host_auth = host_auth
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, CLUSTER_USER, CLUSTER_USER)
            self.as_user = [
                "setpriv", f"--reuid={CLUSTER_USER}", f"--regid={CLUSTER_USER}", "--init-groups"
            ]

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false")
        return subprocess.run(
            self.as_user + list(args), cwd=self.root, env=env, capture_output=True, text=True,
            timeout=60,
        )

    def _run_checked(self, *args: str) -> None:
        result = self._run(*args)
        if result.returncode != 0:
            log = self.root / "server.log"
            server_log = log.read_text() if log.exists() else ""
            raise AssertionError(f"{args[:2]} failed: {result.stderr}\n{server_log}")

    def create(self) -> None:
        assert self.initdb is not None
        self._run_checked(
            self.initdb, "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--locale=C",
            "--no-sync", "--auth-local=trust", f"--auth-host={self.host_auth}",
        )

    def start(self) -> None:
        assert self.pg_ctl is not None
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
            " -c shared_buffers=16MB -c max_connections=30"
        )
        self._run_checked(
            self.pg_ctl, "start", "-w", "-t", "30", "-D", str(self.data),
            "-l", str(self.root / "server.log"), "-o", options,
        )

    def stop(self, mode: str = "fast") -> None:
        assert self.pg_ctl is not None
        self._run_checked(self.pg_ctl, "stop", "-w", "-m", mode, "-D", str(self.data))

    def remove(self) -> None:
        """Stop the server if it runs, and remove the folder."""
        if self.pg_ctl is not None and (self.data / "postmaster.pid").exists():
            self._run(self.pg_ctl, "stop", "-w", "-m", "immediate", "-D", str(self.data))
        shutil.rmtree(self.root, ignore_errors=True)

    def connect(self) -> Any:
        """Return an autocommit superuser connection through the Unix socket (trust auth)."""
        connection = psycopg2.connect(
            host=str(self.root), port=self.port, user="postgres", dbname="postgres"
        )
        connection.autocommit = True
        return connection

    def dsn(self, user: str = "postgres", password: str = "unused") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/postgres"


def make_cluster(request: pytest.FixtureRequest, host_auth: str) -> Cluster:
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        if os.environ.get("CI"):
            pytest.fail("initdb and pg_ctl must be on PATH in CI")
        pytest.skip("initdb or pg_ctl is not on PATH")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(CLUSTER_USER)
        except KeyError:
            pytest.fail(
                f"PostgreSQL rejects running as root, and the OS user `{CLUSTER_USER}` to run it"
                " as is missing"
            )
    cluster = Cluster(host_auth)
    request.addfinalizer(cluster.remove)
    cluster.create()
    cluster.start()
    return cluster


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """A running throwaway cluster with trust authentication."""
    return make_cluster(request, "trust")


@pytest.fixture
def password_cluster(request: pytest.FixtureRequest) -> Cluster:
    """A running throwaway cluster that checks passwords on TCP (scram-sha-256)."""
    return make_cluster(request, "scram-sha-256")


@dlt.resource(table_name="numbers", primary_key="i", write_disposition="merge")
def numbers(start: int, stop: int) -> Any:
    yield from ({"i": i, "label": f"row {i}"} for i in range(start, stop))


# -- 1. a loader connection terminated during the load step ----------------------------------------


class BackendKiller(threading.Thread):
    """Terminate the first backend of `application_name` that waits on a lock, then free the lock.

    The lock holder blocks the loader's first write, so the loader is always caught inside the
    load step, whatever the speed of the machine.
    """

    def __init__(self, admin: Any, holder: Any, application_name: str) -> None:
        super().__init__(daemon=True)
        self.admin = admin
        self.holder = holder
        self.application_name = application_name
        self.terminated: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline and not self.terminated:
                with self.admin.cursor() as cursor:
                    cursor.execute(
                        "SELECT pid, query FROM pg_stat_activity WHERE application_name = %s"
                        " AND wait_event_type = 'Lock'",
                        (self.application_name,),
                    )
                    waiting = cursor.fetchall()
                    if waiting:
                        cursor.execute("SELECT pg_terminate_backend(%s)", (waiting[0][0],))
                        self.terminated.append(waiting[0][1])
                time.sleep(0.02)
        finally:
            self.holder.rollback()


class TestLoaderConnectionTerminated:
    def test_retried_and_loaded_once(
        self,
        admin: Any,
        dataset: str,
        postgres_dsn: str,
        tmp_path: Path,
        journal_dir: Path,
        clock: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A merge whose connection is terminated mid-load is retried and contains each key once."""
        # dlt retries a failed job inside the load step. This makes the step fail instead.
        monkeypatch.setenv("LOAD__RAISE_ON_MAX_RETRIES", "1")
        dsn = f"{postgres_dsn}?application_name={dataset}"
        pipeline = dlt.pipeline(
            dataset, destination=dlt.destinations.postgres(dsn), dataset_name=dataset,
            pipelines_dir=str(tmp_path / "pipelines"),
        )
        pipeline.run(numbers(0, 300))
        holder = psycopg2.connect(postgres_dsn)
        holder.cursor().execute(f'LOCK TABLE "{dataset}".numbers IN EXCLUSIVE MODE')
        killer = BackendKiller(admin, holder, dataset)
        killer.start()

        try:
            runner_fsm.runner(
                pipeline, retry_policy=runner_fsm.fixed(3), journal_dir=journal_dir, clock=clock
            ).run(numbers(0, 600))
        finally:
            killer.join(timeout=60)
            holder.close()

        records = journal_records(journal_dir, dataset)
        failures = [r for r in records if r.get("trigger") == "step_failed"]
        assert len(killer.terminated) == 1
        assert len(failures) == 1
        assert failures[0]["exception"]["step"] == "load"
        assert any(
            text in failures[0]["exception"]["message"]
            for text in ("server closed the connection", "terminating connection")
        )
        assert records[-1]["to"] == "done"
        assert records[-1]["summary"]["tries"]["attempt"] == 2
        assert count_rows(admin, dataset, "numbers") == (600, 600)


# -- 2. a server that is down for a few seconds ----------------------------------------------------


def count_failed_tries(journal: Path) -> int:
    """Count the failed tries in a journal that another thread may be writing."""
    if not journal.exists():
        return 0
    lines = read_records(journal)
    return sum(1 for line in lines if line.record and line.record.get("trigger") == "step_failed")


class TestServerDown:
    def test_backoff_waits_out_restart(
        self, cluster: Cluster, tmp_path: Path, journal_dir: Path, unique_name: str
    ) -> None:
        """A run that starts while the server is stopped loads its rows once the server is back."""
        pipeline = dlt.pipeline(
            unique_name, destination=dlt.destinations.postgres(cluster.dsn()),
            dataset_name=unique_name, pipelines_dir=str(tmp_path / "pipelines"),
        )
        pipeline.run(numbers(0, 10))
        cluster.stop()
        journal = journal_dir / f"{unique_name}.jsonl"
        restart_errors: list[BaseException] = []

        def restart_after_two_failures() -> None:
            deadline = time.monotonic() + 20
            while count_failed_tries(journal) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            try:
                cluster.start()
            except BaseException as ex:  # noqa: BLE001 - reported by the test's asserts
                restart_errors.append(ex)

        restarter = threading.Thread(target=restart_after_two_failures, daemon=True)
        policy = runner_fsm.backoff(max_attempts=6, multiplier=1, min=1, max=2)
        started = time.monotonic()
        restarter.start()

        try:
            runner_fsm.runner(pipeline, retry_policy=policy, journal_dir=journal_dir).run(
                numbers(10, 20)
            )
        finally:
            restarter.join(timeout=60)
        elapsed = time.monotonic() - started

        records = journal_records(journal_dir, unique_name)
        failures = [r for r in records if r.get("trigger") == "step_failed"]
        waits = [r for r in records if r["kind"] == "transition" and r["to"] == "waiting"]
        expected_waits = [min(max(1.0 * 2 ** (w["attempt"] - 1), 1.0), 2.0) for w in waits]
        connection = cluster.connect()
        try:
            rows = count_rows(connection, unique_name, "numbers")
        finally:
            connection.close()
        assert restart_errors == []
        assert records[-1]["to"] == "done"
        assert len(failures) >= 2
        assert {f["exception"]["step"] for f in failures} <= {"sync", "load"}
        assert "Connection refused" in failures[0]["exception"]["message"]
        assert "Connection refused" in failures[1]["exception"]["message"]
        assert len(waits) == len(failures)
        assert [w["wait_s"] for w in waits] == expected_waits
        assert all(r["completed"] for r in records if r.get("trigger") == "waited")
        assert elapsed >= sum(expected_waits)
        assert rows == (20, 20)


# -- 3. a password that the server rejects ---------------------------------------------------------


class TestWrongPassword:
    def test_one_try_and_no_password(
        self, password_cluster: Cluster, tmp_path: Path, journal_dir: Path, unique_name: str,
        clock: Any,
    ) -> None:
        """A rejected password fails at once, names the user, and the password shows nowhere."""
        user, password = "loader_faults", "wrong_pw_5e3f19a2"
        connection = password_cluster.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE ROLE {user} LOGIN PASSWORD 'right_pw_0b8c4d71'")
        finally:
            connection.close()
        destination = dlt.destinations.postgres(password_cluster.dsn(user, password))
        pipeline = dlt.pipeline(
            unique_name, destination=destination, dataset_name=unique_name,
            pipelines_dir=str(tmp_path / "pipelines"),
        )

        with pytest.raises(PipelineStepFailed) as raised:
            runner_fsm.runner(
                pipeline, retry_policy=runner_fsm.fixed(3), journal_dir=journal_dir, clock=clock
            ).run(numbers(0, 10))

        journal_text = (journal_dir / f"{unique_name}.jsonl").read_text()
        last = journal_records(journal_dir, unique_name)[-1]
        assert last["to"] == "failed"
        assert last["exception"]["terminal"] is True
        assert last["summary"]["tries"] == {"sync": 1}
        assert clock.sleeps == []
        assert f'password authentication failed for user "{user}"' in last["exception"]["message"]
        assert user in str(raised.value)
        assert password not in str(raised.value)
        assert password not in journal_text


# -- 4. three runners started at once --------------------------------------------------------------


def write_gated_project(root: Path, name: str, destination: str, rows: int, gate: Path) -> Path:
    """Write a project whose source stops halfway until the file `gate` exists."""
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "__init__.py").write_text("")
    (root / "sources" / "gated.py").write_text(
        textwrap.dedent(
            """
            import time
            from pathlib import Path

            import dlt

            @dlt.resource(table_name="numbers", write_disposition="append")
            def gated(rows: int, gate: str):
                for i in range(rows):
                    if i == rows // 2:
                        deadline = time.monotonic() + 120
                        while not Path(gate).exists():
                            if time.monotonic() > deadline:
                                raise TimeoutError(f"the gate file {gate} never appeared")
                            time.sleep(0.05)
                    yield {"i": i}
            """
        )
    )
    project = root / "dlt.yml"
    project.write_text(
        textwrap.dedent(
            f"""
            sources:
              gated:
                type: sources.gated.gated
                with_args: {{rows: {rows}, gate: "{gate}"}}
            destinations:
              warehouse:
                type: {destination}
            pipelines:
              {name}:
                source: gated
                destination: warehouse
                dataset_name: {name}
                run_config:
                  retry_policy: {{type: fixed, max_attempts: 2}}
            """
        )
    )
    return project


def make_cli_environment(credentials: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESTINATION__")}
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    if credentials is not None:
        env["DESTINATION__WAREHOUSE__CREDENTIALS"] = credentials
    return env


def check_chain(journal: Path, pid: int) -> None:
    """Check that `journal` contains one run of process `pid` with an unbroken hash chain."""
    lines = list(read_records(journal))
    records = [line.record for line in lines if line.record is not None]
    assert [line.error for line in lines] == [None] * len(lines)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert [r["prev"] for r in records] == [GENESIS_HASH] + [r["hash"] for r in records[:-1]]
    assert [r["hash"] for r in records] == [record_hash(r) for r in records]
    assert {r["run_id"] for r in records} == {records[0]["run_id"]}
    assert records[0]["pid"] == pid
    assert records[-1]["to"] == "done"


class TestThreeRunners:
    def test_one_runs_two_exit_3(
        self, admin: Any, dataset: str, postgres_dsn: str, tmp_path: Path
    ) -> None:
        """Of three runners started together, one loads and two exit 3 naming its process."""
        gate = tmp_path / "gate"
        project = write_gated_project(tmp_path / "project", dataset, "postgres", 2000, gate)
        # NOTE: the working folder exists before the race, as after any earlier run. In a new
        # folder the runners race inside dlt.pipeline() before the lock (see TestLockRaces).
        dlt.pipeline(dataset, pipelines_dir=str(project.parent / "_data" / "pipelines"))
        command = [sys.executable, "-m", "runner_fsm.cli", "run", str(project), dataset]
        outputs = [tmp_path / f"stderr_{n}.txt" for n in range(3)]

        runners = []
        for output in outputs:
            with open(output, "w") as stderr:
                runners.append(
                    subprocess.Popen(
                        command, env=make_cli_environment(postgres_dsn), cwd=project.parent,
                        stdout=subprocess.DEVNULL, stderr=stderr,
                    )
                )
        started = time.monotonic()
        # the source waits at the gate, so a runner that ends before the gate opens was rejected
        ended_at_gate: dict[int, float] = {}
        try:
            while len(ended_at_gate) < 2 and time.monotonic() < started + 60:
                for process in runners:
                    if process.pid not in ended_at_gate and process.poll() is not None:
                        ended_at_gate[process.pid] = time.monotonic() - started
                time.sleep(0.05)
            gate.touch()
            for process in runners:
                process.wait(timeout=120)
        finally:
            gate.touch()
            for process in runners:
                if process.poll() is None:
                    process.kill()
                    process.wait()

        codes = [process.returncode for process in runners]
        assert sorted(codes) == [0, 3, 3]
        winner = runners[codes.index(0)]
        for n in (n for n, code in enumerate(codes) if code == 3):
            assert runners[n].pid in ended_at_gate
            assert ended_at_gate[runners[n].pid] < 30
            assert f"process {winner.pid}" in outputs[n].read_text()
        assert winner.pid not in ended_at_gate
        assert count_rows(admin, dataset, "numbers") == (2000, 2000)
        check_chain(project.parent / "_data" / "journal" / f"{dataset}.jsonl", winner.pid)


# -- lock races that the three runners can hit -----------------------------------------------------


LOCK_WON, LOCK_REJECTED_NAMED, LOCK_REJECTED_NAMELESS = 0, 3, 4


def contend_for_lock(path: Path, start_at: float) -> int:
    """Fork a process that takes the lock at monotonic time `start_at`; return its pid.

    The process exits with LOCK_WON, LOCK_REJECTED_NAMED or LOCK_REJECTED_NAMELESS.
    """
    pid = os.fork()
    if pid != 0:
        return pid
    code = LOCK_REJECTED_NAMELESS
    try:
        while time.monotonic() < start_at:
            pass
        try:
            PipelineLock(path, "contended").acquire()
            time.sleep(0.02)
            code = LOCK_WON
        except PipelineLocked as ex:
            code = LOCK_REJECTED_NAMED if ex.holder_pid else LOCK_REJECTED_NAMELESS
    finally:
        os._exit(code)


class TestLockRaces:
    def test_rejected_runner_keeps_folder(self, tmp_path: Path, unique_name: str) -> None:
        """A runner rejected by the lock leaves the holder's new working folder untouched."""
        gate = tmp_path / "gate"
        project = write_gated_project(tmp_path / "project", unique_name, "duckdb", 10, gate)
        journal_dir = project.parent / "_data" / "journal"
        holder = PipelineLock(lock_path(journal_dir, unique_name), unique_name)
        holder.acquire()
        # the holder plays a first run inside dlt.pipeline(), whose folder has no state.json yet
        schemas = project.parent / "_data" / "pipelines" / unique_name / "schemas"
        schemas.mkdir(parents=True)
        (schemas / "holder.txt").write_text("written by the lock holder")

        try:
            result = subprocess.run(
                [sys.executable, "-m", "runner_fsm.cli", "run", str(project), unique_name],
                env=make_cli_environment(None),
                cwd=project.parent,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            holder.release()

        assert result.returncode == 3, result.stderr
        assert (schemas / "holder.txt").exists()

    def test_rejection_names_holder(self, tmp_path: Path) -> None:
        """Runners that take one lock at the same instant name the holder whenever rejected."""
        outcomes: list[int] = []
        deadline = time.monotonic() + 10

        while LOCK_REJECTED_NAMELESS not in outcomes and time.monotonic() < deadline:
            path = tmp_path / f"round_{len(outcomes)}.lock"
            start_at = time.monotonic() + 0.05
            pids = [contend_for_lock(path, start_at) for _ in range(3)]
            for pid in pids:
                outcomes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))

        assert set(outcomes) <= {LOCK_WON, LOCK_REJECTED_NAMED, LOCK_REJECTED_NAMELESS}
        assert outcomes.count(LOCK_REJECTED_NAMELESS) == 0
