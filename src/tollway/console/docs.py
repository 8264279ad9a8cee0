"""/docs: Swagger UI served from this package (no CDN), with an Authorize button for the bearer key.

The assets are swagger-ui-dist 5.35.0 from the npm registry (Apache-2.0; LICENSE and NOTICE beside them
in static/swagger-ui/). The initializer is a file of ours, not inline script: the page's CSP allows
only scripts from this origin.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

router = APIRouter()
SWAGGER_UI_VERSION = "5.35.0"
CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tollway API</title>
<link rel="stylesheet" href="/console/static/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/console/static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/console/static/swagger-init.js"></script></body></html>"""


@router.get("/docs", include_in_schema=False)
async def swagger_ui() -> Response:
    return HTMLResponse(PAGE, headers={"content-security-policy": CSP, "cache-control": "no-cache"})
