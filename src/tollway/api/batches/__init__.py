"""Batch surfaces: OpenAI Files and Batches (openai.py), Anthropic Message Batches (anthropic.py)."""
