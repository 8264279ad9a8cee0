"""A chat request's Venice extensions, applied around the pipeline (seed 002 §3, §4, §5, §6.7).

`prepare` (before admission, no I/O): feature suffix and `venice_parameters`, model resolution
(id → trait → compatibility mapping), deprecation, character, system prompts, `response_format`,
thinking switches, and the one output cap (`output_cap`) the hold is sized for and the upstream is
sent; the body that goes upstream no longer carries `venice_parameters`.
`augment` (after admission): web search or scraping, results put before the model.
`finish` / `chunk`: the answer as the client sees it: `<think>` blocks stripped (streams through a
state machine), the search-documents tool call, the `venice_parameters` echo.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from tollway.base.config import CharacterConfig
from tollway.base.fetch import UrlFetcher
from tollway.core.caller import Caller
from tollway.core.catalog import characters
from tollway.core.catalog import names as model_names
from tollway.core.catalog.catalog import Catalog, CatalogModel
from tollway.core.inference import search, venice
from tollway.core.inference.thinking import ThinkStripper, strip_thinking
from tollway.errors import ErrorCode, TollwayError
from tollway.providers import registry

DOCUMENTS_TOOL = "venice_web_search_documents"
DEFAULT_OUTPUT_CAP = 4096  # a model whose catalog entry names no max_output_tokens
CAP_FIELDS = ("max_completion_tokens", "max_tokens")  # OpenAI's names; providers translate
_COUNT: TypeAdapter[int] = TypeAdapter(int)  # the coercion schemas.ChatRequest applies to them
_fetcher: UrlFetcher | None = None


def default_fetcher() -> UrlFetcher:
    global _fetcher
    if _fetcher is None:
        _fetcher = UrlFetcher(max_bytes=search.MAX_SCRAPE_BYTES, timeout_seconds=10)
    return _fetcher


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return content if isinstance(content, str) else ""


def _last_user_index(messages: list[Any]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], dict) and messages[index].get("role") == "user":
            return index
    return None


def _split_model(catalog: Catalog, name: str) -> tuple[str, dict[str, Any]]:
    if ":" not in name:
        return name, {}
    try:
        catalog.resolve(name)  # a catalog id with a colon in it (an Ollama tag) is not a suffix
        return name, {}
    except TollwayError:
        return venice.split_suffix(name)


def _check_character_access(caller: Caller, character: CharacterConfig) -> None:
    if not character.adult:
        return
    if caller.content_tier != "uncensored":
        raise TollwayError(
            ErrorCode.CONTENT_TIER_FORBIDDEN,
            f"Character {character.slug!r} is adult: use a key minted with content_tier=uncensored.",
            param="venice_parameters.character_slug",
        )
    if not caller.age_verified:
        raise TollwayError(ErrorCode.AGE_VERIFICATION_REQUIRED, param="venice_parameters.character_slug")


def response_format(catalog: Catalog, model: CatalogModel, value: Any) -> Any:
    """Both json_schema layouts (the schema inline, or OpenAI's {name, strict, schema}) → OpenAI's."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return value
    if kind not in ("json_schema", "json_object"):
        raise TollwayError(
            ErrorCode.VALIDATION,
            "`response_format.type` must be json_schema, json_object or text.",
            param="response_format.type",
        )
    kinds = {catalog.providers[route.provider].kind for route in model.config.routes}
    if not any(registry.capabilities(kind).structured_output for kind in kinds):
        raise TollwayError(
            ErrorCode.UNSUPPORTED_CAPABILITY,
            f"{model.id!r} does not support structured responses (`response_format` {kind}).",
            param="response_format",
        )
    if kind == "json_object":
        return {"type": "json_object"}
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not spec:
        raise TollwayError(
            ErrorCode.VALIDATION,
            "`response_format.json_schema` must be a JSON schema object.",
            param="response_format.json_schema",
        )
    if isinstance(spec.get("schema"), dict):  # OpenAI's layout
        normal = {"name": spec.get("name") or "response", "schema": spec["schema"]}
        for key in ("strict", "description"):
            if key in spec:
                normal[key] = spec[key]
    else:  # Venice's reference example: the schema itself
        normal = {"name": "response", "strict": True, "schema": spec}
    return {"type": "json_schema", "json_schema": normal}


@dataclass(slots=True)
class ChatPlan:
    model: CatalogModel
    body: dict[str, Any]
    params: venice.VeniceParams
    headers: dict[str, str]
    may_search: bool = False
    scrape_urls: list[str] = field(default_factory=list)
    max_output: int = DEFAULT_OUTPUT_CAP  # per choice: what the hold covers and the upstream is sent
    citations: list[dict[str, Any]] = field(default_factory=list)
    _strippers: dict[int, ThinkStripper] = field(default_factory=dict)
    _first: bool = True

    def clamp(self, max_output: int) -> None:
        """A smaller output cap (what the balance can pay): held for, and sent upstream."""
        self.max_output = max_output
        field_name = next(name for name in CAP_FIELDS if name in self.body)
        self.body[field_name] = max_output

    @property
    def context_allowance(self) -> int:
        """Tokens search or scraping may add to the prompt: reserved up front."""
        return search.CONTEXT_TOKEN_ALLOWANCE if self.may_search or self.scrape_urls else 0

    # -- search -----------------------------------------------------------------------------

    async def augment(
        self, provider: search.SearchProvider | None, fetcher: UrlFetcher | None = None
    ) -> dict[str, Any]:
        """Scrape the linked pages (which bypasses search), else search; the body with the results."""
        messages = list(self.body["messages"])
        last = _last_user_index(messages)
        if last is None:
            return self.body
        found: list[search.Citation] = []
        scraped = False
        if self.scrape_urls:
            found = await search.scrape(self.scrape_urls, fetcher or default_fetcher())
            scraped = bool(found)
        if not found and self.may_search and provider is not None:
            query = _text_of(messages[last]).strip()[:400]
            if query:
                try:
                    found = await provider.search(query, search.MAX_RESULTS)
                except search.SearchUnavailable as exc:
                    if self.params.enable_web_search == "on":
                        raise TollwayError(ErrorCode.UPSTREAM_ERROR, f"Web search failed: {exc}.") from None
        self.citations = [c.as_dict() for c in found]
        if not found:
            return self.body
        prompt = search.context_prompt(found, cite=self.params.enable_web_citations, scraped=scraped)
        messages.insert(last, {"role": "system", "content": prompt})
        self.body = {**self.body, "messages": messages}
        return self.body

    def _documents_call(self) -> dict[str, Any]:
        return {
            "id": f"call_{DOCUMENTS_TOOL}",
            "type": "function",
            "function": {"name": DOCUMENTS_TOOL, "arguments": json.dumps({"documents": self.citations})},
        }

    # -- the answer ---------------------------------------------------------------------------

    def finish(self, result: dict[str, Any]) -> None:
        """A buffered answer, in place."""
        for choice in result.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                continue
            if self.params.strips_thinking:
                if isinstance(message.get("content"), str):
                    message["content"] = strip_thinking(message["content"])
                for key in ("reasoning_content", "reasoning"):
                    if key in message:
                        message[key] = None
            if self.params.return_search_results_as_documents and self.citations:
                message["tool_calls"] = [*(message.get("tool_calls") or []), self._documents_call()]
        result["venice_parameters"] = self.params.echo(self.citations)

    def chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """One stream chunk, in place. Choices left with nothing to show are removed."""
        choices = chunk.get("choices")
        if self.params.strips_thinking and choices:
            kept = []
            for choice in choices:
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    kept.append(choice)
                    continue
                stripper = self._strippers.setdefault(int(choice.get("index") or 0), ThinkStripper())
                text = delta.get("content")
                if isinstance(text, str):
                    delta["content"] = stripper.feed(text)
                if choice.get("finish_reason") is not None:
                    tail = stripper.flush()
                    if tail:
                        delta["content"] = (delta.get("content") or "") + tail
                delta.pop("reasoning_content", None)
                delta.pop("reasoning", None)
                empty = not delta.get("content") and set(delta) <= {"content"}
                if empty and choice.get("finish_reason") is None and not choice.get("logprobs"):
                    continue
                kept.append(choice)
            chunk["choices"] = kept
        if self._first and chunk.get("choices"):
            self._first = False
            # Search results ride on the first chunk the client sees (seed 003: "the first emitted chunk").
            if self.params.include_search_results_in_stream:
                chunk["venice_parameters"] = self.params.echo(self.citations)
            if self.params.return_search_results_as_documents and self.citations:
                delta = chunk["choices"][0].setdefault("delta", {})
                delta["tool_calls"] = [
                    *(delta.get("tool_calls") or []),
                    {"index": 0, **self._documents_call()},
                ]
        return chunk


def _count(value: Any) -> int | None:
    if value is None:
        return None
    try:
        count = _COUNT.validate_python(value)
    except ValidationError:
        return None
    return count if count >= 1 else None


def output_cap(model: CatalogModel, body: dict[str, Any]) -> tuple[str, int]:
    """The output cap of one choice, and the field that carries it upstream.

    The smallest of the model's `max_output_tokens` (DEFAULT_OUTPUT_CAP when it names none) and every
    limit the body asks for (the client's, or a character's). An upstream sent no cap may produce
    more than was held; so the hold is sized for this cap and the upstream is sent exactly this cap,
    in the field the client used (`max_tokens` when it used none). Providers write it in their own
    field (Anthropic `max_tokens`, Gemini `generationConfig.maxOutputTokens`, llama.cpp `max_tokens`).
    """
    ceiling = model.config.max_output_tokens or DEFAULT_OUTPUT_CAP
    asked = [count for name in CAP_FIELDS if (count := _count(body.get(name))) is not None]
    used = next((name for name in CAP_FIELDS if body.get(name) is not None), "max_tokens")
    return used, min([ceiling, *asked])


def check_logprobs(catalog: Catalog, model: CatalogModel, body: dict[str, Any]) -> None:
    """`logprobs` only where an engine of the model returns them: elsewhere a 400, not an answer
    silently without them."""
    if body.get("logprobs") is not True:
        return
    kinds = {catalog.providers[route.provider].kind for route in model.config.routes}
    if not any(registry.capabilities(kind).logprobs for kind in kinds):
        raise TollwayError(
            ErrorCode.UNSUPPORTED_CAPABILITY,
            f"{model.id!r} cannot return log probabilities: its engine ({', '.join(sorted(kinds))}) "
            "does not give them. Leave `logprobs` out.",
            param="logprobs",
        )


def prepare(catalog: Catalog, body: dict[str, Any], caller: Caller, *, search_configured: bool) -> ChatPlan:
    """Everything decided before admission; raises 400/403/404/410 as TollwayError."""
    base, suffix = _split_model(catalog, body["model"])
    params = venice.merge(suffix, venice.body_params(body))
    character = None
    if params.character_slug is not None:
        character = characters.find(catalog.characters, params.character_slug)
        _check_character_access(caller, character)
        if character.model is not None:
            base = character.model  # the character's pinned model answers
        if not character.web_enabled:
            params.enable_web_search = "off"
    model = model_names.resolve(catalog, base, "text")
    model, headers = model_names.deprecation(catalog, model)
    if params.enable_web_search == "on" and not search_configured:
        raise TollwayError(
            ErrorCode.VALIDATION,
            "Web search is not available on this server (the operator has not configured a search "
            "provider, TOLLWAY_SEARCH_URL). Send enable_web_search=off or auto.",
            param="venice_parameters.enable_web_search",
        )
    upstream = {k: v for k, v in body.items() if k != "venice_parameters"}
    check_logprobs(catalog, model, upstream)
    if "response_format" in upstream:
        upstream["response_format"] = response_format(catalog, model, upstream["response_format"])
        if upstream["response_format"] is None:
            del upstream["response_format"]
    if character is not None:
        upstream = characters.apply(character, upstream)
    for name, value in model.config.sampling.items():  # the operator's defaults; the caller's win
        upstream.setdefault(name, value)
    if params.include_venice_system_prompt and model.config.system_prompt:
        upstream["messages"] = [
            {"role": "system", "content": model.config.system_prompt},
            *upstream["messages"],
        ]
    if params.disable_thinking and model.supports("reasoning"):
        # vLLM, SGLang and llama.cpp read this for Qwen3-style templates.
        upstream["chat_template_kwargs"] = {
            **(upstream.get("chat_template_kwargs") or {}),
            "enable_thinking": False,
        }
    last = _last_user_index(upstream["messages"])
    scrape_urls: list[str] = []
    if params.enable_web_scraping and last is not None:
        scrape_urls = search.urls_in(_text_of(upstream["messages"][last]))
    may_search = search_configured and params.enable_web_search in ("on", "auto")
    cap_field, max_output = output_cap(model, upstream)
    for name in CAP_FIELDS:
        upstream.pop(name, None)
    upstream[cap_field] = max_output
    return ChatPlan(
        model,
        upstream,
        params,
        headers,
        may_search=may_search,
        scrape_urls=scrape_urls,
        max_output=max_output,
    )
