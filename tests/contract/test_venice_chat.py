"""Venice chat extensions against a real server: suffixes, traits, mappings, characters, thinking,
web search (a SearXNG-shaped fake), deprecations, headers, structured output on the local model.

This module runs its own server: it needs TOLLWAY_SEARCH_URL and a catalog with traits,
deprecations and characters that the shared server's tests should not see.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from tests.contract.servers import OPERATOR_KEY, Tollway, start_tollway
from tests.support.processes import ServerProcess, start_fake

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "why is the sky blue"}]

VENICE_CATALOG = """
markup: "1.0"
providers:
  - {{id: local, kind: local}}
  - {{id: fake, kind: openai, base_url: "{fake}/v1", api_key_env: FAKE_UPSTREAM_KEY}}
models:
  - id: smollm2-135m
    name: SmolLM2 135M
    routes: [{{provider: local, model: smollm2-135m-instruct}}]
    pricing: {{input: "0.10", output: "0.40"}}
    max_output_tokens: 200
    capabilities: [json_schema]
  - id: venice-large
    name: Venice Large (fake)
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "1.00", output: "2.00"}}
    max_output_tokens: 1000
    capabilities: [reasoning, tools]
    traits: [default, function_calling_default]
    compatible_with: [gpt-4o]
    system_prompt: "Operator default prompt."
  - id: venice-small
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "1.00", output: "2.00"}}
    max_output_tokens: 1000
    traits: [fastest]
  - id: venice-soon
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "1.00", output: "2.00"}}
    deprecation: {{date: "2099-01-01", replacement: venice-large}}
  - id: venice-old
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "1.00", output: "2.00"}}
    deprecation: {{date: "2020-01-01", replacement: venice-small}}
  - id: venice-gone
    routes: [{{provider: fake, model: gpt-4o-mini}}]
    pricing: {{input: "1.00", output: "2.00"}}
    deprecation: {{date: "2020-01-01"}}
  - id: venice-embed
    type: embedding
    routes: [{{provider: fake, model: text-embedding-3-small}}]
    pricing: {{input: "0.10"}}
    traits: [default]
compatibility: {{gpt-4o-mini: venice-small, text-embedding-3-small: venice-embed}}
characters:
  - slug: alan-watts
    name: Alan Watts
    description: A philosopher.
    system_prompt: "You are Alan Watts."
    settings: {{temperature: 0.4}}
    tags: [Philosophy]
    share_url: https://example.org/c/alan-watts
  - slug: pinned-small
    name: Pinned
    system_prompt: "Pinned persona."
    model: venice-small
    web_enabled: false
"""


@pytest.fixture(scope="module")
def search_upstream() -> Iterator[ServerProcess]:
    with start_fake("tests.fakes.search_upstream") as process:
        yield process


@pytest.fixture(scope="module")
def venice(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess, search_upstream: ServerProcess
) -> Iterator[Tollway]:
    tmp: Path = tmp_path_factory.mktemp("tollway-venice")
    catalog = tmp / "venice.yaml"
    catalog.write_text(VENICE_CATALOG.format(fake=fake_upstream.base_url))
    database_url = f"sqlite:///{tmp}/tollway.db"
    env = {"TOLLWAY_CONFIG": str(catalog), "TOLLWAY_SEARCH_URL": f"{search_upstream.base_url}/search"}
    process = start_tollway(tmp, fake_upstream.base_url, database_url, env)
    yield Tollway(process, database_url, fake_upstream.base_url)
    process.stop()


@pytest.fixture
def key(venice: Tollway) -> Iterator[str]:
    venice.fake("POST", "reset")
    yield venice.new_key(venice.new_account("5.00"), scope="admin")  # sees the balance headers
    venice.fake("POST", "reset")


def post(venice: Tollway, key: str, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(
        f"{venice.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=120,
    )


def get(venice: Tollway, key: str, path: str) -> httpx2.Response:
    return httpx2.get(f"{venice.url}/api/v1/{path}", headers={"authorization": f"Bearer {key}"})


def sent(venice: Tollway) -> dict[str, Any]:
    return dict(venice.fake("GET", "stats")["last_request"])


# -- model names -------------------------------------------------------------------------------


def test_traits_and_compatibility_mapping_routes(venice: Tollway, key: str) -> None:
    traits = get(venice, key, "models/traits")
    assert traits.status_code == 200
    assert traits.json() == {
        "object": "list",
        "type": "text",
        "data": {
            "default": "venice-large",
            "function_calling_default": "venice-large",
            "fastest": "venice-small",
        },
    }
    assert get(venice, key, "models/traits?type=embedding").json()["data"] == {"default": "venice-embed"}
    mapping = get(venice, key, "models/compatibility_mapping").json()
    assert mapping == {
        "object": "list",
        "type": "text",
        "data": {"gpt-4o-mini": "venice-small", "gpt-4o": "venice-large"},
    }
    assert get(venice, key, "models/compatibility_mapping?type=embedding").json()["data"] == {
        "text-embedding-3-small": "venice-embed"
    }
    bad = get(venice, key, "models/traits?type=nonsense")
    assert bad.status_code == 400 and bad.json()["details"]["type"]["_errors"]  # Venice's DetailedError
    assert get(venice, key, "models/venice-small").json()["id"] == "venice-small"  # models/{id} still works


@pytest.mark.parametrize(
    ("name", "served"),
    [
        ("venice-small", "venice-small"),
        ("fastest", "venice-small"),
        ("default", "venice-large"),
        ("gpt-4o", "venice-large"),
    ],
)
def test_chat_resolves_id_trait_then_mapping(venice: Tollway, key: str, name: str, served: str) -> None:
    response = post(venice, key, {"model": name, "messages": MESSAGES})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == served
    assert response.headers["x-venice-model-id"] == served == response.headers["x-tollway-model-id"]


def test_unknown_model_is_400_invalid_model(venice: Tollway, key: str) -> None:
    response = post(venice, key, {"model": "gpt-5-imaginary", "messages": MESSAGES})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_MODEL"


def test_embeddings_resolve_traits_and_mappings_too(venice: Tollway, key: str) -> None:
    client = openai.OpenAI(base_url=f"{venice.url}/v1", api_key=key, max_retries=0)
    assert client.embeddings.create(model="text-embedding-3-small", input="hello").model == "venice-embed"


# -- suffixes, echo, thinking ----------------------------------------------------------------

THINKING = [
    "<thi",
    "nk>The user asks",
    " about the sky.</th",
    "ink>",
    "\n\nBecause of ",
    "Rayleigh <",
    "scattering>.",
]


def test_buffered_answer_is_stripped_and_echoes_venice_parameters(venice: Tollway, key: str) -> None:
    venice.script({"type": "reply", "chunks": THINKING})
    response = post(venice, key, {"model": "default:strip_thinking_response=true", "messages": MESSAGES})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Because of Rayleigh <scattering>."
    echo = body["venice_parameters"]
    assert echo["strip_thinking_response"] is True and echo["enable_web_search"] == "off"
    assert echo["include_venice_system_prompt"] is True and echo["web_search_citations"] == []
    assert echo["enable_e2ee"] is False
    upstream = sent(venice)
    assert "venice_parameters" not in upstream
    assert upstream["messages"][0] == {"role": "system", "content": "Operator default prompt."}


def test_stream_strips_think_tags_split_across_chunks(venice: Tollway, key: str) -> None:
    venice.script({"type": "reply", "chunks": THINKING})
    client = openai.OpenAI(base_url=f"{venice.url}/v1", api_key=key, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="venice-large",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            extra_body={"venice_parameters": {"strip_thinking_response": True}},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Because of Rayleigh <scattering>."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_without_stripping_the_thinking_stays(venice: Tollway, key: str) -> None:
    venice.script({"type": "reply", "chunks": THINKING})
    # the body's venice_parameters win over the suffix
    response = post(
        venice,
        key,
        {
            "model": "venice-large:strip_thinking_response=true",
            "messages": MESSAGES,
            "venice_parameters": {"strip_thinking_response": False},
        },
    )
    assert response.json()["choices"][0]["message"]["content"] == "".join(THINKING)
    assert response.json()["venice_parameters"]["strip_thinking_response"] is False


def test_disable_thinking_tells_the_upstream_and_strips(venice: Tollway, key: str) -> None:
    venice.script({"type": "reply", "chunks": ["<think>\n\n</think>\n\n", "Blue."]})
    response = post(
        venice,
        key,
        {
            "model": "venice-large:disable_thinking=true&include_venice_system_prompt=false",
            "messages": MESSAGES,
        },
    )
    assert response.json()["choices"][0]["message"]["content"] == "Blue."
    upstream = sent(venice)
    assert upstream["chat_template_kwargs"] == {"enable_thinking": False}
    assert upstream["messages"] == MESSAGES  # no operator prompt


@pytest.mark.parametrize(
    "model",
    ["default:", "default:enable_web_search", "default:enable_web_search=maybe", "default:bogus=true"],
)
def test_malformed_suffix_is_400_param_model(venice: Tollway, key: str, model: str) -> None:
    response = post(venice, key, {"model": model, "messages": MESSAGES})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


def test_venice_sampling_parameters_reach_upstreams_that_take_them(venice: Tollway, key: str) -> None:
    extra = {
        "min_p": 0.05,
        "top_k": 40,
        "repetition_penalty": 1.2,
        "min_temp": 0.1,
        "max_temp": 1.5,
        "stop_token_ids": [151643],
        "logprobs": True,
        "top_logprobs": 1,
    }
    assert post(venice, key, {"model": "venice-small", "messages": MESSAGES, **extra}).status_code == 200
    upstream = sent(venice)
    assert {k: upstream[k] for k in extra} == extra
    bad = post(venice, key, {"model": "venice-small", "messages": MESSAGES, "min_p": 2})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "min_p"


# -- characters ------------------------------------------------------------------------------


def test_character_routes(venice: Tollway, key: str) -> None:
    listed = get(venice, key, "characters").json()
    assert listed["object"] == "list"
    assert [c["slug"] for c in listed["data"]] == ["alan-watts", "pinned-small"]
    one = get(venice, key, "characters/alan-watts").json()
    assert one["object"] == "character"
    character = one["data"]
    for field in (
        "adult",
        "author",
        "createdAt",
        "description",
        "name",
        "shareUrl",
        "slug",
        "stats",
        "tags",
        "updatedAt",
        "webEnabled",
    ):
        assert field in character
    assert character["stats"] == {
        "averageRating": 0,
        "imports": 0,
        "ratingCount": 0,
        "ratingSum": 0,
        "userRating": None,
    }
    assert character["tags"] == ["Philosophy"] and character["featured"] is False and character["id"]
    missing = get(venice, key, "characters/nobody")
    assert missing.status_code == 404 and missing.json()["code"] == "CHARACTER_NOT_FOUND"


def test_character_in_chat(venice: Tollway, key: str) -> None:
    response = post(venice, key, {"model": "default:character_slug=alan-watts", "messages": MESSAGES})
    assert response.status_code == 200, response.text
    assert response.json()["venice_parameters"]["character_slug"] == "alan-watts"
    upstream = sent(venice)
    assert [m["content"] for m in upstream["messages"][:2]] == [
        "Operator default prompt.",
        "You are Alan Watts.",
    ]
    assert upstream["temperature"] == 0.4
    pinned = post(
        venice,
        key,
        {"model": "default", "messages": MESSAGES, "venice_parameters": {"character_slug": "pinned-small"}},
    )
    assert pinned.json()["model"] == "venice-small"
    unknown = post(venice, key, {"model": "default:character_slug=nobody", "messages": MESSAGES})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "CHARACTER_NOT_FOUND"


# -- web search ------------------------------------------------------------------------------


def test_web_search_with_citations(venice: Tollway, key: str) -> None:
    response = post(
        venice,
        key,
        {"model": "default:enable_web_search=on&enable_web_citations=true", "messages": MESSAGES},
    )
    assert response.status_code == 200, response.text
    citations = response.json()["venice_parameters"]["web_search_citations"]
    assert [c["url"] for c in citations] == [f"https://search.example/{i}" for i in range(3)]
    assert citations[0]["title"] == "Result 0 for why is the sky blue" and citations[0]["date"]
    context = sent(venice)["messages"][-2]
    assert context["role"] == "system"
    assert (
        "Snippet 1 about why is the sky blue." in context["content"] and "[REF]0[/REF]" in context["content"]
    )


def test_search_results_lead_the_stream_and_documents_tool_call(venice: Tollway, key: str) -> None:
    response = httpx2.post(
        f"{venice.url}/v1/chat/completions",
        json={
            "model": "venice-large",
            "messages": MESSAGES,
            "stream": True,
            "venice_parameters": {
                "enable_web_search": True,  # the Ruby client's boolean
                "include_search_results_in_stream": True,
                "return_search_results_as_documents": True,
            },
        },
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
    )
    frames = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    first = json.loads(frames[0])
    assert len(first["venice_parameters"]["web_search_citations"]) == 3
    call = first["choices"][0]["delta"]["tool_calls"][0]
    assert call["function"]["name"] == "venice_web_search_documents"
    assert all("venice_parameters" not in json.loads(f) for f in frames[1:-1])
    assert frames[-1] == "[DONE]"


def test_character_without_web_and_auto_search_do_not_fail(venice: Tollway, key: str) -> None:
    body = {"model": "default:character_slug=pinned-small&enable_web_search=on", "messages": MESSAGES}
    response = post(venice, key, body)
    assert response.status_code == 200
    assert response.json()["venice_parameters"]["enable_web_search"] == "off"
    failing = post(
        venice,
        key,
        {"model": "default:enable_web_search=auto", "messages": [{"role": "user", "content": "fail please"}]},
    )
    assert failing.status_code == 200 and failing.json()["venice_parameters"]["web_search_citations"] == []
    refused = post(
        venice,
        key,
        {"model": "default:enable_web_search=on", "messages": [{"role": "user", "content": "fail now"}]},
    )
    assert refused.status_code == 502


# -- deprecation and headers -----------------------------------------------------------------


def test_deprecation_before_the_date_warns(venice: Tollway, key: str) -> None:
    response = post(venice, key, {"model": "venice-soon", "messages": MESSAGES})
    assert response.status_code == 200
    assert response.headers["x-venice-model-deprecation-date"] == "2099-01-01"
    assert "venice-large" in response.headers["x-venice-model-deprecation-warning"]
    assert response.json()["model"] == "venice-soon"


def test_deprecation_after_the_date_reroutes_or_is_410(venice: Tollway, key: str) -> None:
    rerouted = post(venice, key, {"model": "venice-old", "messages": MESSAGES})
    assert rerouted.status_code == 200
    assert rerouted.json()["model"] == "venice-small" == rerouted.headers["x-venice-model-id"]
    assert rerouted.headers["x-venice-model-deprecation-date"] == "2020-01-01"
    gone = post(venice, key, {"model": "venice-gone", "messages": MESSAGES})
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "MODEL_DEPRECATED"


def test_venice_response_headers(venice: Tollway, key: str) -> None:
    response = post(venice, key, {"model": "venice-large", "messages": MESSAGES})
    headers = response.headers
    assert headers["x-venice-model-name"] == "Venice Large (fake)" == headers["x-tollway-model-name"]
    assert headers["x-venice-version"] == headers["x-tollway-version"]
    assert headers["x-venice-timestamp"].startswith("20")
    assert headers["x-venice-balance-usd"] == headers["x-balance-usd"]
    assert httpx2.get(f"{venice.url}/health").headers["x-venice-version"]
    assert OPERATOR_KEY not in str(headers)


# -- structured output -----------------------------------------------------------------------


def test_json_schema_passes_to_upstreams_in_openai_layout(venice: Tollway, key: str) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    response = post(
        venice,
        key,
        {
            "model": "venice-small",
            "messages": MESSAGES,
            "response_format": {"type": "json_schema", "json_schema": schema},
        },
    )
    assert response.status_code == 200
    assert sent(venice)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "strict": True, "schema": schema},
    }


def test_json_schema_is_enforced_on_the_local_model(venice: Tollway, key: str) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    response = post(
        venice,
        key,
        {
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": "Name a big city and its population as JSON."}],
            "max_tokens": 60,
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "city", "strict": True, "schema": schema},
            },
        },
    )
    assert response.status_code == 200, response.text
    answer = json.loads(response.json()["choices"][0]["message"]["content"])
    assert set(answer) == {"city", "population"}
    assert isinstance(answer["city"], str) and isinstance(answer["population"], int)


def test_asking_for_e2ee_is_a_clear_400_that_reaches_no_upstream(venice: Tollway, key: str) -> None:
    calls = venice.fake_calls()
    body = {"model": "venice-small", "messages": MESSAGES, "venice_parameters": {"enable_e2ee": True}}
    refused = post(venice, key, body)
    assert refused.status_code == 400 and "E2EE" in refused.json()["error"]["message"]
    assert refused.json()["error"]["param"] == "venice_parameters.enable_e2ee"
    assert venice.fake_calls() == calls
    body["venice_parameters"] = {"enable_e2ee": False}
    assert post(venice, key, body).status_code == 200
