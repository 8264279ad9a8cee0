"""A streamed chat call on a connection of its own, read to the end in a thread: what the shutdown and
drain tests (test_operations.py, test_workers.py) hold open while they stop a server."""

from __future__ import annotations

import json
import threading

import httpx2

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"


class Stream(threading.Thread):
    """A streamed chat call read to the end in the background; `started` is set at the first chunk."""

    def __init__(self, url: str, key: str, model: str = "fake-chat", dialect: str = "openai") -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.model, self.dialect = url, key, model, dialect
        self.started = threading.Event()
        self.text = ""
        self.status = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        path, body = self.request()
        try:
            with httpx2.stream(
                "POST",
                f"{self.url}{path}",
                json=body,
                headers={"authorization": f"Bearer {self.key}", "x-goog-api-key": self.key},
                timeout=60,
            ) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    self.text += line + "\n"
                    if line.startswith("data: {"):
                        self.started.set()
        except BaseException as exc:
            self.error = exc
        finally:
            self.started.set()

    def request(self) -> tuple[str, dict[str, object]]:
        """The route and body of a streamed call in this dialect (openai, anthropic or gemini)."""
        if self.dialect == "anthropic":
            messages = [{"role": "user", "content": WORDS}]
            return "/v1/messages", {
                "model": self.model,
                "max_tokens": 200,
                "messages": messages,
                "stream": True,
            }
        if self.dialect == "gemini":
            contents = [{"role": "user", "parts": [{"text": WORDS}]}]
            return f"/v1beta/models/{self.model}:streamGenerateContent?alt=sse", {"contents": contents}
        return "/v1/chat/completions", {
            "model": self.model,
            "messages": [{"role": "user", "content": WORDS}],
            "stream": True,
        }

    def frames(self) -> list[dict[str, object]]:
        """Every JSON data frame received, in order."""
        return [json.loads(line[6:]) for line in self.text.splitlines() if line.startswith("data: {")]

    def content(self) -> str:
        parts = []
        for line in self.text.splitlines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices") or ():
                    parts.append(choice.get("delta", {}).get("content") or "")
        return "".join(parts)
