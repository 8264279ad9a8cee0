"""uvicorn's httptools protocol with a bound on the request line and headers (api/limits.py
HEAD_MAX_BYTES): past it → 431 and the connection closes.

httptools keeps a request's head in memory however long it grows (a 64 MB header was read whole), and
uvicorn sets no bound of its own on that protocol. The bytes of each head are counted as they arrive,
before the parser sees them, so a head over the limit is refused at once, before any route or key
check sees it. The refusal is in the envelope of the surface the request line's path belongs to
(api/http.py's error_response: Venice's under /api/v1, OpenAI's under /v1, ...).
"""

from __future__ import annotations

import logging

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tollway.api.http import error_response
from tollway.api.limits import HEAD_MAX_BYTES
from tollway.base.ids import new_request_id
from tollway.errors import ErrorCode, TollwayError

log = logging.getLogger("tollway.http")


class BoundedHead(HttpToolsProtocol):
    _head_open = True  # until the first request's headers end
    _head_bytes = 0
    _tail = b""  # the last bytes of the head so far: its end (CRLF CRLF) may straddle two reads
    _start = b""  # the head's first bytes: the request line, whose path picks the refusal's envelope

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused: what is still in flight is not read
        if self._head_open:
            # Counted before the parser sees the bytes: httptools rejects a URL over 64 KiB with a
            # bare 400 of its own, and buffers a header of any length.
            if not self._head_bytes:
                self._start = data[:2048]
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            size = self._head_bytes + (len(data) if end < 0 else end + 4 - len(self._tail))
            if size > HEAD_MAX_BYTES:
                self._refuse()
                return
            self._head_bytes += len(data)
            self._tail = seen[-3:]
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._head_bytes = 0
        self._tail = b""
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open = True  # the next request on this connection starts with its head

    def _refuse(self) -> None:
        rid = new_request_id()
        parts = self._start.split(b" ", 2)
        path = parts[1].split(b"?", 1)[0].decode("latin-1") if len(parts) > 1 else ""
        body = bytes(error_response(TollwayError(ErrorCode.HEADERS_TOO_LARGE), rid, path).body)
        head = [STATUS_LINE[431]]
        for name, value in [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"x-request-id", rid.encode()),
        ]:
            head.extend([name, b": ", value, b"\r\n"])
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()
        log.info("request refused: its line and headers passed %d bytes", HEAD_MAX_BYTES)
