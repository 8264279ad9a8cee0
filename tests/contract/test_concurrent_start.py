"""Processes started at the same moment on a new database all come up (issue 20): the migrations run
once under a database-wide lock, and the rows written once at start-up (the operator key, the secret's
fingerprint) are inserted with ON CONFLICT DO NOTHING and read back, so exactly one of them wins.

`tollway serve --workers N` itself: tests/contract/test_workers.py.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.contract.servers import CONTRACT_SECRET, REPO, Tollway, postgres_database, start_tollway
from tests.support.databases import query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
OPERATOR_LINE = re.compile(r"Operator key \(shown once, keep it safe\): (\S+)")


def start_together(tmp: Path, fake: ServerProcess, database_url: str, count: int) -> list[ServerProcess]:
    """`count` servers launched at once (each in its own directory); all of them, once all are ready.

    No TOLLWAY_OPERATOR_KEY: each process then tries to create the operator key in the database."""
    dirs = [tmp / f"s{i}" for i in range(count)]
    for path in dirs:
        path.mkdir()
    # One secret for all (with SQLite each would otherwise make its own in its own data directory).
    env = {"TOLLWAY_OPERATOR_KEY": "", "TOLLWAY_LOG_LEVEL": "info", "TOLLWAY_SECRET": CONTRACT_SECRET}
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(start_tollway, path, fake.base_url, database_url, env) for path in dirs]
        done = []
        errors = []
        for future in futures:
            try:
                done.append(future.result())
            except Exception as exc:  # every server is stopped below, ready or not
                errors.append(exc)
    if errors:
        for server in done:
            server.stop()
        raise errors[0]
    return done


def check_one_operator_key(servers: list[ServerProcess], database_url: str) -> None:
    printed = [key for s in servers for key in OPERATOR_LINE.findall(s.log_text())]
    assert len(printed) == 1, f"the operator key must be created (and shown) once: {printed}"
    [(count,)] = query(database_url, "select count(*) from server_state where name = 'operator_key_hash'")
    assert count == 1
    for server in servers:  # the key shown is the one in the database, for every process
        tollway = Tollway(server, database_url, "")
        response = httpx2.get(
            f"{tollway.url}/v1/admin/accounts/acct_none", headers={"authorization": f"Bearer {printed[0]}"}
        )
        assert response.status_code == 404, response.text  # the operator, asking for no such account


def test_two_servers_started_at_once_on_a_new_postgresql_database_both_come_up(
    tmp_path: Path, own_fake: ServerProcess
) -> None:
    database_url = postgres_database()
    servers = start_together(tmp_path, own_fake, database_url, 2)
    try:
        check_one_operator_key(servers, database_url)
        [(fingerprints,)] = query(
            database_url, "select count(*) from server_state where name = 'secret_fingerprint'"
        )
        assert fingerprints == 1
        [(version,)] = query(database_url, "select count(*) from alembic_version")
        assert version == 1
    finally:
        for server in servers:
            server.stop()


def test_two_servers_started_at_once_on_a_new_sqlite_file_both_come_up(
    tmp_path: Path, own_fake: ServerProcess
) -> None:
    database_url = f"sqlite:///{tmp_path}/shared.db"
    servers = start_together(tmp_path, own_fake, database_url, 2)
    try:
        check_one_operator_key(servers, database_url)
        [(version,)] = query(database_url, "select count(*) from alembic_version")
        assert version == 1
    finally:
        for server in servers:
            server.stop()


# Imports first (their time varies), then wait for the same instant: the start-up work itself races.
AT_ONCE = (
    "import sys, time\n"
    "from tollway.cli import app\n"
    "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
    "app(['init', '--json'])\n"
)
PROCESSES = 6  # enough that, before the migration lock, most runs failed on PostgreSQL


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_processes_initialising_a_new_database_at_the_same_instant(backend: str, tmp_path: Path) -> None:
    """`tollway init` does what `serve` does first: migrate, record the secret, create the operator key."""
    database_url = postgres_database() if backend == "postgresql" else f"sqlite:///{tmp_path}/new.db"
    env = {
        **os.environ,
        "TOLLWAY_DATABASE_URL": database_url,
        "TOLLWAY_SECRET": CONTRACT_SECRET,
        "TOLLWAY_DATA_DIR": str(tmp_path / "data"),
        "TOLLWAY_OPERATOR_KEY": "",
    }
    start = time.time() + 10  # after every interpreter has imported Tollway, on a busy machine too
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", AT_ONCE, str(start)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outcomes = [p.communicate(timeout=120) for p in processes]
    for process, (_, err) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, err[-3000:]
    created = [json.loads(out)["operator_key"] for out, _ in outcomes]
    assert len([key for key in created if key]) == 1, created
    [(count,)] = query(database_url, "select count(*) from server_state")
    assert count == 2  # the operator key and the secret's fingerprint, once each
    [(version,)] = query(database_url, "select count(*) from alembic_version")
    assert version == 1
