"""OpenAI's legacy completions and moderations, on the one charge path (Pipeline.admit → hold → settle).

Completions continue a raw prompt: only where an engine really does that (providers/registry.py
capability `completions`: the embedded models always, an OpenAI-compatible upstream when the model
lists `completions` in its catalog capabilities). A chat-only model is refused with a 400 that says
so, never faked through chat. Prices are the model's token prices, exactly as chat's.

Moderations go to a catalog model of type `moderation` on an upstream that serves `/moderations`;
with none configured the route says so (404), never a made-up score.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from tollway.base import tokens
from tollway.core.access import policy
from tollway.core.catalog import names as model_names
from tollway.core.catalog.catalog import Catalog, CatalogModel
from tollway.core.inference.chat_plan import DEFAULT_OUTPUT_CAP
from tollway.core.inference.chat_stream import delta_texts
from tollway.core.inference.pipeline import Admitted, Call, Pipeline, Result, charged_headers
from tollway.core.inference.schemas import CompletionRequest, ModerationRequest, validate
from tollway.core.money.prices import TokenUsage, cost_number, token_cost, usage_dict, usage_of
from tollway.errors import ErrorCode, TollwayError
from tollway.providers import registry
from tollway.providers.base import Completer, Moderator, Provider, UpstreamError

LEGACY_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /completions when max_tokens is left out


def offers_completions(catalog: Catalog, model: CatalogModel) -> bool:
    """Whether some route of `model` continues a raw prompt (registry capability `completions`)."""
    for route in model.config.routes:
        mode = registry.capabilities(catalog.providers[route.provider].kind).completions
        if mode == "always" or (mode == "declared" and model.supports("completions")):
            return True
    return False


def _not_offered(provider: Provider, what: str) -> UpstreamError:
    """A route of another kind: the router moves on to the next route (kind `route`)."""
    return UpstreamError(f"provider {provider.id!r} does not serve {what}", retryable=False, kind="route")


def _resolve(pipeline: Pipeline, request: CompletionRequest) -> tuple[CatalogModel, dict[str, str]]:
    catalog = pipeline.catalog
    model, headers = model_names.deprecation(catalog, model_names.resolve(catalog, request.model, "text"))
    if not offers_completions(catalog, model):
        raise TollwayError(
            ErrorCode.UNSUPPORTED_CAPABILITY,
            f"{model.id!r} does not offer raw completions (/v1/completions): its upstream is chat-only. "
            "Use /v1/chat/completions, or a model whose catalog entry lists the `completions` capability.",
            param="model",
        )
    if request.stream and (request.best_of or 1) > 1:
        raise TollwayError(ErrorCode.VALIDATION, "`best_of` cannot be used with `stream`.", param="best_of")
    return model, headers


async def complete(pipeline: Pipeline, call: Call, body: dict[str, Any]) -> Result:
    """A legacy completion, buffered or streamed; charged at the model's token prices."""
    request = validate(CompletionRequest, body)
    model, deprecation = _resolve(pipeline, request)
    await policy.enforce(pipeline.catalog, call.caller, body, model)  # 422 before any charge
    assert model.token_prices is not None
    prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
    runs = len(prompts) * max(request.n or 1, request.best_of or 1)  # what an engine generates
    cap = min(
        model.config.max_output_tokens or DEFAULT_OUTPUT_CAP, request.max_tokens or LEGACY_DEFAULT_MAX_TOKENS
    )
    # Every run reads its prompt (an engine may count each), and writes up to `cap` tokens.
    per_run_prompt = max(tokens.count([p]) for p in prompts) + tokens.count([request.suffix or ""]) + 1
    prompt_estimate = per_run_prompt * runs
    estimate = token_cost(model.token_prices, TokenUsage(prompt_estimate, cap * runs))
    admitted = await pipeline.admit(call, model, estimate, prompt_estimate + cap * runs)
    admitted.headers.update(deprecation)
    admitted.trace.max_tokens(cap)
    upstream = {**{k: v for k, v in body.items() if k != "venice_parameters"}, "max_tokens": cap}
    for name, value in model.config.sampling.items():  # the operator's defaults; the caller's win
        upstream.setdefault(name, value)
    async with admitted.hold:  # a failure before the first byte releases it
        if request.stream:
            wants_usage = bool(request.stream_options and request.stream_options.include_usage)
            return await _stream(pipeline, call, admitted, upstream, prompt_estimate, wants_usage)
        return await _buffered(pipeline, admitted, upstream, prompt_estimate)


async def _buffered(
    pipeline: Pipeline, admitted: Admitted, body: dict[str, Any], prompt_estimate: int
) -> Result:
    async def attempt(provider: Provider, upstream_model: str) -> dict[str, Any]:
        if not hasattr(provider, "complete"):
            raise _not_offered(provider, "raw completions")
        return await cast(Completer, provider).complete({**body, "model": upstream_model})

    provider, result = await pipeline.first_route(admitted.model, attempt, admitted.headers, admitted.trace)
    usage, source = usage_of(result.get("usage")), "provider"
    if usage is None:
        usage, source = TokenUsage(prompt_estimate, tokens.count(delta_texts(result))), "estimated"
    result["model"] = admitted.model.id
    result["object"] = "text_completion"
    result["usage"] = usage_dict(usage)
    if admitted.batch is not None:
        await admitted.batch.keep(result)  # before the settlement that records the line
    charged = await pipeline.settle(admitted, provider.id, usage, source, "completed")
    result["usage"]["cost"] = cost_number(charged)
    return Result(headers=charged_headers(admitted.headers, charged), body=result)


async def _stream(
    pipeline: Pipeline,
    call: Call,
    admitted: Admitted,
    body: dict[str, Any],
    prompt_estimate: int,
    wants_usage: bool,
) -> Result:
    """Opened like a chat stream (retries only before its first chunk), relayed and metered by the
    same ChatStream, its chunks being `text_completion`s."""

    def start(provider: Provider, upstream_model: str) -> AsyncIterator[dict[str, Any]]:
        if not hasattr(provider, "complete_stream"):
            raise _not_offered(provider, "raw completions")
        return cast(Completer, provider).complete_stream({**body, "model": upstream_model})

    return await pipeline.stream(call, admitted, start, prompt_estimate, wants_usage, "text_completion")


# -- moderations ------------------------------------------------------------------------------


def moderation_model(catalog: Catalog, name: str | None) -> CatalogModel:
    """The named moderation model, or the catalog's first; 404 when the deployment has none."""
    if name:
        return model_names.resolve(catalog, name, "moderation")
    offered = [m for m in catalog.models.values() if m.type == "moderation"]
    if not offered:
        raise TollwayError(
            ErrorCode.NOT_FOUND,
            "This deployment offers no moderation model (/v1/moderations): the operator has configured none.",
            param="model",
        )
    return offered[0]


async def moderate(pipeline: Pipeline, call: Call, body: dict[str, Any]) -> Result:
    """The upstream's own moderation scores; charged at the model's input price for the text sent."""
    request = validate(ModerationRequest, body)
    model = moderation_model(pipeline.catalog, request.model)
    assert model.token_prices is not None
    texts = [request.input] if isinstance(request.input, str) else request.input
    words = [t if isinstance(t, str) else str(t.get("text") or "") for t in texts]
    estimate_tokens = tokens.count(words) + len(words) * 2
    estimate = token_cost(model.token_prices, TokenUsage(estimate_tokens))
    admitted = await pipeline.admit(call, model, estimate, estimate_tokens)

    async def attempt(provider: Provider, upstream_model: str) -> dict[str, Any]:
        if not hasattr(provider, "moderate"):
            raise _not_offered(provider, "moderations")
        return await cast(Moderator, provider).moderate({**body, "model": upstream_model})

    async with admitted.hold:
        provider, result = await pipeline.first_route(model, attempt, admitted.headers)
    usage = TokenUsage(estimate_tokens)  # moderation answers carry no usage: the estimate is the count
    charged = await pipeline.settle(admitted, provider.id, usage, "estimated", "completed")
    result["model"] = model.id  # a moderation answer has no `usage`: the header alone carries the charge
    return Result(headers=charged_headers(admitted.headers, charged), body=result)
