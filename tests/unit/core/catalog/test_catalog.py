"""The catalog YAML contract (DESIGN §9): validation with messages that name the problem, and prices."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from tollway.base.config import CatalogError
from tollway.core.catalog.catalog import Catalog
from tollway.errors import ErrorCode, TollwayError

SHIPPED = Path(__file__).resolve().parents[4] / "catalog" / "default.yaml"


def load(tmp_path: Path, text: str) -> Catalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(dedent(text))
    return Catalog.load(path)


def invalid(tmp_path: Path, text: str) -> str:
    with pytest.raises(CatalogError) as info:
        load(tmp_path, text)
    return str(info.value)


BASE = """
providers:
  - {id: up, kind: openai, base_url: "https://example.invalid/v1", api_key_env: UP_KEY}
models:
  - id: alpha
    routes: [{provider: up, model: vendor/alpha}]
    pricing: {input: "0.10", output: "0.40"}
"""


def test_shipped_catalog_loads_with_exact_prices() -> None:
    catalog = Catalog.load(SHIPPED)
    media = {"local-procedural", "local-image-edit", "local-upscaler", "local-background-remover"}
    media |= {"local-tts", "local-whisper-tiny-en"}
    media |= {"local-procedural-video", "local-procedural-music", "local-procedural-sfx"}  # async jobs
    assert set(catalog.models) == {"smollm2-135m", "minilm-l6-v2", *media}
    assert catalog.resolve("local-tts").config.pricing.per_million_chars == "3.50"
    chat = catalog.resolve("smollm2-135m")
    assert chat.type == "text"
    assert chat.token_prices is not None
    assert (chat.token_prices.input, chat.token_prices.output) == (100_000_000, 400_000_000)
    embed = catalog.resolve("minilm-l6-v2")
    assert embed.type == "embedding"
    assert embed.token_prices is not None and embed.token_prices.input == 20_000_000
    assert catalog.resolve("default") is chat  # alias
    assert [m.id for m in catalog.of_type("embedding")] == ["minilm-l6-v2"]
    assert set(catalog.providers) == {"local"}


def test_minimal_catalog(tmp_path: Path) -> None:
    catalog = load(tmp_path, BASE)
    alpha = catalog.resolve("alpha")
    assert alpha.config.routes[0].model == "vendor/alpha"
    assert alpha.token_prices is not None
    assert alpha.token_prices.cached_input is None and alpha.token_prices.reasoning is None


def test_unknown_provider_in_a_route(tmp_path: Path) -> None:
    message = invalid(
        tmp_path,
        BASE
        + """
  - id: beta
    routes: [{provider: up, model: b}, {provider: nowhere, model: b}]
    pricing: {input: "1", output: "2"}
""",
    )
    assert "model 'beta' routes to provider 'nowhere', which is not in `providers`" in message


def test_duplicate_model_id(tmp_path: Path) -> None:
    message = invalid(
        tmp_path,
        BASE
        + """
  - id: alpha
    routes: [{provider: up, model: other}]
    pricing: {input: "1", output: "2"}
""",
    )
    assert "model 'alpha' is defined twice" in message


def test_duplicate_provider_id(tmp_path: Path) -> None:
    message = invalid(
        tmp_path,
        BASE.replace("providers:\n", "providers:\n  - {id: up, kind: local}\n"),
    )
    assert "two providers share an id" in message


@pytest.mark.parametrize("model_type", ["text", "embedding"])
def test_missing_input_price_for_a_token_priced_model(tmp_path: Path, model_type: str) -> None:
    message = invalid(
        tmp_path,
        BASE
        + f"""
  - id: gamma
    type: {model_type}
    routes: [{{provider: up, model: g}}]
    pricing: {{output: "0.40"}}
""",
    )
    assert "model 'gamma' has no pricing.input (USD per 1M tokens)" in message


def test_image_model_needs_no_token_prices(tmp_path: Path) -> None:
    catalog = load(
        tmp_path,
        BASE
        + """
  - id: painter
    type: image
    routes: [{provider: up, model: p}]
    pricing: {per_image: "0.04"}
""",
    )
    assert catalog.resolve("painter").token_prices is None


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ('"cheap"', "'cheap' is not a decimal number; write prices as strings like \"0.10\""),
        ('"1,50"', "'1,50' is not a decimal number"),
        ('"-0.10"', "'-0.10' is negative"),
        ("0.10", "models.0.pricing.input: Input should be a valid string"),  # a YAML float, not a string
        ('"inf"', "'inf' is not a finite decimal number"),
        ('"NaN"', "'NaN' is not a finite decimal number"),
    ],
)
def test_price_must_be_a_decimal_string(tmp_path: Path, price: str, expected: str) -> None:
    message = invalid(tmp_path, BASE.replace('input: "0.10"', f"input: {price}"))
    assert "models.0.pricing.input" in message
    assert expected in message


def test_alias_colliding_with_another_model_id(tmp_path: Path) -> None:
    message = invalid(
        tmp_path,
        BASE
        + """
  - id: beta
    routes: [{provider: up, model: b}]
    pricing: {input: "1", output: "2"}
    aliases: [alpha]
""",
    )
    assert "alias 'alpha' of 'beta' is already a model id or alias" in message


def test_alias_colliding_with_another_alias(tmp_path: Path) -> None:
    text = BASE.replace('output: "0.40"}', 'output: "0.40"}\n    aliases: [default]')
    message = invalid(
        tmp_path,
        text
        + """
  - id: beta
    routes: [{provider: up, model: b}]
    pricing: {input: "1", output: "2"}
    aliases: [default]
""",
    )
    assert "alias 'default' of 'beta' is already a model id or alias" in message


@pytest.mark.parametrize(
    ("text", "location"),
    [
        (BASE.replace("    routes:", "    colour: blue\n    routes:"), "models.0.colour"),
        (BASE.replace('output: "0.40"', 'output: "0.40", per_token: "1"'), "models.0.pricing.per_token"),
        (BASE.replace("kind: openai,", "kind: openai, api_key: sk-secret,"), "providers.0.api_key"),
        ("unexpected: 1\n" + BASE, "unexpected"),
    ],
)
def test_unknown_fields_are_rejected(tmp_path: Path, text: str, location: str) -> None:
    message = invalid(tmp_path, text)
    assert f"{location}: Extra inputs are not permitted" in message


def test_unknown_provider_kind_and_model_type(tmp_path: Path) -> None:
    assert "providers.0.kind" in invalid(tmp_path, BASE.replace("kind: openai", "kind: bedrock"))
    assert "models.0.type" in invalid(
        tmp_path, BASE.replace("  - id: alpha\n", "  - id: alpha\n    type: hologram\n")
    )


def test_model_needs_a_route(tmp_path: Path) -> None:
    message = invalid(tmp_path, BASE.replace("[{provider: up, model: vendor/alpha}]", "[]"))
    assert "models.0.routes" in message


def test_unreadable_or_broken_yaml(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read catalog"):
        Catalog.load(tmp_path / "missing.yaml")
    assert "cannot read catalog" in invalid(tmp_path, "models: [unclosed\n")


def test_resolve_unknown_model_is_invalid_model() -> None:
    catalog = Catalog.load(SHIPPED)
    with pytest.raises(TollwayError) as info:
        catalog.resolve("gpt-17")
    assert info.value.code is ErrorCode.INVALID_MODEL
    assert info.value.status == 400
    assert info.value.param == "model"
    assert "gpt-17" in info.value.message
    with pytest.raises(TollwayError) as info:
        catalog.resolve(None)
    assert info.value.code is ErrorCode.VALIDATION
    assert info.value.param == "model"


def test_model_markup_is_applied_to_prices(tmp_path: Path) -> None:
    catalog = load(tmp_path, BASE.replace("  - id: alpha\n", '  - id: alpha\n    markup: "1.5"\n'))
    prices = catalog.resolve("alpha").token_prices
    assert prices is not None
    assert prices.input == 150_000_000  # $0.10 * 1.5 per 1M tokens
    assert prices.output == 600_000_000


def test_catalog_markup_applies_unless_a_model_sets_its_own(tmp_path: Path) -> None:
    text = (
        'markup: "1.25"\n'
        + BASE
        + (
            """
  - id: beta
    markup: "1.0"
    routes: [{provider: up, model: b}]
    pricing: {input: "0.10", output: "0.40", cached_input: "0.025", reasoning: "0.80"}
"""
        )
    )
    catalog = load(tmp_path, text)
    alpha = catalog.resolve("alpha").token_prices
    beta = catalog.resolve("beta").token_prices
    assert alpha is not None and beta is not None
    assert (alpha.input, alpha.output) == (125_000_000, 500_000_000)
    assert (beta.input, beta.output, beta.cached_input, beta.reasoning) == (
        100_000_000,
        400_000_000,
        25_000_000,
        800_000_000,
    )


def test_sampling_defaults_accept_known_parameters_only(tmp_path: Path) -> None:
    good = load(tmp_path, BASE + "    sampling: {temperature: 0, top_p: 0.9}\n")
    assert good.models["alpha"].config.sampling == {"temperature": 0, "top_p": 0.9}
    message = invalid(tmp_path, BASE + "    sampling: {temprature: 0}\n")
    assert "temprature" in message and "temperature" in message
