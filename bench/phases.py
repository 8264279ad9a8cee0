"""Where a single call's time goes (issue 20: the added latency at c=1).

    python bench/phases.py [--duration 10] [--stores sqlite postgresql]

One fake upstream (bench/upstream.py, 10 ms), measured alone (`direct`) and through the bare aiohttp
relay (`passthrough-aiohttp`) at concurrency 1, then Tollway on each store (PostgreSQL with Redis, as
`tollway-pg`) run by bench/phase_server.py, which times each phase of every call on the server's own
clock. Prints, per store, each phase's mean wall time per call, and what is left outside the timed
phases (HTTP parsing, routing, the chat plan, rendering, the access log). After each run the server is
stopped and its money checked (bench/money_check.py); exits 1 if it is not exact.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from money_check import stop_and_check
from phase_server import CHAT, IN_TURN, PHASES
from systems import HERE, System, measure, prime, start_passthrough, start_tollway_on, start_upstream, stop


def p50(result: dict[str, Any]) -> float:
    return float(result["latency_ms"]["p50"])


def phases_of(stats: dict[str, list[float]]) -> list[tuple[str, float]]:
    """(label, mean ms per chat call), the whole call first."""
    calls = stats[CHAT][0]
    labels = [CHAT, *(label for *_, label in PHASES)]
    return [(label, stats[label][1] / calls * 1000) for label in labels if label in stats]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tollway-phases-"))
    upstream = start_upstream(tmp, "--latency-ms", "10")
    exact = True
    try:
        direct = measure(System("direct", upstream.base_url), 1, False, args.duration, 1)
        relay = start_passthrough(upstream.base_url, tmp, "aiohttp")
        try:
            prime(relay)
            passthrough = measure(relay, 1, False, args.duration, 1)
        finally:
            stop(relay)
        print(f"c=1 p50: direct {p50(direct):.2f} ms, passthrough-aiohttp {p50(passthrough):.2f} ms\n")
        for store in args.stores:
            out = tmp / f"{store}.json"
            launcher = [sys.executable, str(HERE / "phase_server.py"), str(out)]
            system = start_tollway_on(
                f"tollway-{store}", upstream.base_url, tmp, store == "postgresql", None, launcher
            )
            prime(system)
            result = measure(system, 1, False, args.duration, 1)
            check = stop_and_check(system)
            exact = exact and bool(check["ok"])
            stats = json.loads(out.read_text())
            rows = phases_of(stats)
            whole = rows[0][1]
            print(
                f"### {store}: p50 {p50(result):.2f} ms ({p50(result) - p50(passthrough):+.2f} over the relay), "
                f"{stats[CHAT][0]} calls, money {'exact' if check['ok'] else check['problems']}\n"
            )
            print("| phase | mean ms per call | share of the call |\n| --- | ---: | ---: |")
            for label, ms in rows:
                print(f"| {label} | {ms:.3f} | {ms / whole:.0%} |")
            timed = sum(ms for label, ms in rows if label in IN_TURN)
            print(f"| outside the timed phases | {whole - timed:.3f} | {(whole - timed) / whole:.0%} |\n")
    finally:
        stop(upstream)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
