"""A streamed chat call on a connection of its own, read to the end in a thread: what the shutdown and
drain tests (test_operations.py, test_workers.py) hold open while they stop a server."""

from __future__ import annotations

import json
import threading

import httpx2

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"


class Stream(threading.Thread):
    """A streamed chat call read to the end in the background; `started` is set at the first chunk."""

    def __init__(self, url: str, key: str, model: str = "fake-chat") -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.model = url, key, model
        self.started = threading.Event()
        self.text = ""
        self.status = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        body = {"model": self.model, "messages": [{"role": "user", "content": WORDS}], "stream": True}
        try:
            with httpx2.stream(
                "POST",
                f"{self.url}/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {self.key}"},
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

    def content(self) -> str:
        parts = []
        for line in self.text.splitlines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices") or ():
                    parts.append(choice.get("delta", {}).get("content") or "")
        return "".join(parts)
