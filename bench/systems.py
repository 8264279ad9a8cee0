"""The systems a benchmark run measures, and how each is started, primed, measured and stopped.

Every system is one server process on 127.0.0.1 in front of the same fake upstream (bench/upstream.py);
bench/load.py measures it from its own process. Used by bench/run.py and bench/profile_hotpath.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
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
ALL_SYSTEMS = [
    "direct",
    "passthrough",
    "passthrough-aiohttp",
    "tollway-sqlite",
    "tollway-pg",
    "tollway-sqlite-leases",
    "tollway-pg-leases",
    "tollway-pg-2workers",
    "litellm-pg",
    "litellm-nodb",
]

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


def skip_reason(exc: BaseException) -> str:
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


def _pg(sql: str, admin: str = PG_ADMIN) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def fresh_pg_database(prefix: str, admin: str = PG_ADMIN) -> tuple[str, Any]:
    """A new database on `admin`'s server (a plain postgresql:// URL): its URL, and what drops it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    _pg(f'create database "{name}"', admin)
    return admin.rsplit("/", 1)[0] + f"/{name}", lambda: _pg(
        f'drop database if exists "{name}" with (force)', admin
    )


# -- the systems -----------------------------------------------------------------------------------


def start_upstream(tmp: Path, *options: str, name: str = "upstream") -> System:
    """The fake upstream (bench/upstream.py) with `options` (its latency, chunks, pace)."""
    port = free_port()
    cmd = [sys.executable, str(HERE / "upstream.py"), "--port", str(port), *options]
    return start(name, cmd, port, {}, "/health", tmp)


def start_passthrough(upstream: str, tmp: Path, client: str = "httpx2") -> System:
    port = free_port()
    cmd = [sys.executable, str(HERE / "passthrough.py"), "--port", str(port), "--upstream", upstream]
    name = "passthrough" if client == "httpx2" else f"passthrough-{client}"
    return start(name, [*cmd, "--client", client], port, {}, "/health", tmp)


def start_tollway(
    name: str,
    upstream: str,
    tmp: Path,
    database_url: str,
    extra: dict[str, str],
    launcher: list[str] | None = None,
) -> System:
    """`launcher` runs the `tollway` command line instead of `python -m tollway` (bench/phase_server.py)."""
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
        "TOLLWAY_SECRET": "bench-key-hashing-secret",  # required on PostgreSQL, shared by the replicas
        **extra,
    }
    cmd = [*(launcher or [sys.executable, "-m", "tollway"]), "serve", "--port", str(port)]
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


# Tollway's systems: name -> (on PostgreSQL + Redis rather than SQLite, extra settings).
TOLLWAY_SYSTEMS: dict[str, tuple[bool, dict[str, str]]] = {
    "tollway-sqlite": (False, {}),
    "tollway-pg": (True, {}),
    "tollway-sqlite-leases": (False, {"TOLLWAY_BUDGET_LEASES": "true"}),
    "tollway-pg-leases": (True, {"TOLLWAY_BUDGET_LEASES": "true"}),
    # `tollway serve --workers 2` (issue 20 step 5): two processes on one port, one database and Redis.
    "tollway-pg-2workers": (True, {"TOLLWAY_WORKERS": "2"}),
}


def start_tollway_on(
    name: str,
    upstream: str,
    tmp: Path,
    postgres: bool,
    extra: dict[str, str] | None = None,
    launcher: list[str] | None = None,
) -> System:
    """`tollway serve` on a database of its own (a fresh PostgreSQL one, dropped by stop(), or a
    SQLite file), which notes["database_url"] names for the money check (bench/money_check.py)."""
    if not postgres:
        url = f"sqlite:///{tmp}/{name}.db"
        system = start_tollway(name, upstream, tmp, url, dict(extra or {}), launcher)
    else:
        url, drop = fresh_pg_database("tollway_bench")
        try:
            system = start_tollway(
                name, upstream, tmp, url, {"TOLLWAY_REDIS_URL": REDIS_URL, **(extra or {})}, launcher
            )
        except Exception:
            drop()
            raise
        system.cleanup.append(drop)
    system.notes["database_url"] = url
    return system


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
