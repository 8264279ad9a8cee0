"""OpenAI Responses API ⇄ the internal chat shape: request checks, translation, stream events."""
