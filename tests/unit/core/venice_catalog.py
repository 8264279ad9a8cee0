"""The Venice chat catalog and requests the unit tests of core/catalog/names.py and core/inference/ share:
models with traits, compatibility names, deprecations, characters and sampling defaults."""

from __future__ import annotations

from typing import Any

from tollway.base.config import CatalogConfig
from tollway.core.caller import Caller
from tollway.core.catalog.catalog import Catalog
from tollway.core.inference.search import Citation, SearchUnavailable

SFW = Caller(scope="inference", account_id="acct_1", key_id="key_1")
ADULT = Caller(
    scope="inference", account_id="acct_1", key_id="key_1", content_tier="uncensored", age_verified=True
)


def model_entry(id_: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "routes": [{"provider": extra.pop("provider", "up"), "model": id_}],
        "pricing": {"input": "1", "output": "2"},
        **extra,
    }


def catalog(**extra: Any) -> Catalog:
    config: dict[str, Any] = {
        "providers": [
            {"id": "up", "kind": "openai", "base_url": "http://up/v1"},
            {"id": "local", "kind": "local"},
            {"id": "anth", "kind": "anthropic", "base_url": "http://a/v1"},
        ],
        "models": [
            model_entry("big", traits=["default", "function_calling_default"], compatible_with=["gpt-4o"]),
            model_entry("small", traits=["fastest", "default"], system_prompt="Operator prompt."),
            model_entry("thinker", capabilities=["reasoning"]),
            model_entry("claude-only", provider="anth"),
            model_entry("embed", type="embedding", traits=["default"]),
            model_entry("old", deprecation={"date": "2030-01-01", "replacement": "big"}),
            model_entry("gone", deprecation={"date": "2020-01-01"}),
            model_entry("moved", deprecation={"date": "2020-01-01", "replacement": "small"}),
            model_entry("llama3:8b"),
            model_entry("tiny", sampling={"temperature": 0, "top_p": 0.5}),
        ],
        "compatibility": {"gpt-4o-mini": "small", "text-embedding-3-small": "embed"},
        "characters": [
            {
                "slug": "sage",
                "name": "Sage",
                "system_prompt": "You are a sage.",
                "settings": {"temperature": 0.3},
            },
            {
                "slug": "pinned",
                "name": "Pinned",
                "system_prompt": "P.",
                "model": "thinker",
                "web_enabled": False,
            },
            {"slug": "spicy", "name": "Spicy", "system_prompt": "S.", "adult": True},
        ],
    }
    config.update(extra)
    return Catalog(CatalogConfig.model_validate(config))


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "big", "messages": [{"role": "user", "content": "hi"}], **extra}


class FakeSearch:
    def __init__(self, fail: bool = False) -> None:
        self.queries: list[str] = []
        self.fail = fail

    async def search(self, query: str, limit: int) -> list[Citation]:
        self.queries.append(query)
        if self.fail:
            raise SearchUnavailable("down")
        return [Citation("Sky", "https://example.org/sky", "Rayleigh scattering.", "2024-08-13T13:45:16")]

    async def aclose(self) -> None:
        return None
