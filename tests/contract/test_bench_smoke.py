"""The benchmark harnesses themselves run (bench/run.py, `make bench`; bench/streams.py; bench/money_path.py):
a tiny run of the upstream, the pass-through proxy and Tollway on SQLite (with and without budget leases), and
the shape of the JSON they write. Numbers are not checked. Then the money check (bench/money_check.py) against
databases whose money Tollway's own ledger moved, with one kind of damage planted in each copy."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.databases import create_postgres_database, drop_postgres_database, query
from tollway.core.access.accounts import Accounts
from tollway.core.money.ledger import Ledger
from tollway.store.db import create_engine
from tollway.store.migrate import upgrade_async

REPO = Path(__file__).resolve().parents[2]
SYSTEMS = ["direct", "passthrough", "passthrough-aiohttp", "tollway-sqlite", "tollway-sqlite-leases"]


def bench(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A module of bench/ (not a package: its modules import each other by their plain names)."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_harness_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--mode", "smoke", "--systems", *SYSTEMS,
         "--concurrency", "2", "--duration", "0.6", "--no-plot", "--out-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    [result_file] = tmp_path.glob("*.json")
    result = json.loads(result_file.read_text())

    assert set(result) >= {"meta", "systems", "skipped", "runs", "summary", "ratios", "rss_mib", "checks"}
    assert result["meta"]["concurrency"] == [2] and len(result["meta"]["load_before"]) == 3
    assert result["skipped"] == {}, result["skipped"]
    for name in SYSTEMS:
        runs = result["runs"][name]
        assert {(r["stream"], r["concurrency"]) for r in runs} == {(False, 2), (True, 2)}
        for run in runs:
            assert run["requests"] > 0 and run["errors"] == 0, run
            assert set(run["latency_ms"]) >= {"p50", "p95", "p99"} and run["rps"] > 0
            if run["stream"]:
                assert run["ttfb_ms"]["p50"] is not None
        summary = result["summary"][name]
        assert summary["max_rps"]["buffered"] > 0 and summary["max_rps"]["stream"] > 0
        if name != "direct":
            assert set(summary["overhead_ms"]) == {"buffered@2", "stream@2"}
            assert set(summary["ttfb_overhead_ms"]) == {"stream@2"}
            assert result["rss_mib"][name] > 0
    # Stopped, its database says: nothing held, every balance its ledger, one settlement per charged call.
    for name in ("tollway-sqlite", "tollway-sqlite-leases"):
        check = result["checks"][name]
        assert check["ok"] and check["graceful"] and check["problems"] == {}, check
        assert check["charged usage rows"] == check["settle entries"] > 0
        assert f"- {name}: exact (" in done.stdout
    leased = result["checks"]["tollway-sqlite-leases"]
    assert leased["leases taken"] > 0 and 0 < leased["paid from leases nano"] <= leased["charged nano"]
    assert leased["leased nano"] == leased["paid from leases nano"] + leased["returned nano"]
    assert result["checks"]["tollway-sqlite"]["leases taken"] == 0
    assert "tollway-sqlite/passthrough max RPS buffered" in result["ratios"]
    assert "tollway-sqlite/passthrough-aiohttp max RPS stream" in result["ratios"]
    assert "tollway-sqlite-leases/tollway-sqlite max RPS stream" in result["ratios"]
    assert "| tollway-sqlite | buffered | 2 |" in done.stdout
    assert "| tollway-sqlite-leases | stream | 2 |" in done.stdout

    # The same run with one damage in the leased server's database: failed, in the report, with what was off.
    money, report = bench("money_check", monkeypatch), bench("report", monkeypatch)
    damaged = tmp_path / "damaged.db"
    lease = TAMPERING["an extra lease entry"][0].replace(f"name = '{LEASED}'", "name = 'bench'")
    plant(Path(leased["database"].split("///", 1)[1]), damaged, lease)
    result["checks"]["tollway-sqlite-leases"] = {**leased, **money.money_check(f"sqlite:///{damaged}")}
    assert set(money.failures(result["checks"])) == {"tollway-sqlite-leases"}
    text = report.markdown(result)
    assert "- tollway-sqlite: exact (" in text
    assert (
        "- tollway-sqlite-leases: **FAILED**: accounts whose reserved is not the sum of their ledger's reserved "
        "deltas: 1; nano-USD of reserved deltas left over the whole ledger: 1; "
        "nano-USD by which leases taken, returned and paid from do not net to 0: 1 ("
    ) in text


@pytest.mark.slow
def test_streams_bench_smoke(tmp_path: Path) -> None:
    """bench/streams.py end to end at toy sizes: stall rows, a soak with every kind of call, RSS samples, a
    graceful stop and a clean money check."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "streams.py"), "--systems", "tollway", "--levels", "4",
         "--duration", "1", "--chunks", "5", "--cadence-ms", "20", "--soak-seconds", "4", "--sample-every", "1",
         "--soak-concurrency", "4", "--slow-chunks", "40", "--soak-tokens-per-s", "400",
         "--out-dir", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    [result_file] = (tmp_path / "out").glob("*.json")
    result = json.loads(result_file.read_text())

    [row] = result["stalls"]["runs"]["tollway-sqlite"]
    assert row["concurrency"] == 4 and row["streams"] > 0 and row["failed"] == 0, row
    assert 0 <= row["stall_free"] <= row["streams"] and row["extra_gap_ms"]["max"] is not None
    assert (
        result["stalls"]["checks"]["tollway-sqlite"]["ok"]
        and result["stalls"]["checks"]["tollway-sqlite"]["graceful"]
    )
    soak = result["soak"]
    assert soak["load"]["errors"] == 0 and set(soak["load"]["calls"]) == {
        "buffered",
        "stream",
        "slow",
        "cancel",
    }
    assert soak["rss"]["warm_mib"] > 0 and soak["rss"]["ratio"] is not None
    check = soak["check"]
    assert check["ok"] and check["graceful"] and check["problems"] == {}
    assert check["usage rows"] >= sum(soak["load"]["calls"].values()) - soak["load"]["calls"]["cancel"]
    assert result["money_ok"] is True and "| tollway-sqlite | 4 |" in done.stdout


@pytest.mark.slow
def test_money_path_smoke_checks_its_money_with_and_without_leases() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "money_path.py"), "--calls", "60", "--concurrency", "4",
         "--leases", "both"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    assert {(r["db"], r["leases"]) for r in results} == {
        (db, leases) for db in ("sqlite", "postgresql") for leases in (False, True)
    }
    for result in results:
        check = result["check"]
        assert check["ok"] and check["problems"] == {}, result
        assert check["charged usage rows"] == check["settle entries"] == 60
        if result["leases"]:
            assert check["per-call holds"] == 0 and check["leases taken"] > 0
            assert check["paid from leases nano"] == check["charged nano"] == 60 * 20_000
        else:
            assert check["per-call holds"] == 60 and check["leases taken"] == 0
    assert done.stdout.count("money exact") == 4


HOLD, COST = 50_000, 10_000
R = "accounts with money reserved"
BALANCE = "accounts whose balance is not the sum of their ledger"
RESERVED = "accounts whose reserved is not the sum of their ledger's reserved deltas"
ALL = "nano-USD of reserved deltas left over the whole ledger"
HOLDS = "per-call holds whose reserve, settle and release entries do not net to 0"
LEASES = "nano-USD by which leases taken, returned and paid from do not net to 0"
USAGE = "charged usage rows without exactly one settle entry of their cost"
SETTLE = "settle entries without a usage row of their charge"
SUM = "nano-USD by which usage costs are not the settled charges"
ENTRY = "insert into ledger (account_id, kind, amount_nano, reserved_delta_nano, reference, created_at) "
LEASED = "leased"  # the accounts spend() makes: one whose calls are carved from leases, one of per-call holds
PER_CALL = "per-call"
NO_RESERVE = (
    "not exists (select 1 from ledger r where r.account_id = l.account_id and r.reference = l.reference "
    "and r.kind = 'reserve')"
)
# Damage planted in a database whose money is exact, and every check (bench/money_check.py) it must trip.
TAMPERING: dict[str, tuple[str, set[str]]] = {
    "money left reserved": (
        f"update accounts set reserved_nano = reserved_nano + 1 where name = '{LEASED}'", {R, RESERVED}),
    "a reservation left": (
        "insert into reservations (id, account_id, amount_nano, expires_at) "
        f"select 'req_left_over', id, 0, '2030-01-01 00:00:00' from accounts where name = '{PER_CALL}'",
        {"open reservations"}),
    "a budget lease left": (
        "insert into budget_leases (id, account_id, owner, amount_nano, consumed_nano, expires_at, created_at) "
        "select 'lease_left_over', id, 'bench', 0, 0, '2030-01-01 00:00:00', '2030-01-01 00:00:00' "
        f"from accounts where name = '{LEASED}'", {"open budget leases"}),
    "a balance off its ledger": (
        f"update accounts set balance_nano = balance_nano - 1 where name = '{PER_CALL}'", {BALANCE}),
    "an extra lease entry": (
        ENTRY + f"select id, 'lease', 0, 1, 'lease_planted', '2030-01-01' from accounts where name = '{LEASED}'",
        {RESERVED, ALL, LEASES}),
    "a return of no lease": (
        ENTRY + f"select id, 'unlease', 0, -1, 'lease_nowhere/end', '2030-01-01' from accounts "
        f"where name = '{LEASED}'", {RESERVED, ALL, LEASES, "returns of no lease taken"}),
    "a lease returned past its amount": (
        "update ledger set reserved_delta_nano = reserved_delta_nano - "
        "(select max(reserved_delta_nano) from ledger where kind = 'lease') "
        "where id = (select min(id) from ledger where kind = 'unlease')",
        {RESERVED, ALL, LEASES, "leases that returned more than they took"}),
    "a leased settlement that freed more than it charged": (
        "update ledger set reserved_delta_nano = amount_nano - 1 where id = "
        f"(select min(id) from ledger l where kind = 'settle' and amount_nano < 0 and {NO_RESERVE})",
        {RESERVED, ALL, LEASES, "leased settlements that freed more than they charged"}),
    "a per-call settlement that kept its hold": (
        "update ledger set reserved_delta_nano = reserved_delta_nano + 1 where id = "
        f"(select min(id) from ledger l where kind = 'settle' and not {NO_RESERVE})", {RESERVED, ALL, HOLDS}),
    "a credit that moved reserved": (
        ENTRY + f"select id, 'credit', 0, 1, 'credit_planted', '2030-01-01' from accounts where name = '{PER_CALL}'",
        {RESERVED, ALL, "reserved deltas of no hold and no lease"}),
    "a settle entry lost": (
        "delete from ledger where id = (select max(id) from ledger where kind = 'settle' and account_id = "
        f"(select id from accounts where name = '{PER_CALL}'))", {BALANCE, RESERVED, ALL, HOLDS, USAGE, SUM}),
    "a charge settled again in another account": (
        ENTRY + f"select (select id from accounts where name = '{PER_CALL}'), 'settle', amount_nano, 0, "
        "reference, created_at from ledger where id = (select min(id) from ledger where kind = 'settle' "
        f"and amount_nano < 0 and account_id = (select id from accounts where name = '{LEASED}'))",
        {BALANCE, SETTLE, SUM}),
    "a settle entry of no call": (
        ENTRY + f"select id, 'settle', 0, 0, 'req_no_call', '2030-01-01' from accounts where name = '{LEASED}'",
        {SETTLE}),
    "a usage row's cost changed": (
        "update usage set cost_nano = cost_nano + 1 where request_id = "
        "(select min(request_id) from usage where cost_nano > 0)", {USAGE, SETTLE, SUM}),
}  # fmt: skip


async def spend(url: str, usage_row: Any) -> None:
    """Money moved by Tollway's own ledger: concurrent calls carved from budget leases (which retire, trim
    and end as they run short) in one account, per-call holds in another; a fifth of each released unpaid."""
    await upgrade_async(url)
    engine = create_engine(url)
    leased, plain = Ledger(engine, budget_leases=True), Ledger(engine)
    try:

        async def finish(ledger: Ledger, account_id: str, request_id: str, n: int) -> None:
            if n % 5 == 4:
                await ledger.release(request_id, usage_row(request_id, account_id))
            else:
                await ledger.settle(account_id, request_id, COST + n, usage_row(request_id, account_id))

        for name, ledger in ((LEASED, leased), (PER_CALL, plain)):
            account = await Accounts(engine, plain).create(name, credit_nano=10**9)
            calls = [(f"req_{uuid.uuid4().hex}", n) for n in range(40)]
            # All in flight at once, of uneven sizes: a lease's room runs short while its calls still hold.
            await asyncio.gather(*(ledger.reserve(account.id, r, HOLD + 1_000 * n) for r, n in calls))
            await asyncio.gather(*(finish(ledger, account.id, r, n) for r, n in calls))
    finally:
        await leased.aclose()
        await plain.aclose()
        await engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def spent(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The plain URL of a database spend() moved money in."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        usage_row = bench("money_path", monkeypatch).usage_row
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('spent')}/spent.db"
        asyncio.run(spend(url.replace("sqlite://", "sqlite+aiosqlite://"), usage_row))
        yield url
        return
    url = create_postgres_database("bench_money_check")
    try:
        asyncio.run(spend(url.replace("postgresql://", "postgresql+asyncpg://"), usage_row))
        yield url
    finally:
        drop_postgres_database(url)


def plant(source: Path, copy: Path, statement: str) -> None:
    with contextlib.closing(sqlite3.connect(source)) as conn, contextlib.closing(sqlite3.connect(copy)) as to:
        conn.backup(to)
        to.execute(statement)
        to.commit()


@pytest.mark.slow
def test_money_check_passes_the_money_as_the_ledger_left_it(
    spent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = bench("money_check", monkeypatch).money_check(spent)
    assert check["ok"] and check["problems"] == {}, check
    # What the damage below needs is there: leases trimmed as they retired and ended, both kinds of settlement.
    kinds = {row[0]: row[1] for row in query(spent, "select kind, count(*) from ledger group by kind")}
    assert kinds["reserve"] == 40 and kinds["release"] == 8 and kinds["settle"] == 64 and kinds["lease"] > 1
    returns = [row[0] for row in query(spent, "select reference from ledger where kind = 'unlease'")]
    # Trimmed at retirement, then each call's unspent hold (by request id) and the rest at the end.
    suffixes = {reference.rsplit("/", 1)[1] for reference in returns}
    assert {"trim", "end"} <= suffixes and all(s.startswith("req_") for s in suffixes - {"trim", "end"})
    assert check["usage rows"] == 80 and check["charged usage rows"] == 64 == check["settle entries"]
    assert check["charged nano"] == 2 * sum(COST + n for n in range(40) if n % 5 != 4)
    assert check["paid from leases nano"] == check["charged nano"] // 2
    assert check["leased nano"] == check["paid from leases nano"] + check["returned nano"]


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(TAMPERING))
def test_money_check_reports_planted_damage(
    spent: str, damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statement, expected = TAMPERING[damage]
    if spent.startswith("sqlite"):
        copy = tmp_path / "damaged.db"
        plant(Path(spent.split("///", 1)[1]), copy, statement)
        url = f"sqlite:///{copy}"
    else:
        url = create_postgres_database("bench_damaged", template=spent)
        query(url, statement)
    try:
        found = bench("money_check", monkeypatch).money_check(url)
    finally:
        if url.startswith("postgresql"):
            drop_postgres_database(url)
    assert not found["ok"] and set(found["problems"]) == expected, found
