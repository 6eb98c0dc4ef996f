"""Malformed HTTP requests get a JSON error and one short log line, not text/plain and a traceback.

aiohttp answers a request its parser rejects (a request line over 8,190
bytes, an oversized header, a broken request line) through
``RequestHandler.handle_error``: ``400 text/plain`` plus an ERROR traceback
in the log for each request. ``install`` wraps that method: parser errors
become the API's error shape (``{"error": {"status", "message"}}``) with
414 (request line too long), 431 (header too long) or 400, logged as one
WARNING line without the request's contents. Errors raised by handlers
(500) keep aiohttp's behaviour; the API's views never let one through.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from aiohttp import web_protocol
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, LineTooLong
from aiohttp.web import Response

__all__ = ["install", "classify"]

log = logging.getLogger("mailpulse.streams.http")

#: The start of a request line (python parser) or of its target (C parser).
_REQUEST_LINE = re.compile(rb"^(/|[A-Za-z][A-Za-z0-9+.-]*://|[A-Z]+ )")


def classify(exc: BaseException) -> tuple[int, str]:
    """(status, message) for a parser error."""
    if isinstance(exc, LineTooLong):
        line = exc.args[0] if exc.args else b""
        if isinstance(line, str):
            line = line.encode("latin-1", "replace")
        limit = exc.args[1] if len(exc.args) > 1 else "?"
        if _REQUEST_LINE.match(line):
            return 414, f"request line too long (more than {limit} bytes): shorten the URL"
        return 431, f"request header too long (more than {limit} bytes)"
    return 400, "malformed HTTP request"


def install() -> None:
    """Wrap ``RequestHandler.handle_error`` (once per process)."""
    handler_cls: Any = web_protocol.RequestHandler
    if getattr(handler_cls.handle_error, "_mailpulse", False):
        return
    original = handler_cls.handle_error

    def handle_error(
        self: Any, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> Any:
        if not isinstance(exc, BadHttpMessage):
            return original(self, request, status, exc, message)
        code, text = classify(exc)
        if isinstance(exc, BadHttpMethod) and getattr(self, "_request_count", 0) == 1:
            log.debug("non-HTTP traffic from %s", request.remote)
        else:
            log.warning("rejected an HTTP request from %s: %s (%d)", request.remote, text.split(" (")[0], code)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        resp = Response(
            status=code,
            body=orjson.dumps({"error": {"status": code, "message": text}}),
            content_type="application/json",
        )
        resp.force_close()
        return resp

    handle_error._mailpulse = True  # type: ignore[attr-defined]
    handler_cls.handle_error = handle_error
