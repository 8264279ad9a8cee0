"""Venice's augment routes: `augment/text-parser` (text out of a PDF, DOCX, PPTX, XLSX or text upload;
core/media/documents.py), `augment/search` (the operator's search backend, TOLLWAY_SEARCH_URL, the one
chat's web search uses; without one, a 400 saying so) and `augment/scrape` (one public page through the
SSRF-safe fetcher, base/fetch.py, as text). None of them is priced in the catalog, so none is charged;
an inference key is needed, as for chat. Nothing of the documents, queries or pages is stored or logged.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.responses import PlainTextResponse, Response

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, read_json
from tollway.api.media.input import read_fields, upload_bytes
from tollway.api.spec import FORM, KEYED, documented, json_only
from tollway.base import tokens
from tollway.base.fetch import UrlFetcher
from tollway.base.validation import validate
from tollway.core.caller import Caller
from tollway.core.inference.search import MAX_SCRAPE_BYTES, SearchUnavailable, page_text
from tollway.core.media import documents
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["augment"])
NO_SEARCH = (
    "Web search is not available on this server: the operator has not configured a search backend "
    "(TOLLWAY_SEARCH_URL)."
)
_scraper: UrlFetcher | None = None


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
    summary="Text out of a document (PDF, DOCX, PPTX, XLSX, text); not charged",
    **documented(
        body=TextParserRequest,
        media=(FORM,),
        files=("file",),
        errors=(*KEYED, 413, 415),
        ok={**json_only(), "text/plain": {"schema": {"type": "string"}}},
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
    text = await asyncio.to_thread(documents.extract, data, upload.filename or "")
    if response_format == "text":
        return PlainTextResponse(text)
    return JSON({"text": text, "tokens": tokens.count([text])})


@router.post(
    "/augment/search",
    summary="Web search through the operator's search backend; not charged",
    **documented(body=SearchRequest, errors=(*KEYED, 415, 502)),
)
async def web_search(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    body = validate(SearchRequest, await read_json(request))
    provider = request.app.state.services.pipeline.search
    if provider is None:
        raise TollwayError(ErrorCode.VALIDATION, NO_SEARCH, param="search_provider")
    try:
        found = await provider.search(body.query, body.limit)
    except SearchUnavailable as exc:
        raise TollwayError(ErrorCode.UPSTREAM_ERROR, f"Web search failed: {exc}.") from None
    results = [{"title": c.title, "url": c.url, "content": c.content, "date": c.date or ""} for c in found]
    return JSON({"query": body.query, "results": results})


@router.post(
    "/augment/scrape",
    summary="One public web page as text (markdown); not charged",
    **documented(body=ScrapeRequest, errors=(*KEYED, 413, 415)),
)
async def scrape(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    body = validate(ScrapeRequest, await read_json(request))
    global _scraper
    if _scraper is None:
        _scraper = UrlFetcher(max_bytes=MAX_SCRAPE_BYTES, timeout_seconds=10, noun="page")
    raw = await _scraper.fetch(body.url, param="url", accept="text/html, text/plain;q=0.9, */*;q=0.5")
    title, text = page_text(raw)
    content = f"# {title}\n\n{text}" if title else text
    return JSON({"url": body.url, "content": content, "format": "markdown"})
