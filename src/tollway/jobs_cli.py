"""`tollway jobs …`: a job runner as its own process (scale-out), reconciliation, counts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer

from tollway.runtime.services import batches_from, build_services, jobs_from
from tollway.settings import ConfigurationError, Settings

jobs_app = typer.Typer(help="Async media jobs: workers and reconciliation.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
T = TypeVar("T")


def _run(main: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(main)
    except ConfigurationError as exc:  # e.g. a TOLLWAY_SECRET other than the API replicas'
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@jobs_app.command("worker")
def worker() -> None:
    """Run queued and in-flight jobs until SIGTERM/SIGINT (leases go back on a clean stop)."""

    async def main() -> None:
        services = await build_services(Settings())
        jobs = jobs_from(services)
        batches_from(services, jobs)  # this worker runs batches too
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        typer.echo(f"tollway jobs worker {jobs.runner.owner} running")
        runner = asyncio.create_task(jobs.runner.run_forever())
        try:
            await stop.wait()
        finally:
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner
            await jobs.aclose()
            await services.aclose(0)

    _run(main())


@jobs_app.command("reconcile")
def reconcile(as_json: JsonFlag = False) -> None:
    """Poll every `unknown` job's upstream now: settle what completed, refund what failed."""

    async def main() -> dict[str, Any]:
        services = await build_services(Settings())
        jobs = jobs_from(services)
        try:
            ids = await jobs.store.unknown_ids()
            await jobs.store.make_due(ids)
            while await jobs.runner.run_once():
                await jobs.runner.drain()
            await jobs.runner.drain()
            result: dict[str, Any] = {}
            for job_id in ids:
                job = await jobs.store.get(job_id)
                result[job_id] = job.status if job else "missing"
            return result
        finally:
            await jobs.aclose()
            await services.aclose(0)

    result = _run(main())
    text = "\n".join(f"{k} {v}" for k, v in result.items()) or "no unknown jobs"
    typer.echo(json.dumps(result, indent=2) if as_json else text)


@jobs_app.command("stats")
def stats(as_json: JsonFlag = False) -> None:
    """Jobs by status."""

    async def main() -> dict[str, int]:
        services = await build_services(Settings())
        try:
            return await jobs_from(services).store.counts()
        finally:
            await services.aclose(0)

    counts = _run(main())
    typer.echo(json.dumps(counts, indent=2) if as_json else "\n".join(f"{k} {v}" for k, v in counts.items()))
