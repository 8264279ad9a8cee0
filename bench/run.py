"""Gateway overhead and throughput, Tollway side by side with a pass-through proxy and LiteLLM, in one run.

    python bench/run.py --mode quick|full|smoke [--systems direct passthrough tollway-sqlite ...]
                        [--duration S] [--concurrency 1 16 64] [--out-dir bench/results] [--doc docs/benchmarks.md]

One fake upstream (bench/upstream.py) serves every system. Systems, each one server process:
  direct            the upstream itself (the floor)
  passthrough       bench/passthrough.py: Starlette + httpx2's own pool, no auth, no billing (the Python ceiling)
  passthrough-aiohttp  the same relay on aiohttp's pool, as Tollway's upstream calls are (the higher ceiling)
  tollway-sqlite    `tollway serve` on SQLite: keys, rate limits, reservation, settlement
  tollway-pg        `tollway serve` on PostgreSQL + Redis (a fresh database on 127.0.0.1:5432)
  tollway-*-leases  the same with budget leases on (TOLLWAY_BUDGET_LEASES, core/money/leases.py)
  tollway-pg-2workers  `tollway serve --workers 2` on PostgreSQL + Redis (TOLLWAY_WORKERS=2)
  litellm-pg        LiteLLM proxy with a virtual key and spend tracking on PostgreSQL (its own database)
  litellm-nodb      LiteLLM proxy with the master key and no database
LiteLLM runs from bench/.venv-litellm (`make bench-venv`); when it is missing or fails to start, its rows say
why and the run goes on. For each concurrency level and mode (buffered, stream), the systems take turns, so
drift in the machine's load falls on all of them alike. bench/load.py drives each measurement in its own
process. Writes <out-dir>/<date>-<host>.json, and with --doc the generated tables in that Markdown file
(between the `bench:begin`/`bench:end` markers) and a PNG plot next to the JSON. Each Tollway is then stopped
and its money checked from its database (bench/money_check.py); the run exits 1 when it is not exact.
bench/systems.py starts and measures the systems; bench/report.py turns the results into tables and the plot.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from money_check import failures, stop_and_check
from report import markdown, plot, ratios, summarise, write_doc
from systems import (
    ALL_SYSTEMS,
    HERE,
    TOLLWAY_SYSTEMS,
    System,
    litellm_missing,
    measure,
    prime,
    rss_mib,
    skip_reason,
    start_litellm,
    start_passthrough,
    start_tollway_on,
    start_upstream,
    stop,
)

MODES: dict[str, dict[str, Any]] = {
    "smoke": {
        "concurrency": [1, 4],
        "duration": 1.0,
        "warmup": 0.3,
        "systems": ["direct", "passthrough", "tollway-sqlite"],
    },
    "quick": {"concurrency": [1, 16, 64], "duration": 4.0, "warmup": 1.0, "systems": ALL_SYSTEMS},
    "full": {"concurrency": [1, 16, 64, 256], "duration": 15.0, "warmup": 2.0, "systems": ALL_SYSTEMS},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--systems", nargs="+", choices=ALL_SYSTEMS)
    parser.add_argument("--concurrency", type=int, nargs="+")
    parser.add_argument("--duration", type=float)
    parser.add_argument("--streams", choices=["both", "buffered", "stream"], default="both")
    parser.add_argument("--latency-ms", type=float, default=10.0, help="upstream: buffered answer delay")
    parser.add_argument("--ttft-ms", type=float, default=10.0, help="upstream: time to first chunk")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--tokens-per-s", type=float, default=500.0)
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument("--doc", type=Path, help="Markdown file whose generated section is replaced")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    preset = MODES[args.mode]
    systems = args.systems or preset["systems"]
    levels = args.concurrency or preset["concurrency"]
    duration = args.duration or preset["duration"]
    warmup = preset["warmup"]
    stream_modes = {"both": [False, True], "buffered": [False], "stream": [True]}[args.streams]
    started = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {
        "meta": {
            "started": started.isoformat(timespec="seconds"),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "mode": args.mode,
            "duration_s": duration,
            "warmup_s": warmup,
            "concurrency": levels,
            "load_before": [round(x, 2) for x in os.getloadavg()],
            "upstream": f"buffered {args.latency_ms} ms; stream TTFT {args.ttft_ms} ms, {args.chunks} chunks at "
            f"{args.tokens_per_s} tokens/s",
            "server_processes": 1,
        },
        "systems": systems,
        "skipped": {},
        "runs": {},
        "rss_mib": {},
        "checks": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="tollway-bench-"))
    upstream = start_upstream(
        tmp,
        *("--latency-ms", str(args.latency_ms), "--ttft-ms", str(args.ttft_ms)),
        *("--chunks", str(args.chunks), "--tokens-per-s", str(args.tokens_per_s)),
    )
    running: dict[str, System] = {}
    try:
        for name in systems:
            print(f"starting {name} ...", file=sys.stderr, flush=True)
            try:
                if name == "direct":
                    running[name] = System("direct", upstream.base_url, proc=None)
                elif name == "passthrough":
                    running[name] = start_passthrough(upstream.base_url, tmp)
                elif name == "passthrough-aiohttp":
                    running[name] = start_passthrough(upstream.base_url, tmp, client="aiohttp")
                elif name in TOLLWAY_SYSTEMS:
                    postgres, extra = TOLLWAY_SYSTEMS[name]
                    running[name] = start_tollway_on(name, upstream.base_url, tmp, postgres, extra)
                elif name.startswith("litellm"):
                    missing = litellm_missing()
                    if missing:
                        raise RuntimeError(missing)
                    running[name] = start_litellm(name, upstream.base_url, tmp, with_db=name == "litellm-pg")
            except Exception as exc:  # one system that cannot run must not sink the others
                results["skipped"][name] = skip_reason(exc)
                print(f"  skipped {name}: {results['skipped'][name]}", file=sys.stderr, flush=True)
                continue
            try:
                prime(running[name])
            except Exception as exc:
                results["skipped"][name] = skip_reason(exc)
                stop(running.pop(name))
        for concurrency in levels:
            for stream in stream_modes:
                for name, system in running.items():
                    row = measure(system, concurrency, stream, duration, warmup)
                    results["runs"].setdefault(name, []).append(row)
                    lat = row.get("latency_ms") or {}
                    print(
                        f"{name:<15} {'stream' if stream else 'buffered':<8} c={concurrency:<4} "
                        f"rps={row.get('rps', 'FAILED')!s:<9} p50={lat.get('p50')} p99={lat.get('p99')} "
                        f"errors={row.get('errors')} {row.get('error_kinds') or row.get('failed') or ''}",
                        file=sys.stderr,
                        flush=True,
                    )
        for name, system in running.items():
            results["rss_mib"][name] = rss_mib(system)
        for name in [n for n in running if n in TOLLWAY_SYSTEMS]:
            # Stopped gracefully first: its leases go back, its last settlements land.
            results["checks"][name] = stop_and_check(running.pop(name))
    finally:
        for system in running.values():
            stop(system)
        stop(upstream)
    results["meta"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    results["summary"] = summarise(results)
    results["ratios"] = ratios(results["summary"])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{started.strftime('%Y-%m-%dT%H%M')}-{platform.node()}"
    json_path = args.out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=1))
    print(f"results: {json_path}", file=sys.stderr)
    text = markdown(results)
    print(text)
    if not args.no_plot:
        png_path = args.out_dir / f"{stem}.png"
        problem = plot(json_path, png_path)
        print(problem or f"plot: {png_path}", file=sys.stderr)
        if problem is None and args.doc:
            text += f"\n![latency against concurrency]({os.path.relpath(png_path, args.doc.parent)})\n"
    if args.doc:
        write_doc(args.doc, text)
    if not args.keep_logs:
        for log in tmp.glob("*.log"):
            log.unlink()
    failed = failures(results["checks"])
    if failed:
        print(f"MONEY CHECK FAILED: {json.dumps(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
