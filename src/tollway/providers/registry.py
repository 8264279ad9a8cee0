"""The provider kinds: kind → how to build one, and what it can do (DESIGN §6).

Adding a kind is its folder under providers/ plus one line in KINDS (and its name in the catalog
schema's `kind` Literal, base/config.py, which is the YAML contract). Code that depends on a kind
asks `capabilities(kind)`, never compares kind names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tollway.base.config import ProviderConfig
from tollway.providers.anthropic import AnthropicProvider
from tollway.providers.base import Provider
from tollway.providers.gemini import GeminiProvider
from tollway.providers.local import LocalProvider
from tollway.providers.openai import OpenAIProvider


@dataclass(frozen=True, slots=True)
class Capabilities:
    # Can hold an answer to a JSON schema (llama.cpp grammars for `local`; OpenAI-compatible upstreams
    # and Gemini take it natively). Anthropic's API has no such mode.
    structured_output: bool = False
    # Serves async media jobs through a queue/poll API (the provider's catalog `jobs:` section).
    queue_media: bool = False
    # Renders a whole async job itself (providers/media.py JobProvider.run_job).
    runs_jobs: bool = False
    # Returns chat `logprobs` when asked (OpenAI-compatible upstreams, llama.cpp); Anthropic's API has
    # none, and the Gemini dialect does not translate them.
    logprobs: bool = False
    # Legacy `/completions` (a raw prompt, no chat template): "always" (the embedded models), "declared"
    # (only a model that lists `completions` in its catalog capabilities: many OpenAI-compatible
    # upstreams are chat-only), "never" (Anthropic, Gemini: chat only; never faked through chat).
    completions: str = "never"
    # `/moderations`: an OpenAI-compatible upstream serving a catalog model of type `moderation`.
    moderations: bool = False
    # OpenAI's APIs beyond chat passed through as is where the provider's catalog entry lists them in
    # `protocols` (Responses, image variations, audio translations): OpenAI-compatible upstreams only.
    native_protocols: bool = False


@dataclass(frozen=True, slots=True)
class Kind:
    build: Callable[[ProviderConfig, float], Provider]  # (config, upstream timeout in seconds)
    capabilities: Capabilities


KINDS: dict[str, Kind] = {
    "openai": Kind(
        lambda c, timeout: OpenAIProvider(c, timeout=timeout),
        Capabilities(
            structured_output=True,
            queue_media=True,
            completions="declared",
            moderations=True,
            logprobs=True,
            native_protocols=True,
        ),
    ),
    "anthropic": Kind(
        lambda c, timeout: AnthropicProvider(c, timeout=timeout), Capabilities(structured_output=True)
    ),
    "gemini": Kind(
        lambda c, timeout: GeminiProvider(c, timeout=timeout), Capabilities(structured_output=True)
    ),
    "local": Kind(
        lambda c, _timeout: LocalProvider(c.id),
        Capabilities(structured_output=True, runs_jobs=True, completions="always", logprobs=True),
    ),
}

NONE = Capabilities()


def capabilities(kind: str) -> Capabilities:
    entry = KINDS.get(kind)
    return NONE if entry is None else entry.capabilities


def build(config: ProviderConfig, timeout: float) -> Provider:
    entry = KINDS.get(config.kind)
    if entry is None:
        raise NotImplementedError(f"provider kind {config.kind!r} (provider {config.id!r}) is not built yet")
    return entry.build(config, timeout)
