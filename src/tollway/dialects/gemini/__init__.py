"""Gemini's generateContent API: request and response shapes, and its streamed chunks."""
