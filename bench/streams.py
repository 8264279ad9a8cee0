"""Streams and memory (issue 20 step 6): how many concurrent streams stay stall-free, and a soak that watches
the server's memory and, after a graceful stop, the money in its database.

    python bench/streams.py [--postgres] [--levels 64 128 256 512] [--duration 10] [--cadence-ms 50]
                            [--chunks 40] [--systems direct passthrough tollway] [--soak 20 | --soak-seconds S]
                            [--soak-concurrency 32] [--out-dir bench/results/streams]

Stall-free streams: one fake upstream (bench/upstream.py) streams one chunk per --cadence-ms. For each level N
the systems take turns; bench/stream_client.py, in its own process, keeps N streams open for --duration seconds
and notes when each event arrives. A stream is stall-free when no gap exceeds the cadence by more than
--stall-ms (50). `direct` is the upstream itself (what the client and the upstream add on their own),
`passthrough` the bare Starlette + httpx2 proxy, `tollway` `tollway serve` on SQLite (PostgreSQL + Redis with
--postgres). That Tollway is then stopped (SIGTERM) and its database checked.

Soak: a fresh Tollway and a faster upstream (--soak-tokens-per-s), the client's mix (buffered, streamed, slow
readers, cancelled streams) at --soak-concurrency for the soak's length, the server's RSS sampled every
--sample-every seconds. RSS after the warm-up (the first 10 %) against the end: the goal is within ±10 %. Then a
graceful stop and the money check (money_check). Exits 1 when a money check fails or a server does not stop on
SIGTERM. Writes <out-dir>/<date>-<host>.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from money_check import stop_and_check
from systems import (
    HERE,
    System,
    prime,
    rss_mib,
    start_passthrough,
    start_tollway_on,
    start_upstream,
    stop,
)


def start_paced_upstream(tmp: Path, name: str, tokens_per_s: float) -> System:
    """The fake upstream streaming one chunk per output token asked for, at `tokens_per_s`."""
    return start_upstream(tmp, "--chunks-from-max-tokens", "--tokens-per-s", str(tokens_per_s), name=name)


def start_gateway(name: str, upstream: System, tmp: Path, postgres: bool) -> System:
    return start_tollway_on(name, upstream.base_url, tmp, postgres)


def client(mode: str, system: System, options: list[str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(HERE / "stream_client.py"), mode, "--url", system.chat_url, *options]
    if system.key:
        cmd += ["--key", system.key]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result_of(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if proc.returncode != 0:
        return {"failed": err[-800:]}
    return dict(json.loads(out.strip().splitlines()[-1]))


def stall_phase(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    upstream = start_paced_upstream(tmp, "upstream", 1000 / args.cadence_ms)
    running: dict[str, System] = {}
    phase: dict[str, Any] = {"runs": {}, "checks": {}}
    try:
        for choice in args.systems:
            name = tollway_name(args) if choice == "tollway" else choice
            print(f"starting {name} ...", file=sys.stderr, flush=True)
            if name == "direct":
                running[name] = System("direct", upstream.base_url)
            elif name == "passthrough":
                running[name] = start_passthrough(upstream.base_url, tmp)
            else:
                running[name] = start_gateway(name, upstream, tmp, args.postgres)
            prime(running[name])
        stream_s = args.chunks * args.cadence_ms / 1000
        options = ["--duration", str(args.duration), "--chunks", str(args.chunks)]
        options += ["--cadence-ms", str(args.cadence_ms), "--stall-ms", str(args.stall_ms)]
        for level in args.levels:
            for name, system in running.items():
                proc = client("stalls", system, [*options, "--concurrency", str(level)])
                row = result_of(proc, 2 * stream_s + args.duration + 180)
                phase["runs"].setdefault(name, []).append({"concurrency": level, **row})
                gap = row.get("extra_gap_ms") or {}
                print(
                    f"{name:<14} N={level:<4} streams={row.get('streams', 'FAILED')} "
                    f"stall-free={row.get('stall_free_share')} extra p50/p99/max={gap.get('p50')}/"
                    f"{gap.get('p99')}/{gap.get('max')} ms {row.get('error_kinds') or row.get('failed') or ''}",
                    file=sys.stderr,
                    flush=True,
                )
        for name, system in running.items():
            if system.notes.get("database_url"):
                phase["checks"][name] = stop_and_check(system)
    finally:
        for system in running.values():
            stop(system)
        stop(upstream)
    phase["largest_stall_free_n"] = {name: largest_stall_free(rows) for name, rows in phase["runs"].items()}
    return phase


def tollway_name(args: argparse.Namespace) -> str:
    return "tollway-pg" if args.postgres else "tollway-sqlite"


def largest_stall_free(rows: list[dict[str, Any]]) -> int | None:
    clean = [row["concurrency"] for row in rows if row.get("streams") and row["stall_free"] == row["streams"]]
    return max(clean, default=None)


def soak_phase(args: argparse.Namespace, tmp: Path, seconds: float) -> dict[str, Any]:
    upstream = start_paced_upstream(tmp, "soak-upstream", args.soak_tokens_per_s)
    system: System | None = None
    try:
        system = start_gateway(f"{tollway_name(args)}-soak", upstream, tmp, args.postgres)
        prime(system)
        options = ["--concurrency", str(args.soak_concurrency), "--duration", str(seconds)]
        options += ["--chunks", str(args.chunks), "--slow-chunks", str(args.slow_chunks)]
        proc = client("soak", system, options)
        began = time.monotonic()
        samples: list[tuple[float, float | None]] = []
        while proc.poll() is None:
            samples.append((round(time.monotonic() - began, 1), rss_mib(system)))
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(args.sample_every)
        load = result_of(proc, 60)
        check = stop_and_check(system)
    finally:
        if system is not None:
            stop(system)
        stop(upstream)
    return {"seconds": seconds, "load": load, "rss": rss_summary(samples, seconds), "check": check}


def rss_summary(samples: list[tuple[float, float | None]], seconds: float) -> dict[str, Any]:
    measured = [(at, mib) for at, mib in samples if mib is not None]
    warm = next(((at, mib) for at, mib in measured if at >= seconds * 0.1), None)
    if warm is None or not measured:
        return {"samples": samples, "ratio": None, "within_goal": None}
    end = measured[-1]
    ratio = round(end[1] / warm[1], 3)
    return {
        "warm_at_s": warm[0],
        "warm_mib": warm[1],
        "end_at_s": end[0],
        "end_mib": end[1],
        "peak_mib": max(mib for _, mib in measured),
        "ratio": ratio,
        "within_goal": abs(ratio - 1) <= 0.10,
        "samples": samples,
    }


def markdown(results: dict[str, Any]) -> str:
    meta, args = results["meta"], results["meta"]["args"]
    lines = [
        f"Run `{meta['started']}` on `{meta['host']}` ({meta['cpus']} CPUs), load average before "
        f"{meta['load_before']}, after {meta.get('load_after')}.",
    ]
    stalls = results.get("stalls")
    if stalls:
        lines += [
            "",
            f"Tollway on {meta['database']}. Streams of {args['chunks']} chunks every {args['cadence_ms']} ms, "
            f"{args['duration']} s per point; stall-free: no gap more than {args['stall_ms']} ms over the "
            "cadence.",
            "",
            "| system | N | streams | failed | stall-free | extra gap p50 / p99 / max ms | TTFB p50 / p99 ms |",
            "| --- | ---: | ---: | ---: | ---: | --- | --- |",
        ]
        for name, rows in stalls["runs"].items():
            for row in rows:
                gap, ttfb = row.get("extra_gap_ms") or {}, row.get("ttfb_ms") or {}
                share = row.get("stall_free_share")
                lines.append(
                    f"| {name} | {row['concurrency']} | {row.get('streams', 'FAILED')} | {row.get('failed')} | "
                    f"{'–' if share is None else f'{share:.1%}'} | {gap.get('p50')} / {gap.get('p99')} / "
                    f"{gap.get('max')} | {ttfb.get('p50')} / {ttfb.get('p99')} |"
                )
        largest = ", ".join(f"{name} {n}" for name, n in stalls["largest_stall_free_n"].items())
        lines += ["", f"Largest N with every stream stall-free: {largest}."]
    soak = results.get("soak")
    if soak:
        rss, load, check = soak["rss"], soak["load"], soak["check"]
        lines += [
            "",
            "| soak | calls by kind | errors | RSS warm / end / peak MiB | end / warm | money after stop |",
            "| --- | --- | ---: | --- | ---: | --- |",
            f"| {soak['seconds']:.0f} s at {args['soak_concurrency']} | {load.get('calls')} | "
            f"{load.get('errors', 'FAILED')} | {rss.get('warm_mib')} / {rss.get('end_mib')} / "
            f"{rss.get('peak_mib')} | {rss.get('ratio')} ({'within' if rss.get('within_goal') else 'MISSES'} "
            f"±10 %) | {'ok' if check['ok'] else check['problems']}, {check['usage rows']} usage rows |",
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", action="store_true", help="Tollway on PostgreSQL + Redis (tollway-pg)")
    parser.add_argument("--systems", nargs="+", choices=["direct", "passthrough", "tollway"])
    parser.add_argument(
        "--levels", type=int, nargs="+", default=[64, 128, 256, 512], help="concurrent streams"
    )
    parser.add_argument("--no-stalls", action="store_true", help="the soak alone")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level and system")
    parser.add_argument("--cadence-ms", type=float, default=50.0, help="the upstream's gap between chunks")
    parser.add_argument("--chunks", type=int, default=40, help="content chunks per stream")
    parser.add_argument("--stall-ms", type=float, default=50.0, help="extra gap a stall-free stream may have")
    parser.add_argument("--soak", type=float, default=20.0, help="minutes of soak (0: none)")
    parser.add_argument("--soak-seconds", type=float, help="the soak's length in seconds, for tests")
    parser.add_argument("--soak-concurrency", type=int, default=32)
    parser.add_argument("--soak-tokens-per-s", type=float, default=200.0, help="the soak upstream's pace")
    parser.add_argument("--slow-chunks", type=int, default=300, help="chunks of slow and cancelled streams")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results" / "streams")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    args.systems = args.systems or ["direct", "passthrough", "tollway"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soak_seconds = args.soak_seconds if args.soak_seconds is not None else args.soak * 60
    started = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {
        "meta": {
            "started": started.isoformat(timespec="seconds"),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "database": "postgresql+redis" if args.postgres else "sqlite",
            "load_before": [round(x, 2) for x in os.getloadavg()],
            "args": {name: str(v) if isinstance(v, Path) else v for name, v in vars(args).items()},
        }
    }
    tmp = Path(tempfile.mkdtemp(prefix="tollway-streams-"))
    if not args.no_stalls:
        results["stalls"] = stall_phase(args, tmp)
    if soak_seconds > 0:
        results["soak"] = soak_phase(args, tmp, soak_seconds)
    results["meta"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    checks = [*results.get("stalls", {}).get("checks", {}).values()]
    checks += [results["soak"]["check"]] if "soak" in results else []
    results["money_ok"] = all(check["ok"] and check["graceful"] for check in checks)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"{started.strftime('%Y-%m-%dT%H%M')}-{platform.node()}.json"
    json_path.write_text(json.dumps(results, indent=1))
    print(f"results: {json_path}", file=sys.stderr)
    print(markdown(results))
    if not args.keep_logs:
        for log in tmp.glob("*.log"):
            log.unlink()
    if not results["money_ok"]:
        print(f"MONEY CHECK FAILED: {checks} (server logs in {tmp})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
