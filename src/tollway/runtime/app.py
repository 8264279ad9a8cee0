"""Composition root: settings → store → catalog → providers → pipeline → routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.responses import Response

from tollway import __version__, console
from tollway.api import accounts, funding, ops, spec, venice
from tollway.api import anthropic as anthropic_api
from tollway.api import catalog as catalog_api
from tollway.api import gemini as gemini_api
from tollway.api import openai as openai_api
from tollway.api import responses as responses_api
from tollway.api.auth import caller
from tollway.api.batches import anthropic as anthropic_batches_api
from tollway.api.batches import openai as batches_api
from tollway.api.http import error_response, install_error_handlers, request_id
from tollway.api.limits import MCP_BODY_BYTES
from tollway.api.media import audio as audio_api
from tollway.api.media import images as images_api
from tollway.api.media import jobs as jobs_api
from tollway.api.media import openai_media
from tollway.api.media import tasks as tasks_api
from tollway.api.middleware import FailedRequests, RequestContext
from tollway.core.access.key_events_bus import KeyEventsBus
from tollway.core.catalog import character_store
from tollway.errors import TollwayError
from tollway.mcp_server import http as mcp_http
from tollway.runtime import maintenance
from tollway.runtime.reload import Reloader
from tollway.runtime.services import Services, batches_from, build_services, jobs_from
from tollway.settings import Settings
from tollway.telemetry import metrics, tracing
from tollway.telemetry.access import AccessLog, InFlight

log = logging.getLogger("tollway")


async def _start_key_events(services: Services) -> KeyEventsBus | None:
    """Redis configured: revocations reach every replica's key cache at once (core/access/key_events_bus.py)."""
    settings = services.settings
    if not settings.redis_url:
        return None
    bus = KeyEventsBus(
        settings.redis_url,
        settings.redis_events_channel,
        on_revoked=services.keys.forget,
        on_reset=services.keys.forget_all,
    )
    await bus.start()
    services.keys.publish_revoked = bus.publish_revoked
    return bus


def _on_sighup(reloader: Reloader) -> None:
    """SIGHUP reloads the catalog (main thread only; in-process test servers have no signals)."""

    async def reload() -> None:
        try:
            await reloader.reload()
        except Exception as exc:
            log.error("catalog reload (SIGHUP) failed; the old catalog stays: %s", exc)

    def handler() -> None:
        task = asyncio.get_running_loop().create_task(reload())
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError, AttributeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handler)


_pending: set[asyncio.Task[None]] = set()


async def _mcp_key(request: Request) -> Response | None:
    """/mcp's key check: the REST routes' authentication, and their refusal (mcp_server/http.py)."""
    try:
        await caller(request)
    except TollwayError as err:
        return error_response(err, request_id(request), request.url.path)
    return None


def _add_schemas(app: FastAPI, models: Iterable[type[BaseModel]]) -> None:
    """Request bodies are parsed by the core, not by FastAPI; publish their schemas all the same
    (api/spec.py references them). FastAPI's own 422 never answers: api/http.py makes it a 400."""
    original = app.openapi

    def publish(components: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
        if components.setdefault(name, schema) != schema:
            raise ValueError(f"two schemas are named {name!r} in /openapi.json: rename one")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, definition in generated.pop("$defs", {}).items():
                    publish(components, name, definition)
                publish(components, model.__name__, generated)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if "HTTPValidationError" in str(operation.get("responses", {}).get("422")):
                        del operation["responses"]["422"]
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            # The key as a bearer token: /docs (console/reference.py) shows an Authorize button for it.
            schema["components"]["securitySchemes"] = {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "A Tollway API key."}
            }
            schema["security"] = [{"bearerAuth": []}]
            app.openapi_schema = schema
            # Built on the first request that needs it (/openapi.json, /docs, /llms.txt), not at
            # start-up: 0.6 s of CPU that most processes never use. It then lives as long as the
            # process, so it goes out of the collector's sight like start-up's objects (lifespan).
            gc.collect()
            gc.freeze()
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings | None = None, *, reload_others: Callable[[], None] | None = None
) -> FastAPI:
    """`reload_others`: a worker of `serve --workers N` (runtime/worker.py) tells the others to reload."""
    settings = settings or Settings()
    tracing.configure(settings.traces)  # TOLLWAY_TRACES: off by default (telemetry/tracing.py)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(settings)
        operator_key = await services.keys.ensure_operator_key()
        if operator_key:
            print(f"\n  Operator key (shown once, keep it safe): {operator_key}\n", flush=True)
        app.state.services = services
        services.renew_leases()  # until services.aclose() below has drained the streams
        bus = await _start_key_events(services)
        reloader = Reloader(services, in_flight, reload_others)
        app.state.reloader = reloader
        _on_sighup(reloader)
        await character_store.refresh(services.engine, services.catalog)  # the admin API's characters
        tasks = [
            asyncio.create_task(
                maintenance.sweep_forever(services.ledger, services.engine, settings.sweep_interval_seconds)
            ),
            asyncio.create_task(
                maintenance.characters_forever(
                    services.engine, lambda: services.catalog, settings.sweep_interval_seconds
                )
            ),
        ]
        if settings.ledger_check_interval_seconds > 0:
            interval = settings.ledger_check_interval_seconds
            every = min(interval, settings.sweep_interval_seconds)
            tasks.append(
                asyncio.create_task(maintenance.ledger_check_forever(services.engine, interval, every))
            )
        if settings.usage_retention_days > 0:
            tasks.append(
                asyncio.create_task(
                    maintenance.retention_forever(
                        services.engine, settings.usage_retention_days, settings.maintenance_interval_seconds
                    )
                )
            )
        if services.responses is not None:
            tasks.append(
                asyncio.create_task(
                    maintenance.stored_responses_forever(services.responses, settings.sweep_interval_seconds)
                )
            )
        if services.x402 is not None:  # x402 payments a crash left sent but not credited
            finisher = services.x402.finisher()
            tasks.append(asyncio.create_task(finisher.run_forever(settings.sweep_interval_seconds)))
        # Async media jobs (core/jobs/service.py, core/jobs/runner.py): every replica runs a runner unless TOLLWAY_JOBS_RUNNER=false.
        jobs = jobs_from(services)
        app.state.jobs = jobs
        app.state.batches = batches = batches_from(
            services, jobs
        )  # files and batches, run by the jobs' runner
        tasks.append(asyncio.create_task(batches.sweep_forever(settings.maintenance_interval_seconds)))
        if settings.jobs_runner:
            tasks.append(asyncio.create_task(jobs.runner.run_forever()))
        if services.publisher is not None:  # usage events and low-balance alerts (core/events/)
            tasks.append(asyncio.create_task(services.publisher.run_forever()))
        watching = None  # USDC deposits (core/funding/deposits.py): one watcher across replicas, by lease
        if services.deposits is not None and settings.deposit_watcher:
            deposits = services.deposits
            watching = asyncio.create_task(deposits.watcher.run_forever(deposits.poll_seconds))
            tasks.append(watching)
        listen = settings.metrics_listen if settings.metrics else None
        stop_metrics = metrics.serve_apart(*listen) if listen else None  # TOLLWAY_METRICS_ADDRESS
        # What start-up built lives as long as the process: out of the cycle collector's sight, a full
        # collection no longer walks ~190k objects, 100 ms of a stalled event loop each time. A larger
        # first generation lets a call's short-lived objects die by reference count before a
        # collection sees them, so fewer reach the older ones (docs/benchmarks.md, 128 and 256 streams).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 10, 10)
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            if mcp_endpoint is not None:
                await mcp_endpoint.aclose()
            if stop_metrics is not None:
                stop_metrics()
            for task in tasks:
                task.cancel()
            if watching is not None:  # let it give its lease back before the engine closes
                await asyncio.wait([watching], timeout=2)
            await jobs.aclose()  # leases of jobs in flight go back: another runner resumes them
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError, AttributeError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            # Streams whose client is still there were given shutdown_grace_seconds by uvicorn; those
            # still metering (client gone) get as long again, then everything settles and closes.
            await services.aclose(min(settings.stream_drain_seconds, settings.shutdown_grace_seconds))
            await reloader.aclose(settings.shutdown_grace_seconds)
            if bus is not None:
                await bus.aclose()
            tracing.shutdown()  # last: flush the spans of everything above (otlp batches)

    app = FastAPI(
        title="Tollway",
        version=__version__,
        description="OpenAI-compatible AI API platform. Every route is served under /v1 and /api/v1. "
        "Every metered answer says what it cost: `usage.cost` (USD, a JSON number: the ledger's charge) in "
        "JSON bodies and final stream chunks, and the `x-tollway-cost-usd` header on buffered answers.",
        lifespan=lifespan,
        docs_url=None,  # console/reference.py serves /docs from packaged assets: FastAPI's loads a CDN
        redoc_url=None,
        # FastAPI's native OpenTelemetry would record query strings (Gemini clients send ?key=) and
        # exception messages (which can quote a prompt); ours is telemetry/tracing.py, allow-listed.
        telemetry={
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        },
    )
    app.state.ready = False
    in_flight = InFlight()
    app.state.in_flight = in_flight
    install_error_handlers(app)
    for prefix, documented in (("/v1", True), ("/api/v1", False)):
        # before openai's models/{model_id}: models/traits and models/compatibility_mapping must win.
        app.include_router(catalog_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(openai_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(images_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(audio_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(openai_media.router, prefix=prefix, include_in_schema=documented)
        app.include_router(jobs_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(batches_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(anthropic_batches_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(tasks_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(anthropic_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(responses_api.router, prefix=prefix, include_in_schema=documented)
        app.include_router(ops.admin_router, prefix=prefix, include_in_schema=documented)
        for router in accounts.ROUTERS:  # in their order (api/accounts/__init__.py)
            app.include_router(router, prefix=prefix, include_in_schema=documented)
        for router in funding.ROUTERS:  # issue 25's rails, each off until configured
            app.include_router(router, prefix=prefix, include_in_schema=documented)
        for router in venice.ROUTERS:  # Venice-only operations (api/venice/__init__.py)
            app.include_router(router, prefix=prefix, include_in_schema=documented)
    app.include_router(ops.router)
    app.include_router(gemini_api.router)  # /v1beta/... and /api/v1beta/..., models.list/get too
    console.install(app)  # /console (the browser console) and /docs, offline
    mcp_endpoint = None
    if settings.mcp:  # /mcp: the MCP tools, each a call into this app (mcp_server/http.py)
        mcp_route, mcp_endpoint = mcp_http.route(app, _mcp_key, MCP_BODY_BYTES)
        app.router.routes.append(mcp_route)
    app.add_middleware(FailedRequests)  # inside RequestContext: sees the request id
    if tracing.enabled():  # server spans, inside AccessLog: they read the ids the access log collects
        app.add_middleware(tracing.ServerSpans)
    app.add_middleware(AccessLog, in_flight=in_flight)  # access log + metrics; inside RequestContext
    app.add_middleware(RequestContext, inference_body_bytes=settings.max_body_bytes)
    _add_schemas(app, spec.BODIES.values())
    return app
