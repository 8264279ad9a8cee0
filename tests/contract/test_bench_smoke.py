"""The benchmark harnesses themselves run (bench/run.py, `make bench`; bench/streams.py): a tiny run of the
upstream, the pass-through proxy and Tollway on SQLite, and the shape of the JSON they write. Numbers are not
checked."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMS = ["direct", "passthrough", "tollway-sqlite"]


@pytest.mark.slow
def test_bench_harness_smoke(tmp_path: Path) -> None:
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
    check = result["checks"]["tollway-sqlite"]
    assert check["ok"] and check["graceful"] and check["problems"] == {}, check
    assert check["charged usage rows"] == check["settle entries"] > 0
    assert "- tollway-sqlite: exact (" in done.stdout
    assert "tollway-sqlite/passthrough max RPS buffered" in result["ratios"]
    assert "| tollway-sqlite | buffered | 2 |" in done.stdout


# One tampering per money check, and the check it must trip (bench/money_check.py MONEY_CHECKS).
TAMPERING = {
    "accounts with money reserved": "update accounts set reserved_nano = 1 where name = 'bench'",
    "open reservations": "insert into reservations (id, account_id, amount_nano, expires_at) "
    "select 'req_left_over', id, 0, '2030-01-01 00:00:00' from accounts where name = 'bench'",
    "accounts whose balance is not the sum of their ledger": "update accounts set balance_nano = "
    "balance_nano - 1 where name = 'bench'",
    "charged usage rows without exactly one settle entry of their cost": "delete from ledger where id = "
    "(select max(id) from ledger where kind = 'settle')",
    "accounts whose reserved is not the sum of their ledger's reserved deltas": "insert into ledger "
    "(account_id, kind, amount_nano, reserved_delta_nano, reference, created_at) "
    "select id, 'lease', 0, 1, 'lease_planted', '2030-01-01 00:00:00' from accounts where name = 'bench'",
}


@pytest.mark.slow
def test_streams_bench_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/streams.py end to end at toy sizes: stall rows, a soak with every kind of call, RSS samples, a
    graceful stop and a clean money check; then the money check trips on each kind of damage to that database."""
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

    monkeypatch.syspath_prepend(str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location("bench_money_check", REPO / "bench" / "money_check.py")
    assert spec is not None and spec.loader is not None
    money = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(money)
    database = Path(check["database"].split("///", 1)[1])
    assert money.money_check(check["database"])["ok"]
    for expected, statement in TAMPERING.items():
        copy = tmp_path / f"{len(expected)}.db"
        with (
            contextlib.closing(sqlite3.connect(database)) as source,
            contextlib.closing(sqlite3.connect(copy)) as to,
        ):
            source.backup(to)
            to.execute(statement)
            to.commit()
        found = money.money_check(f"sqlite:///{copy}")
        assert not found["ok"] and found["problems"].get(expected) == 1, (expected, found)
