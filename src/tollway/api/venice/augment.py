"""Venice's augment routes: `augment/text-parser` (text out of a PDF, DOCX, PPTX, XLSX or text upload;
core/media/documents.py), `augment/search` (the operator's search backend, TOLLWAY_SEARCH_URL, the one
chat's web search uses; without one, a 400 saying so) and `augment/scrape` (one public page through the
SSRF-safe fetcher, base/fetch.py, as text). Each is charged a flat price per call (TOLLWAY_AUGMENT_*_USD;
0 keeps one free) through the one charge path (core/augment.py): the request is checked first (400s
hold nothing), then the price is held (402 before any parse, search or fetch), the work is done, and the
price is settled with the `x-tollway-cost-usd` header; work that fails is its 4xx/5xx and charges
nothing. An inference key is needed, as for chat. Nothing of the documents, queries or pages is stored
or logged.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.responses import PlainTextResponse, Response

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, read_json, request_id
from tollway.api.media.input import read_fields, upload_bytes
from tollway.api.spec import FORM, KEYED, documented, json_only
from tollway.base import tokens
from tollway.base.fetch import UrlFetcher
from tollway.base.validation import validate
from tollway.core.augment import Metered
from tollway.core.caller import Caller
from tollway.core.inference.search import (
    MAX_SCRAPE_BYTES,
    Citation,
    SearchProvider,
    SearchUnavailable,
    page_text,
)
from tollway.core.media import documents
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["augment"])
NO_SEARCH = (
    "Web search is not available on this server: the operator has not configured a search backend "
    "(TOLLWAY_SEARCH_URL)."
)
_scraper: UrlFetcher | None = None


def metered(request: Request) -> Metered:
    augment: Metered = request.app.state.services.augment
    return augment


class TextParserRequest(BaseModel):
    file: str = Field(description="The document: PDF, DOCX, PPTX, XLSX or plain text, at most 25 MB")
    response_format: Literal["json", "text"] = "json"


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=400)
    limit: int = Field(default=10, ge=1, le=20)
    # Both names are accepted; the search goes to the one backend the operator configured.
    search_provider: Literal["google", "brave"] = "brave"


class ScrapeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2048, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://")


@router.post(
    "/augment/text-parser",
    summary="Text out of a document (PDF, DOCX, PPTX, XLSX, text), charged per call",
    **documented(
        body=TextParserRequest,
        media=(FORM,),
        files=("file",),
        errors=(*KEYED, 402, 413, 415),
        ok={**json_only(), "text/plain": {"schema": {"type": "string"}}},
        charged=True,
    ),
)
async def text_parser(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    fields = await read_fields(request, multipart_only=True)
    upload = fields.get("file")
    if not isinstance(upload, UploadFile):
        raise TollwayError(ErrorCode.VALIDATION, "Upload the document as the `file` field.", param="file")
    response_format = fields.get("response_format") or "json"
    if response_format not in ("json", "text"):
        raise TollwayError(
            ErrorCode.VALIDATION, "`response_format` must be json or text.", param="response_format"
        )
    data = await upload_bytes(upload, documents.MAX_UPLOAD_BYTES, "file")
    name = upload.filename or ""

    async def parse() -> str:  # an unreadable document is a 400 that releases the hold
        return await asyncio.to_thread(documents.extract, data, name)

    text, cost = await metered(request).run(who, request_id(request), "text-parser", "tollway", parse)
    if response_format == "text":
        return PlainTextResponse(text, headers=cost)
    return JSON({"text": text, "tokens": tokens.count([text])}, headers=cost)


@router.post(
    "/augment/search",
    summary="Web search through the operator's search backend, charged per call",
    **documented(body=SearchRequest, errors=(*KEYED, 402, 415, 502), charged=True),
)
async def web_search(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    body = validate(SearchRequest, await read_json(request))
    backend: SearchProvider | None = request.app.state.services.pipeline.search
    if backend is None:  # the operator's configuration, not the caller's doing: nothing is held
        raise TollwayError(ErrorCode.VALIDATION, NO_SEARCH, param="search_provider")
    searcher = backend

    async def search() -> list[Citation]:  # a backend that is down is a 502 that releases the hold
        try:
            return await searcher.search(body.query, body.limit)
        except SearchUnavailable as exc:
            raise TollwayError(
                ErrorCode.UPSTREAM_ERROR, f"Web search failed: {exc}. Nothing was charged."
            ) from None

    found, cost = await metered(request).run(who, request_id(request), "search", "search", search)
    results = [{"title": c.title, "url": c.url, "content": c.content, "date": c.date or ""} for c in found]
    return JSON({"query": body.query, "results": results}, headers=cost)


@router.post(
    "/augment/scrape",
    summary="One public web page as text (markdown), charged per call",
    **documented(body=ScrapeRequest, errors=(*KEYED, 402, 413, 415), charged=True),
)
async def scrape(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    body = validate(ScrapeRequest, await read_json(request))
    global _scraper
    if _scraper is None:
        _scraper = UrlFetcher(max_bytes=MAX_SCRAPE_BYTES, timeout_seconds=10, noun="page")
    scraper = _scraper

    async def fetch() -> bytes:  # refused by the address rules, too large, unreachable: a 4xx, released
        return await scraper.fetch(body.url, param="url", accept="text/html, text/plain;q=0.9, */*;q=0.5")

    raw, cost = await metered(request).run(who, request_id(request), "scrape", "web", fetch)
    title, text = page_text(raw)
    content = f"# {title}\n\n{text}" if title else text
    return JSON({"url": body.url, "content": content, "format": "markdown"}, headers=cost)
