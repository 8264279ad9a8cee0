"""The `anthropic` provider kind (Messages API) and its pure shape translations."""

from tollway.providers.anthropic.provider import AnthropicProvider

__all__ = ["AnthropicProvider"]
