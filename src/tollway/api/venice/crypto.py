"""Venice's crypto RPC discovery: `GET crypto/rpc/networks`, the sorted slugs of the networks the operator
configured (TOLLWAY_CRYPTO_RPC_NETWORKS: slug → node URL; none by default). Public, as Venice's document
says: no key needed, and only the slugs are shown, never a node URL. The proxy itself
(`POST crypto/rpc/{network}`) is not served yet."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tollway.api.http import JSON
from tollway.api.spec import documented

router = APIRouter(tags=["crypto"])


@router.get(
    "/crypto/rpc/networks",
    summary="The crypto RPC networks configured here (slugs, sorted); no key needed",
    **documented(errors=(400,)),
)
async def rpc_networks(request: Request) -> Response:
    networks: dict[str, str] = request.app.state.services.settings.crypto_rpc_networks
    return JSON({"networks": sorted(networks)})
