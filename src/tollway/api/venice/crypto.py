"""Venice's crypto RPC: `GET crypto/rpc/networks`, the sorted slugs of the networks the operator configured
(TOLLWAY_CRYPTO_RPC_NETWORKS: slug → node URL; none by default), public as Venice's document says; and
`POST crypto/rpc/{network}`, the JSON-RPC proxy to that network's node, allow-listed and billed per
credit (core/rpc/: the method table, the hold, the node call and the settlement). Only slugs are ever
shown, never a node URL."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, RootModel
from starlette.responses import Response

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, read_json, request_id
from tollway.api.idempotent import once
from tollway.api.spec import JSON as JSON_MEDIA
from tollway.api.spec import PAID, documented
from tollway.core.caller import Caller
from tollway.core.rpc.methods import MAX_BATCH
from tollway.core.rpc.proxy import RpcProxy, unsupported

router = APIRouter(tags=["crypto"])


class RpcCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    jsonrpc: str = Field(default="2.0", pattern=r"^2\.0$", description='"2.0" (filled in when left out)')
    method: str = Field(min_length=1, description="An allow-listed method: Venice's 1×, 2× and 4× tiers")
    params: list[Any] | dict[str, Any] = Field(default_factory=list)
    id: int | str | None = None


class RpcRequest(RootModel[RpcCall | Annotated[list[RpcCall], Field(min_length=1, max_length=MAX_BATCH)]]):
    """One JSON-RPC 2.0 call, or a batch of 1 to 100."""


RPC_ANSWER = {
    JSON_MEDIA: {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}}
}


@router.get(
    "/crypto/rpc/networks",
    summary="The crypto RPC networks configured here (slugs, sorted); no key needed",
    **documented(errors=(400,)),
)
async def rpc_networks(request: Request) -> Response:
    networks: dict[str, str] = request.app.state.services.settings.crypto_rpc_networks
    return JSON({"networks": sorted(networks)})


@router.post(
    "/crypto/rpc/{network}",
    summary="JSON-RPC to a blockchain node (one call or a batch of up to 100), billed per credit",
    **documented(body=RpcRequest, errors=PAID, ok=RPC_ANSWER, charged=True),
)
async def rpc_proxy(network: str, request: Request, who: Caller = Depends(inference_caller)) -> Response:
    proxy: RpcProxy | None = request.app.state.services.rpc
    if proxy is None:
        raise unsupported(network)
    proxy.node(network)  # an unknown network is a 400 before the body is read

    async def forward() -> Response:
        answer = await proxy.forward(who, request_id(request), network, await read_json(request))
        return Response(answer.body, media_type="application/json", headers=answer.headers)

    # The key is bound to the network too: the same key on another network is a 400, not a replay.
    return await once(request, who, f"crypto/rpc/{network}", forward)
