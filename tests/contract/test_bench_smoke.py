"""The benchmark harness itself runs (bench/run.py, `make bench`): a tiny run of the upstream, the
pass-through proxy and Tollway on SQLite, and the shape of the JSON it writes. Numbers are not checked."""

from __future__ import annotations

import json
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
    # every call was settled or released: nothing stays reserved
    assert float(result["checks"]["tollway-sqlite"]["reserved_usd"]) == 0
    assert "tollway-sqlite/passthrough max RPS buffered" in result["ratios"]
    assert "| tollway-sqlite | buffered | 2 |" in done.stdout
