"""Web search and scraping for chat (Venice's enable_web_search / enable_web_scraping).

The search provider is pluggable: anything with `async search(query, limit)`. The one built in
talks to a SearXNG-compatible JSON endpoint (`GET <url>?q=…&format=json` → `{"results": [{title,
url, content, publishedDate}]}`) configured by the operator (TOLLWAY_SEARCH_URL), so it may be on
a private network. Scraping fetches URLs the *client* wrote, so it goes through base/fetch.py: only
public http(s) addresses, bounded size and time (DESIGN §8).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2

from tollway.base.fetch import UrlFetcher
from tollway.errors import TollwayError

MAX_RESULTS = 5
MAX_RESULT_CHARS = 1500  # of each result's text put before the model
MAX_SCRAPED_URLS = 3
MAX_SCRAPE_BYTES = 2 * 1024 * 1024
# Upper bound of the tokens search or scraping can add to a prompt (reserved before the call).
CONTEXT_TOKEN_ALLOWANCE = (max(MAX_RESULTS, MAX_SCRAPED_URLS) * (MAX_RESULT_CHARS + 300)) // 3
# A URL in the user's text; a bracketed IPv6 host is kept whole (the "]" otherwise ends a URL).
_URL = re.compile(r"https?://(?:\[[0-9A-Za-z:.%]*\][^\s<>\"'`)\]]*|[^\s<>\"'`)\]]+)")


class SearchUnavailable(Exception):
    """The search provider failed; the message is safe to show."""


@dataclass(slots=True)
class Citation:
    title: str
    url: str
    content: str = ""
    date: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "url": self.url, "content": self.content}
        if self.date:
            out["date"] = self.date
        return out


class SearchProvider(Protocol):
    async def search(self, query: str, limit: int) -> list[Citation]: ...

    async def aclose(self) -> None: ...


class SearxngSearch:
    """A SearXNG-compatible JSON search endpoint."""

    def __init__(self, url: str, *, timeout_seconds: float = 10.0) -> None:
        self.url = url
        self._client = httpx2.AsyncClient(timeout=timeout_seconds)

    async def search(self, query: str, limit: int) -> list[Citation]:
        try:
            response = await self._client.get(self.url, params={"q": query, "format": "json"})
        except httpx2.HTTPError:
            raise SearchUnavailable("the search provider could not be reached") from None
        if response.status_code != 200:
            raise SearchUnavailable(f"the search provider answered HTTP {response.status_code}")
        try:
            results = response.json().get("results") or []
        except (ValueError, AttributeError):
            raise SearchUnavailable("the search provider answered something that is not JSON") from None
        out: list[Citation] = []
        for item in results:
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                continue
            date = item.get("publishedDate")
            out.append(
                Citation(
                    title=str(item.get("title") or item["url"]),
                    url=item["url"],
                    content=str(item.get("content") or "")[:MAX_RESULT_CHARS],
                    date=str(date) if date else None,
                )
            )
            if len(out) == limit:
                break
        return out

    async def aclose(self) -> None:
        await self._client.aclose()


def urls_in(text: str) -> list[str]:
    seen: list[str] = []
    for match in _URL.findall(text):
        url = match.rstrip(".,;:!?")
        if url not in seen:
            seen.append(url)
    return seen[:MAX_SCRAPED_URLS]


_TAGS = re.compile(r"<(script|style|noscript)\b.*?</\1\s*>|<[^>]+>", re.S | re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.S | re.I)
_SPACE = re.compile(r"\s+")


def page_text(raw: bytes) -> tuple[str, str]:
    """(title, visible text) of an HTML or text page, both whitespace-collapsed."""
    text = raw.decode("utf-8", errors="replace")
    title_match = _TITLE.search(text)
    title = html.unescape(_SPACE.sub(" ", title_match.group(1))).strip() if title_match else ""
    body = html.unescape(_SPACE.sub(" ", _TAGS.sub(" ", text))).strip()
    return title, body


async def scrape(urls: list[str], fetcher: UrlFetcher) -> list[Citation]:
    """Fetch each public URL; one that is refused (private address, too large, HTTP error) is skipped."""
    out: list[Citation] = []
    for url in urls:
        try:
            raw = await fetcher.fetch(url, param="messages", accept="text/html, text/plain;q=0.9, */*;q=0.5")
        except TollwayError:
            continue
        title, text = page_text(raw)
        out.append(Citation(title=title or url, url=url, content=text[:MAX_RESULT_CHARS]))
    return out


def context_prompt(citations: list[Citation], *, cite: bool, scraped: bool) -> str:
    """The system message that puts the results before the model."""
    source = "Content of the web pages the user linked" if scraped else "Web search results"
    lines = [f"{source}, numbered from 0:"]
    for index, citation in enumerate(citations):
        lines.append(f"[{index}] {citation.title} ({citation.url})")
        if citation.date:
            lines.append(f"Published: {citation.date}")
        if citation.content:
            lines.append(citation.content)
        lines.append("")
    if cite:
        lines.append(
            "Use these sources where they help. After each claim taken from a source, cite it as "
            "[REF]n[/REF], n being the source's number, e.g. [REF]0[/REF]."
        )
    else:
        lines.append("Use these sources where they help.")
    return "\n".join(lines)
