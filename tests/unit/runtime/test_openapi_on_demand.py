"""The OpenAPI document is built by the first request that needs it, not at start-up (runtime/app.py):
0.6 s of CPU per process start that most processes never use. The requests that need it still get
the whole document, and it is then kept out of the garbage collector's sight like start-up's objects."""

from __future__ import annotations

import gc
from pathlib import Path

import httpx2
import pytest

from tests.money.harness import serving

pytestmark = pytest.mark.slow


def test_the_document_is_built_by_the_first_request_that_needs_it(tmp_path: Path) -> None:
    from tollway.runtime.app import create_app
    from tollway.settings import Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/tollway.db", data_dir=tmp_path / "data", metrics=False
    )
    app = create_app(settings)
    with serving(app) as server, httpx2.Client(base_url=server.url, trust_env=False, timeout=60) as client:
        assert client.get("/ready").status_code == 200
        assert app.openapi_schema is None  # started without it

        frozen = gc.get_freeze_count()
        llms = client.get("/llms.txt")
        assert llms.status_code == 200
        assert "/v1/chat/completions" in llms.text  # rendered from the live document
        assert app.openapi_schema is not None
        assert gc.get_freeze_count() > frozen  # kept out of the collector's sight

        document = client.get("/openapi.json").json()
        assert document == app.openapi_schema
        assert "/v1/chat/completions" in document["paths"]
        assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
