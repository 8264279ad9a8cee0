"""Anthropic's Messages API: request and response shapes, and its SSE event stream."""
