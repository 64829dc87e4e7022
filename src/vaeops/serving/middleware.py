"""ASGI middleware of the HTTP service: a hard limit on request bodies, declared or streamed."""

from __future__ import annotations

from typing import Any

import orjson


class BodyLimit:
    """ASGI middleware: answer 413 once a request body passes `max_bytes`, whether or not it declares its length."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return await _send_error(send, 400, "invalid Content-Length header", scope["path"])
            if int(declared) > self.max_bytes:
                return await _send_error(
                    send,
                    413,
                    f"request body of {int(declared)} bytes is above the limit of {self.max_bytes}",
                    scope["path"],
                )
        # Read the whole (bounded) body here, then replay it: a chunked upload cannot slip past the limit.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _send_error(
                    send, 413, f"request body is above the limit of {self.max_bytes} bytes", scope["path"]
                )
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        return await self.app(scope, replay, send)


def error_body(path: str, message: str) -> bytes:
    """The error object clients of each API expect: {"error": ...} on the Open Inference Protocol's /v2 routes,
    FastAPI's {"detail": ...} elsewhere."""
    return orjson.dumps({"error": message} if path.startswith("/v2") else {"detail": message})


async def _send_error(send: Any, status: int, detail: str, path: str) -> None:
    body = error_body(path, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
