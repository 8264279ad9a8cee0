"""Removing `<think>…</think>` blocks (Venice's strip_thinking_response / disable_thinking).

`ThinkStripper` is a streaming state machine: text arrives in arbitrary pieces, a tag may be split
across them (`<thi` + `nk>`), so a piece that ends in what could be the start of a tag is held back
until the next piece decides. Whitespace right after a closing tag is dropped with the block, so
`<think>…</think>\n\nAnswer` becomes `Answer`. An unclosed block (an answer cut by max_tokens) drops
everything after its opening tag.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper beginning of `tag`."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class ThinkStripper:
    """Feed text pieces in order; each call returns what can be shown now. `flush` at the end."""

    __slots__ = ("_inside", "_pending", "_skip_space")

    def __init__(self) -> None:
        self._inside = False
        self._skip_space = False
        self._pending = ""

    def feed(self, text: str) -> str:
        data = self._pending + text
        self._pending = ""
        out: list[str] = []
        while data:
            if self._inside:
                end = data.find(CLOSE)
                if end < 0:
                    keep = _partial_suffix(data, CLOSE)
                    self._pending = data[len(data) - keep :] if keep else ""
                    return "".join(out)
                data = data[end + len(CLOSE) :]
                self._inside, self._skip_space = False, True
                continue
            if self._skip_space:
                data = data.lstrip()
                if not data:
                    break
                self._skip_space = False
            start = data.find(OPEN)
            if start >= 0:
                out.append(data[:start])
                data = data[start + len(OPEN) :]
                self._inside = True
                continue
            keep = _partial_suffix(data, OPEN)
            out.append(data[: len(data) - keep])
            self._pending = data[len(data) - keep :]
            break
        return "".join(out)

    def flush(self) -> str:
        """What was held back as a possible tag start and turned out to be text."""
        pending, self._pending = self._pending, ""
        return "" if self._inside else pending


def strip_thinking(text: str) -> str:
    """A whole answer without its think blocks. A lone `</think>` (the template opened the block)
    drops everything before it."""
    if CLOSE in text and OPEN not in text.split(CLOSE, 1)[0]:
        text = text.split(CLOSE, 1)[1]
        text = text.lstrip()
    stripper = ThinkStripper()
    return stripper.feed(text) + stripper.flush()
