"""Gateway overhead and throughput, Tollway side by side with a pass-through proxy and LiteLLM, in one run.

    python bench/run.py --mode quick|full|smoke [--systems direct passthrough tollway-sqlite ...]
                        [--duration S] [--concurrency 1 16 64] [--out-dir bench/results] [--doc docs/benchmarks.md]

One fake upstream (bench/upstream.py) serves every system. Systems, each one server process:
  direct            the upstream itself (the floor)
  passthrough       bench/passthrough.py: Starlette + httpx2, no auth, no billing (the Python ceiling)
  tollway-sqlite    `tollway serve` on SQLite: keys, rate limits, reservation, settlement
  tollway-pg        `tollway serve` on PostgreSQL + Redis (a fresh database on 127.0.0.1:5432)
  litellm-pg        LiteLLM proxy with a virtual key and spend tracking on PostgreSQL (its own database)
  litellm-nodb      LiteLLM proxy with the master key and no database
LiteLLM runs from bench/.venv-litellm (`make bench-venv`); when it is missing or fails to start, its rows say
why and the run goes on. For each concurrency level and mode (buffered, stream), the systems take turns, so
drift in the machine's load falls on all of them alike. bench/load.py drives each measurement in its own
process. Writes <out-dir>/<date>-<host>.json, and with --doc the generated tables in that Markdown file
(between the `bench:begin`/`bench:end` markers) and a PNG plot next to the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LITELLM_VENV = HERE / ".venv-litellm"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/9"
OPERATOR_KEY = "op-bench-operator-key"
LITELLM_MASTER_KEY = "sk-bench-master-key"
MODEL = "gpt-4o-mini"
ALL_SYSTEMS = ["direct", "passthrough", "tollway-sqlite", "tollway-pg", "litellm-pg", "litellm-nodb"]
MODES = {
    "smoke": {"concurrency": [1, 4], "duration": 1.0, "warmup": 0.3, "systems": ALL_SYSTEMS[:3]},
    "quick": {"concurrency": [1, 16, 64], "duration": 4.0, "warmup": 1.0, "systems": ALL_SYSTEMS},
    "full": {"concurrency": [1, 16, 64, 256], "duration": 15.0, "warmup": 2.0, "systems": ALL_SYSTEMS},
}

CATALOG = """
markup: "1.0"
providers:
  - {{id: bench, kind: openai, base_url: "{upstream}/v1", api_key_env: BENCH_UPSTREAM_KEY}}
models:
  - id: {model}
    type: text
    routes: [{{provider: bench, model: {model}}}]
    pricing: {{input: "0.15", output: "0.60"}}
    max_output_tokens: 1000
# Limits are enforced (the limiter runs on every call) but set high enough that they never refuse here.
plans:
  free: {{text: {{rpm: 100000000, rpd: 1000000000, tpm: 1000000000000}}}}
  standard: {{text: {{rpm: 100000000, rpd: 1000000000, tpm: 1000000000000}}}}
  pro: {{text: {{rpm: 100000000, rpd: 1000000000, tpm: 1000000000000}}}}
"""

LITELLM_CONFIG = """
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {upstream}/v1
      api_key: upstream-secret
litellm_settings:
  telemetry: false
general_settings:
  master_key: {master_key}
{database}
"""


def _reason(exc: BaseException) -> str:
    """One line, no terminal colour codes, short enough for a table cell."""
    text = re.sub(r"\x1b\[[0-9;]*m|\[[0-9;]*m", "", str(exc)).strip().replace("\n", " ")
    if "binaries.prisma.sh" in text:
        return (
            "LiteLLM's database mode needs Prisma engine binaries, which Prisma downloads from "
            "binaries.prisma.sh at first start; that host is unreachable here (no package registry ships them)"
        )
    return text[-400:]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class System:
    name: str
    base_url: str = ""
    key: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    skipped: str | None = None  # why this system has no numbers
    notes: dict[str, Any] = field(default_factory=dict)
    cleanup: list[Any] = field(default_factory=list)

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"


def start(
    name: str, cmd: list[str], port: int, env: dict[str, str], ready: str, tmp: Path, timeout: float = 90
) -> System:
    log_path = tmp / f"{name}.log"
    merged = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            env=merged,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    system = System(name, f"http://127.0.0.1:{port}", proc=proc, log_path=log_path)
    deadline = time.monotonic() + timeout
    with httpx2.Client(trust_env=False, timeout=5) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {tail(log_path)}")
            with contextlib.suppress(httpx2.TransportError):
                if client.get(system.base_url + ready).status_code == 200:
                    return system
            if time.monotonic() > deadline:
                stop(system)
                raise RuntimeError(f"{name} not ready after {timeout:.0f}s: {tail(log_path)}")
            time.sleep(0.2)


def tail(path: Path, chars: int = 1500) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def stop(system: System) -> None:
    if system.proc is not None and system.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(system.proc.pid, signal.SIGTERM)
        try:
            system.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(system.proc.pid, signal.SIGKILL)
            system.proc.wait()
    for action in system.cleanup:
        with contextlib.suppress(Exception):
            action()


def rss_mib(system: System) -> float | None:
    """Resident memory of the server's whole process group (a server that forks workers counts them all)."""
    if system.proc is None or system.proc.poll() is not None:
        return None
    total_kib = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != system.proc.pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return round(total_kib / 1024, 1)


# -- databases -------------------------------------------------------------------------------------


def _pg(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def fresh_pg_database(prefix: str) -> tuple[str, Any]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    _pg(f'create database "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", lambda: _pg(
        f'drop database if exists "{name}" with (force)'
    )


# -- the systems -----------------------------------------------------------------------------------


def start_passthrough(upstream: str, tmp: Path) -> System:
    port = free_port()
    cmd = [sys.executable, str(HERE / "passthrough.py"), "--port", str(port), "--upstream", upstream]
    return start("passthrough", cmd, port, {}, "/health", tmp)


def start_tollway(name: str, upstream: str, tmp: Path, database_url: str, extra: dict[str, str]) -> System:
    home = tmp / name
    home.mkdir()
    catalog = home / "catalog.yaml"
    catalog.write_text(CATALOG.format(upstream=upstream, model=MODEL))
    port = free_port()
    env = {
        "TOLLWAY_DATABASE_URL": database_url,
        "TOLLWAY_DATA_DIR": str(home / "data"),
        "TOLLWAY_CONFIG": str(catalog),
        "TOLLWAY_OPERATOR_KEY": OPERATOR_KEY,
        "BENCH_UPSTREAM_KEY": "upstream-secret",
        **extra,
    }
    cmd = [sys.executable, "-m", "tollway", "serve", "--port", str(port)]
    system = start(name, cmd, port, env, "/ready", tmp)
    admin = {"authorization": f"Bearer {OPERATOR_KEY}"}
    with httpx2.Client(
        base_url=system.base_url + "/v1/admin", headers=admin, trust_env=False, timeout=30
    ) as c:
        account = c.post("/accounts", json={"name": "bench", "credit_usd": "1000000.00"})
        account.raise_for_status()
        account_id = account.json()["id"]
        key = c.post(f"/accounts/{account_id}/keys", json={"label": "bench", "scope": "inference"})
        key.raise_for_status()
    system.key = key.json()["key"]
    system.notes["account_id"] = account_id
    return system


def tollway_ledger_check(system: System) -> dict[str, Any]:
    """After the run: nothing may stay reserved (every call settled or released)."""
    admin = {"authorization": f"Bearer {OPERATOR_KEY}"}
    with httpx2.Client(trust_env=False, timeout=30) as client:
        for _ in range(50):  # streams settle in their own task; give the last ones a moment
            body = client.get(
                f"{system.base_url}/v1/admin/accounts/{system.notes['account_id']}", headers=admin
            )
            data = body.json()
            if float(data.get("reserved_usd", "1")) == 0:
                break
            time.sleep(0.1)
    return {"balance_usd": data.get("balance_usd"), "reserved_usd": data.get("reserved_usd")}


def litellm_missing() -> str | None:
    if not (LITELLM_VENV / "bin" / "litellm").exists():
        return f"LiteLLM is not installed: run `make bench-venv` (creates {LITELLM_VENV.relative_to(REPO)})"
    return None


def start_litellm(name: str, upstream: str, tmp: Path, with_db: bool) -> System:
    home = tmp / name
    home.mkdir()
    cleanup: list[Any] = []
    database = ""
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map from the internet
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "False",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    if with_db:
        url, drop = fresh_pg_database("litellm_bench")
        cleanup.append(drop)
        database = f"  database_url: {url}"
        env["DATABASE_URL"] = url
    config = home / "config.yaml"
    config.write_text(
        LITELLM_CONFIG.format(
            model=MODEL, upstream=upstream, master_key=LITELLM_MASTER_KEY, database=database
        )
    )
    port = free_port()
    cmd = [
        str(LITELLM_VENV / "bin" / "litellm"),
        "--config",
        str(config),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--num_workers",
        "1",
    ]
    try:
        system = start(name, cmd, port, env, "/health/liveliness", tmp, timeout=240)
    except Exception:
        for action in cleanup:
            with contextlib.suppress(Exception):
                action()
        raise
    system.cleanup = cleanup
    system.key = LITELLM_MASTER_KEY
    if with_db:
        with httpx2.Client(trust_env=False, timeout=60) as client:
            response = client.post(
                f"{system.base_url}/key/generate",
                headers={"authorization": f"Bearer {LITELLM_MASTER_KEY}"},
                json={"models": [MODEL], "max_budget": 1000000},
            )
        if response.status_code != 200:
            stop(system)
            raise RuntimeError(f"virtual key: {response.status_code} {response.text[:300]}")
        system.key = response.json()["key"]
    return system


# -- measuring -------------------------------------------------------------------------------------


def prime(system: System) -> None:
    """A few calls of each kind before any measurement: first-call costs (imports, caches, pools) are not overhead."""
    headers = {"authorization": f"Bearer {system.key}"} if system.key else {}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "warm up"}], "max_tokens": 16}
    with httpx2.Client(trust_env=False, timeout=120, headers=headers) as client:
        for stream in (False, True, False, True, False, True):
            response = client.post(system.chat_url, json={**body, "stream": stream})
            if response.status_code != 200:
                raise RuntimeError(f"warm-up call failed: {response.status_code} {response.text[:300]}")


def measure(system: System, concurrency: int, stream: bool, duration: float, warmup: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(HERE / "load.py"),
        "--url",
        system.chat_url,
        "--model",
        MODEL,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
    ]
    if system.key:
        cmd += ["--key", system.key]
    if stream:
        cmd.append("--stream")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 120, check=False)
    if done.returncode != 0:
        return {"concurrency": concurrency, "stream": stream, "failed": done.stderr[-800:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Overheads against `direct` at the same concurrency and mode; max throughput at < 1 % errors."""
    runs = results["runs"]
    direct = {(r["stream"], r["concurrency"]): r for r in runs.get("direct", []) if "latency_ms" in r}
    summary: dict[str, Any] = {}
    for name, rows in runs.items():
        entry: dict[str, Any] = {"max_rps": {}, "overhead_ms": {}, "ttfb_overhead_ms": {}}
        for stream in (False, True):
            mode = "stream" if stream else "buffered"
            good = [r for r in rows if r["stream"] == stream and "rps" in r and r["error_rate"] < 0.01]
            entry["max_rps"][mode] = max((r["rps"] for r in good), default=None)
            for row in rows:
                if row["stream"] != stream or "latency_ms" not in row or row["latency_ms"]["p50"] is None:
                    continue
                base = direct.get((stream, row["concurrency"]))
                if base is None or base["latency_ms"]["p50"] is None:
                    continue
                key = f"{mode}@{row['concurrency']}"
                entry["overhead_ms"][key] = {
                    q: round(row["latency_ms"][q] - base["latency_ms"][q], 3) for q in ("p50", "p95", "p99")
                }
                if (
                    stream
                    and row.get("ttfb_ms")
                    and base.get("ttfb_ms")
                    and row["ttfb_ms"]["p50"] is not None
                ):
                    entry["ttfb_overhead_ms"][key] = {
                        q: round(row["ttfb_ms"][q] - base["ttfb_ms"][q], 3) for q in ("p50", "p95", "p99")
                    }
        summary[name] = entry
    return summary


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Run `{meta['started']}` on `{meta['host']}` ({meta['cpus']} CPUs, {meta['python']}), mode `{meta['mode']}`, "
        f"{meta['duration_s']} s per point; load average before {meta['load_before']}, after {meta['load_after']}. "
        f"Upstream: {meta['upstream']}.",
        "",
        "| system | mode | conc. | RPS | errors | p50 ms | p95 ms | p99 ms | overhead p50/p95/p99 ms | TTFB p50 ms | TTFB overhead p50/p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    summary = results["summary"]
    for stream in (False, True):
        mode = "stream" if stream else "buffered"
        for concurrency in meta["concurrency"]:
            for name in results["systems"]:
                if results["skipped"].get(name):
                    continue
                row = next(
                    (
                        r
                        for r in results["runs"].get(name, [])
                        if r["stream"] == stream and r["concurrency"] == concurrency
                    ),
                    None,
                )
                if row is None:
                    continue
                if "latency_ms" not in row:
                    lines.append(f"| {name} | {mode} | {concurrency} | failed | | | | | | | |")
                    continue
                lat = row["latency_ms"]
                over = summary[name]["overhead_ms"].get(f"{mode}@{concurrency}")
                ttfb_over = summary[name]["ttfb_overhead_ms"].get(f"{mode}@{concurrency}")
                ttfb = (row.get("ttfb_ms") or {}).get("p50")
                lines.append(
                    f"| {name} | {mode} | {concurrency} | {row['rps']:.0f} | {row['error_rate'] * 100:.1f}% | "
                    f"{_f(lat['p50'])} | {_f(lat['p95'])} | {_f(lat['p99'])} | "
                    + (
                        f"{_f(over['p50'])} / {_f(over['p95'])} / {_f(over['p99'])}"
                        if over and name != "direct"
                        else ""
                    )
                    + f" | {_f(ttfb)} | "
                    + (
                        f"{_f(ttfb_over['p50'])} / {_f(ttfb_over['p99'])}"
                        if ttfb_over and name != "direct"
                        else ""
                    )
                    + " |"
                )
    lines += [
        "",
        "| system | max RPS buffered (< 1 % errors) | max RPS stream | RSS after run (MiB) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in results["systems"]:
        if results["skipped"].get(name):
            lines.append(f"| {name} | skipped: {results['skipped'][name]} | | |")
            continue
        rps = summary[name]["max_rps"]
        lines.append(
            f"| {name} | {_f(rps['buffered'], 0)} | {_f(rps['stream'], 0)} | {_f(results['rss_mib'].get(name), 0)} |"
        )
    ratios = results.get("ratios") or {}
    if ratios:
        lines += ["", "Ratios (same run): " + "; ".join(f"{k} = {v}" for k, v in ratios.items()) + "."]
    return "\n".join(lines) + "\n"


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ratios(summary: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}

    def rps(name: str, mode: str) -> float | None:
        value = summary.get(name, {}).get("max_rps", {}).get(mode)
        return float(value) if value else None

    for mode in ("buffered", "stream"):
        for ours in ("tollway-sqlite", "tollway-pg"):
            for theirs in ("passthrough", "litellm-pg", "litellm-nodb"):
                a, b = rps(ours, mode), rps(theirs, mode)
                if a and b:
                    out[f"{ours}/{theirs} max RPS {mode}"] = round(a / b, 2)
    return out


def write_doc(doc: Path, text: str) -> None:
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    current = doc.read_text() if doc.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in current:
        current += f"\n{begin}\n{end}\n"
    head, _, rest = current.partition(begin)
    _, _, after = rest.partition(end)
    doc.write_text(f"{head}{begin}\n{text}{end}{after}")


def plot(json_path: Path, png_path: Path) -> str | None:
    """Draw with matplotlib from the LiteLLM venv (not a Tollway dependency), or this Python if it has it."""
    for python in (LITELLM_VENV / "bin" / "python", Path(sys.executable)):
        if not python.exists():
            continue
        done = subprocess.run(
            [str(python), str(HERE / "plot.py"), str(json_path), str(png_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return None
        last = done.stderr.strip().splitlines()[-1:] or ["?"]
    return f"no plot: {last[0]}"


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
    up_port = free_port()
    upstream = start(
        "upstream",
        [
            sys.executable,
            str(HERE / "upstream.py"),
            "--port",
            str(up_port),
            "--latency-ms",
            str(args.latency_ms),
            "--ttft-ms",
            str(args.ttft_ms),
            "--chunks",
            str(args.chunks),
            "--tokens-per-s",
            str(args.tokens_per_s),
        ],
        up_port,
        {},
        "/health",
        tmp,
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
                elif name == "tollway-sqlite":
                    running[name] = start_tollway(
                        name, upstream.base_url, tmp, f"sqlite:///{tmp}/tollway.db", {}
                    )
                elif name == "tollway-pg":
                    url, drop = fresh_pg_database("tollway_bench")
                    try:
                        running[name] = start_tollway(
                            name, upstream.base_url, tmp, url, {"TOLLWAY_REDIS_URL": REDIS_URL}
                        )
                    except Exception:
                        drop()
                        raise
                    running[name].cleanup.append(drop)
                elif name.startswith("litellm"):
                    missing = litellm_missing()
                    if missing:
                        raise RuntimeError(missing)
                    running[name] = start_litellm(name, upstream.base_url, tmp, with_db=name == "litellm-pg")
            except Exception as exc:  # one system that cannot run must not sink the others
                results["skipped"][name] = _reason(exc)
                print(f"  skipped {name}: {results['skipped'][name]}", file=sys.stderr, flush=True)
                continue
            try:
                prime(running[name])
            except Exception as exc:
                results["skipped"][name] = _reason(exc)
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
            if name.startswith("tollway"):
                results["checks"][name] = tollway_ledger_check(system)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
