"""Tollway: a self-hosted, OpenAI-compatible AI API platform."""

__version__ = "0.1.0"
