"""Account routes: operator admin, keys (NightVeil, Venice and web3 shapes), rate limits, billing.

`ROUTERS` is the order they are included in, and the order matters: Starlette takes the first route
that matches, and several share the `api_keys/` prefix with an `api_keys/{id}` route.
"""

from fastapi import APIRouter

from tollway.api.accounts import (
    admin,
    billing,
    billing_history,
    key_edits,
    keys,
    operator,
    rate_limits,
    reports,
    statements,
    venice_keys,
    web3_keys,
)

ROUTERS: tuple[APIRouter, ...] = (
    rate_limits.router,  # before any api_keys/{id} route: api_keys/rate_limits must win
    admin.router,
    operator.router,
    key_edits.operator_router,
    reports.router,
    statements.router,
    billing.router,
    billing_history.router,
    web3_keys.router,  # before venice_keys: api_keys/generate_web3_key must win over api_keys/{id}
    web3_keys.admin_router,
    keys.router,
    key_edits.router,
    venice_keys.router,
)
