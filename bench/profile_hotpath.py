"""Where Tollway's time goes under load: py-spy samples `tollway serve` while bench/load.py drives it.

    python bench/profile_hotpath.py [--system tollway|passthrough] [--db sqlite|pg] [--stream] [--concurrency 16] [--duration 15] [--out DIR]

Starts the same fake upstream and the same Tollway as bench/systems.py, runs the load, and has py-spy
(from bench/.venv-litellm, `make bench-venv`) record the server process. Writes the collapsed stacks
(<out>/<label>.folded, loadable in speedscope) and prints the share of samples spent in each area of
the hot path (inclusive: an area counts when any frame of the stack is in it), plus the throughput
measured while sampling. py-spy's sampling runs outside the server, so it costs the server nothing.
Only the thread holding the GIL is sampled (`--gil`): the server is one Python process, so GIL time is
the CPU that limits its throughput; a thread waiting for the GIL or blocked in I/O is not counted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import systems  # bench/systems.py: the same upstream, servers and load generator as the benchmark

# Frames where a thread waits rather than works (py-spy counts some of these waits as active).
IDLE = ("select (selectors.py", "_worker (concurrent/futures/thread.py:81)", "wait (threading.py")
# Areas of the hot path. A sample belongs to the first area matched walking from the leaf frame
# up ("file:function" substrings), so library time lands where it is spent and our own code where
# it runs; stdlib frames (asyncio, contextlib) are walked past.
AREAS = [
    ("logging (log records, formatting)", ("logging/",)),
    (
        "upstream call (httpx2, aiohttp, httpcore, anyio)",
        ("providers/http.py", "upstream_transport.py", "httpx2/", "aiohttp/", "httpcore2/", "anyio/"),
    ),
    ("ledger (SQLAlchemy, driver)", ("store/db.py", "core/money/ledger.py", "sqlalchemy/", "sqlite")),
    ("auth: key lookup", ("core/access/keys.py", "api/auth.py")),
    ("rate limits", ("core/limits", "api/accounts/rate_limits.py")),
    ("token counting", ("base/tokens.py", "toktok")),
    ("request ids, access log, metrics", ("base/ids.py", "ops/", "api/http.py", "prometheus")),
    (
        "chat plan, policy, validation",
        ("core/inference/chat_plan.py", "core/access/policy.py", "core/inference/schemas.py", "pydantic"),
    ),
    ("pipeline, router, adapters", ("tollway/",)),
    (
        "HTTP server and framework (uvicorn, h11, FastAPI, Starlette)",
        ("uvicorn/", "h11/", "fastapi/", "starlette/"),
    ),
]


def _area(frames: list[str]) -> str:
    for frame in reversed(frames):
        for label, needles in AREAS:
            if any(n in frame for n in needles):
                return label
    return "event loop, stdlib"


def area_shares(folded: Path) -> tuple[int, int, list[tuple[str, int]]]:
    """(busy samples on the event loop thread, busy samples on other threads, samples per area)."""
    loop_busy = other_busy = 0
    counts: Counter[str] = Counter()
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        if any(frames[-1].startswith(idle) for idle in IDLE):
            continue
        if frames[0].startswith("Thread._bootstrap"):  # the SQLite writer, to_thread workers
            other_busy += n
            counts["other threads (SQLite writer, to_thread)"] += n
            continue
        loop_busy += n
        counts[_area(frames)] += n
    return loop_busy, other_busy, counts.most_common()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--system", choices=["tollway", "passthrough"], default="tollway")
    parser.add_argument("--db", choices=["sqlite", "pg"], default="sqlite")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=systems.HERE / "results" / "profiles")
    parser.add_argument("--label", default=None)
    args = parser.parse_args()
    py_spy = systems.LITELLM_VENV / "bin" / "py-spy"
    if not py_spy.exists():
        print("py-spy is missing: run `make bench-venv` first", file=sys.stderr)
        return 2
    label = (
        args.label or f"{args.system}-{args.db}-{'stream' if args.stream else 'buffered'}-c{args.concurrency}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    folded = args.out / f"{label}.folded"
    tmp = Path(tempfile.mkdtemp(prefix="tollway-profile-"))
    upstream = systems.start_upstream(tmp)
    cleanup = None
    try:
        if args.system == "passthrough":  # the same measure for the bare proxy: the Python floor
            system = systems.start_passthrough(upstream.base_url, tmp)
        elif args.db == "pg":
            database_url, cleanup = systems.fresh_pg_database("bench_profile")
            extra = {"TOLLWAY_REDIS_URL": systems.REDIS_URL}
            system = systems.start_tollway("tollway", upstream.base_url, tmp, database_url, extra)
        else:
            database_url = f"sqlite:///{tmp}/tollway.db"
            system = systems.start_tollway("tollway", upstream.base_url, tmp, database_url, {})
        try:
            systems.prime(system)
            assert system.proc is not None
            recorder = subprocess.Popen(
                [str(py_spy), "record", "--pid", str(system.proc.pid), "--rate", str(args.rate),
                 "--format", "raw", "--output", str(folded), "--nonblocking", "--gil", "--duration",
                 str(int(args.duration) + 1)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            figures = systems.measure(system, args.concurrency, args.stream, args.duration, 0.5)
            _, err = recorder.communicate(timeout=args.duration + 60)
            if recorder.returncode != 0:
                print(err.decode(errors="replace")[-2000:], file=sys.stderr)
                return 1
        finally:
            systems.stop(system)
    finally:
        systems.stop(upstream)
        if cleanup is not None:
            cleanup()
    loop_busy, other_busy, shares = area_shares(folded)
    requests = figures["rps"] * args.duration
    per_call = {name: round(n / args.rate / requests * 1000, 3) for name, n in shares}
    print(
        f"{label}: {figures['rps']:.0f} RPS, p50 {figures['latency_ms']['p50']} ms; "
        f"GIL held {(loop_busy + other_busy) / args.rate / requests * 1000:.2f} ms per call"
    )
    for name, ms in per_call.items():
        print(f"  {ms:7.3f} ms/call  {name}")
    (args.out / f"{label}.json").write_text(
        json.dumps({"label": label, "load": figures, "cpu_ms_per_call": per_call}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
