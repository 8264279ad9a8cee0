"""Venice-only operations (issue 23) that have no NightVeil/OpenAI counterpart to share a module with:
the job lifecycle's `complete`, and the routes added for parity with Venice's OpenAPI document.
`ROUTERS` are included under both prefixes, after the other routers (runtime/app.py)."""

from fastapi import APIRouter

from tollway.api.venice import augment, completion, crypto, multi_edit, not_offered

ROUTERS: tuple[APIRouter, ...] = (
    completion.router,
    augment.router,
    crypto.router,
    multi_edit.router,
    not_offered.router,
)
