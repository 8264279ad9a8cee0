"""Wire formats, pure and both directions: OpenAI, Anthropic, Gemini and the task API, their SSE framing and error bodies."""
