"""Web search helpers: URLs in a prompt, the text of a page (core/inference/search.py)."""

from __future__ import annotations

from tollway.core.inference.search import page_text, urls_in


def test_urls_and_page_text() -> None:
    assert urls_in("see https://a.example/x. and (http://b.example/y) ftp://c") == [
        "https://a.example/x",
        "http://b.example/y",
    ]
    assert page_text(b"<style>p{}</style><p>a&lt;b</p>") == ("", "a<b")
