"""What every HTTP request passes before the API sees it: a request id, the API key, the body limit.

:class:`Guard` is plain ASGI middleware (no Starlette ``BaseHTTPMiddleware``, which buffers
streams and swallows cancellation):

- **request id**: the ``x-request-id`` Serve's proxy sets (a client's own id only when it is short
  and plain), kept in ``scope["state"]["request_id"]``; error bodies and log lines name it.
- **API key** on every path but the open ones (``/healthz``; see SECURITY.md), checked before a
  byte of the body is read.
- **body limit while reading**: a ``Content-Length`` over the limit is refused from the headers; a
  chunked body (or one whose length header lies) is counted as it arrives and refused with 413
  the moment it passes the limit, so an oversized body is never read whole. The app then gets the
  body in one message.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from cultura.serve.openai_api import ApiError

REQUEST_ID_HEADER = "x-request-id"
_PLAIN_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Responder = Callable[[ApiError, str], Any]  # (error, request id) -> an ASGI response


def request_id_of(header: str | None) -> str:
    """The request's id: the ``x-request-id`` header when short and plain, else a fresh one."""
    if header and _PLAIN_ID.match(header):
        return header
    return uuid.uuid4().hex


class BodyTooLarge(Exception):
    """The body passed the limit while it was read."""


class Guard:
    """ASGI middleware: request id, API key (``check_key(authorization header)`` raises
    :class:`ApiError`), and a body of at most ``body_limit`` bytes; a refusal is answered by
    ``respond(error, request_id)``."""

    def __init__(self, app: Any, *, check_key: Callable[[str | None], None], body_limit: int, respond: Responder,
                 open_paths: tuple[str, ...] = ("/healthz",)):
        self.app, self.check_key, self.body_limit, self.respond = app, check_key, body_limit, respond
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = request_id_of(headers.get(REQUEST_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        try:
            if scope.get("path") not in self.open_paths:
                self.check_key(headers.get("authorization"))
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.body_limit:
                raise self._too_large(f"{length} bytes")
            try:
                body, tail = await self._read(receive)
            except BodyTooLarge:
                raise self._too_large(f"more than {self.body_limit} bytes (refused while reading)") from None
        except ApiError as err:
            await self.respond(err, request_id)(scope, receive, send)
            return
        if tail is not None:  # the client left while sending its body
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self, size: str) -> ApiError:
        return ApiError(413, f"the request body has {size}; this server accepts at most {self.body_limit}",
                        code="request_too_large")

    async def _read(self, receive: Receive) -> tuple[bytes, dict[str, Any] | None]:
        """The whole body, counted as it arrives (:class:`BodyTooLarge` past the limit); the
        second value is the disconnect message when the client left first, else None."""
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", message
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.body_limit:
                raise BodyTooLarge()
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts), None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` in one message, then whatever the client sends next
    (its disconnect)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        try:
            return await receive()
        except Exception as exc:  # Serve raises its cancellation here when the client is gone
            from ray.exceptions import TaskCancelledError

            if isinstance(exc, TaskCancelledError):
                return {"type": "http.disconnect"}
            raise

    return replay
