"""The browser console at /console (issue 24) and the offline /docs.

On the api floor, beside `api/`: it calls the core services the API routes call, never the API's
modules. Server-rendered HTML (html.py), SVG charts drawn here (charts.py), one small script
(static/console.js, the copy button) and a stylesheet; Swagger UI's assets ship in static/swagger-ui/.
No CDN, no Node build. Sessions: sessions.py. Operator pages: operator.py (create, credit, status),
operator_accounts.py (directory, an account's page), operator_reports.py (usage and revenue, upstreams,
catalog, audit log); a reseller's key edit/rotate and billing statement: keys_edit.py. /docs (Swagger UI),
/llms.txt and /llms-full.txt: reference.py.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from tollway.console import (
    dashboard,
    explore,
    keys_edit,
    operator,
    operator_accounts,
    operator_reports,
    reference,
    signin,
)

STATIC = Path(__file__).resolve().parent / "static"
ROUTERS = (
    signin.router,
    dashboard.router,
    explore.router,
    keys_edit.router,
    operator.router,
    operator_accounts.router,
    operator_reports.router,
    reference.router,
)


def install(app: FastAPI) -> None:
    """Mount the console's pages (not in /openapi.json: they are HTML for people) and its assets."""
    for router in ROUTERS:
        app.include_router(router, include_in_schema=False)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
