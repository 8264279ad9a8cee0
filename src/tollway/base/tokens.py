"""Offline token counting for estimates (admission) and for the fallback when no usage arrives.

toktok-rs carries the o200k_base vocabulary compiled in: nothing is downloaded at run time
(tiktoken would fetch its BPE files, research/ecosystem.md §1.10), and its counts equal tiktoken's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import toktok

ENCODING = "o200k_base"
PER_MESSAGE_OVERHEAD = 4  # role and separators, as OpenAI counts them
PER_IMAGE_TOKENS = 1_105  # a high-detail 1024x1024 tile budget: an upper estimate, not a price


def count(texts: Iterable[str]) -> int:
    batch = [t for t in texts if t]
    # One thread: this runs on the event loop for every call, and toktok's default (a thread per core)
    # cost more than the counting itself under load (docs/benchmarks.md).
    return sum(toktok.batch_count(batch, ENCODING, threads=1)) if batch else 0


def message_texts(messages: list[Any]) -> tuple[list[str], int]:
    """The texts of chat messages (contents, text parts, tool calls, names) and the number of images."""
    texts: list[str] = []
    images = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    if isinstance(part.get("text"), str):
                        texts.append(part["text"])
                    elif part.get("type") in ("image_url", "input_image", "image"):
                        images += 1
        for field in ("tool_calls", "function_call"):
            if message.get(field):
                texts.append(orjson.dumps(message[field]).decode())
        if isinstance(message.get("name"), str):
            texts.append(message["name"])
    return texts, images


def count_prompt(body: dict[str, Any]) -> int:
    """Prompt tokens of a chat request: messages, images at a fixed budget, tool schemas."""
    messages = body.get("messages") or []
    texts, images = message_texts(messages)
    if body.get("tools"):
        texts.append(orjson.dumps(body["tools"]).decode())
    return count(texts) + PER_MESSAGE_OVERHEAD * len(messages) + 3 + images * PER_IMAGE_TOKENS
