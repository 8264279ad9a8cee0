"""`tollway models --check`: every example catalog passes; broken catalogs are named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tollway.cli import app

EXAMPLES = sorted((Path(__file__).resolve().parents[4] / "catalog" / "examples").glob("*.yaml"))


def test_there_is_an_example_per_upstream() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"openai", "openrouter", "anthropic", "gemini", "venice", "local-vllm-ollama"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_passes_the_check(path: Path) -> None:
    result = CliRunner().invoke(app, ["models", "--check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
    assert "markup" in path.read_text()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "models:\n  - {id: m, routes: [{provider: nope, model: x}], pricing: {input: '1'}}\n",
            "routes to provider 'nope'",
        ),
        (
            "providers: [{id: p, kind: openai, base_url: 'http://x'}]\n"
            "models:\n  - {id: m, routes: [{provider: p, model: x}], pricing: {output: '1'}}\n",
            "no pricing.input",
        ),
        (
            "providers: [{id: p, kind: openai, base_url: 'http://x'}]\nmodels:\n"
            "  - {id: m, routes: [{provider: p, model: x}], pricing: {input: '1'}}\n"
            "  - {id: m, routes: [{provider: p, model: x}], pricing: {input: '1'}}\n",
            "defined twice",
        ),
        (
            "providers: [{id: p, kind: openai, base_url: 'http://x'}]\n"
            "models:\n  - {id: m, tier: spicy, routes: [{provider: p, model: x}], pricing: {input: '1'}}\n",
            "models.0.tier",
        ),
    ],
    ids=["unknown-provider", "missing-price", "duplicate-id", "bad-tier"],
)
def test_broken_catalogs_are_refused_with_the_entry_named(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(body)
    result = CliRunner().invoke(app, ["models", "--check", "--config", str(path)])
    assert result.exit_code == 1
    assert message in result.output
