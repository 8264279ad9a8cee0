"""The OpenAI Files and Batch APIs: `/files` (purpose `batch`) and `/batches`. Also under /api/v1.

Thin: the checks, the storage and the runs are core/batches/'s; this module reads requests and
renders the openai SDK's FileObject, Batch and list shapes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.responses import Response

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, read_json
from tollway.api.spec import BINARY, BY_ID, FORM, KEYED, documented
from tollway.core.batches.service import Batches
from tollway.core.caller import Caller
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["files and batches"])
LIST_MAX = 100


class FileUpload(BaseModel):
    """A batch input file: JSONL, one `{"custom_id", "method": "POST", "url", "body"}` a line."""

    file: str
    purpose: str


class BatchCreate(BaseModel):
    input_file_id: str
    endpoint: str  # /v1/chat/completions | /v1/embeddings
    completion_window: str  # "24h"
    metadata: dict[str, str] | None = None


def batches_of(request: Request) -> Batches:
    batches: Batches | None = getattr(request.app.state, "batches", None)
    if batches is None:
        raise TollwayError(ErrorCode.INTERNAL, "Batches are not running in this process.")
    return batches


def _account(who: Caller) -> str:
    assert who.account_id is not None  # inference_caller refuses the operator key
    return who.account_id


def _limit(limit: int) -> int:
    if not 1 <= limit <= LIST_MAX:
        raise TollwayError(ErrorCode.VALIDATION, f"`limit` is 1 to {LIST_MAX}.", param="limit")
    return limit


# -- files -------------------------------------------------------------------------------------------


@router.post(
    "/files",
    summary="Upload a batch input file (multipart: file, purpose=batch)",
    **documented(body=FileUpload, media=(FORM,), files=("file",), errors=(*KEYED, 413, 415)),
)
async def upload_file(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
        raise TollwayError(ErrorCode.INVALID_CONTENT_TYPE, "Send the file as multipart/form-data.")
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise TollwayError(
            ErrorCode.VALIDATION, "`file` is required: the JSONL file as a multipart part.", param="file"
        )
    data = await upload.read()
    entry = await batches_of(request).upload(who, form.get("purpose"), upload.filename or "input.jsonl", data)
    return JSON(entry.view())


@router.get("/files", summary="List your files", **documented(errors=KEYED))
async def list_files(
    request: Request,
    after: str | None = Query(None, description="the last id of the previous page"),
    limit: int = Query(20, description="1 to 100"),
    purpose: str | None = Query(None),
    order: str = Query("desc", description="asc | desc (by creation)"),
    who: Caller = Depends(inference_caller),
) -> Response:
    if order not in ("asc", "desc"):
        raise TollwayError(ErrorCode.VALIDATION, "`order` is asc or desc.", param="order")
    rows, more = await batches_of(request).files.list(
        _account(who), after=after, limit=_limit(limit), purpose=purpose, newest_first=order == "desc"
    )
    data = [row.view() for row in rows]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return JSON({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more})


@router.get("/files/{file_id}", summary="A file's metadata", **documented(errors=BY_ID))
async def get_file(request: Request, file_id: str, who: Caller = Depends(inference_caller)) -> Response:
    return JSON((await batches_of(request).files.get(_account(who), file_id)).view())


@router.delete("/files/{file_id}", summary="Delete a file", **documented(errors=BY_ID))
async def delete_file(request: Request, file_id: str, who: Caller = Depends(inference_caller)) -> Response:
    files = batches_of(request).files
    await files.get(_account(who), file_id)  # 404 for an unknown id or another account's
    await files.delete(_account(who), file_id)
    return JSON({"id": file_id, "object": "file", "deleted": True})


@router.get(
    "/files/{file_id}/content",
    summary="A file's bytes (an output file is deleted after its first download)",
    **documented(errors=BY_ID, ok={"application/octet-stream": {"schema": BINARY}}),
)
async def file_content(request: Request, file_id: str, who: Caller = Depends(inference_caller)) -> Response:
    data = await batches_of(request).files.content(_account(who), file_id)
    return Response(data, media_type="application/octet-stream")


# -- batches -----------------------------------------------------------------------------------------


@router.post("/batches", summary="Create a batch", **documented(body=BatchCreate, errors=(*BY_ID, 415)))
async def create_batch(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    body: Any = await read_json(request)
    if not isinstance(body, dict):
        raise TollwayError(ErrorCode.VALIDATION, "The body must be a JSON object.")
    return JSON(await batches_of(request).create(who, body))


@router.get("/batches", summary="List your batches (newest first)", **documented(errors=KEYED))
async def list_batches(
    request: Request,
    after: str | None = Query(None, description="the last id of the previous page"),
    limit: int = Query(20, description="1 to 100"),
    who: Caller = Depends(inference_caller),
) -> Response:
    return JSON(await batches_of(request).list(_account(who), after, _limit(limit)))


@router.get("/batches/{batch_id}", summary="A batch", **documented(errors=BY_ID))
async def get_batch(request: Request, batch_id: str, who: Caller = Depends(inference_caller)) -> Response:
    return JSON(await batches_of(request).view(_account(who), batch_id))


@router.post("/batches/{batch_id}/cancel", summary="Cancel a batch", **documented(errors=(*BY_ID, 409)))
async def cancel_batch(request: Request, batch_id: str, who: Caller = Depends(inference_caller)) -> Response:
    batches = batches_of(request)
    await batches.cancel(who, batch_id)
    return JSON(await batches.view(_account(who), batch_id))
