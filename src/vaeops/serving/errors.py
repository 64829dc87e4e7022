"""Every error the service answers, mapped in one place: each exception carries its HTTP status, and the body takes
the shape of the protocol the route speaks (`{"error": ...}` under /v2, `{"detail": ...}` elsewhere)."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vaeops.core.errors import InputError, VaeopsError

OIP_PREFIX = "/v2"


def speaks_oip(request: Request) -> bool:
    """Whether the request went to an Open Inference Protocol route."""
    return request.url.path == OIP_PREFIX or request.url.path.startswith(OIP_PREFIX + "/")


def status_of(exc: VaeopsError, oip: bool) -> int:
    """The exception's status; bad input is 400 under the OIP (as Triton answers) and 422 on the JSON API."""
    return 400 if oip and isinstance(exc, InputError) and exc.http_status == 422 else exc.http_status


def error_response(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The error body of the route's protocol."""
    if speaks_oip(request):
        return Response(
            orjson.dumps({"error": message}), status_code=status, media_type="application/json", headers=headers
        )
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the one handler of the project's errors and of Starlette's own (unknown routes and methods)."""

    @app.exception_handler(VaeopsError)
    async def project_error(request: Request, exc: VaeopsError) -> Response:
        return error_response(request, status_of(exc, speaks_oip(request)), str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if speaks_oip(request):  # unknown /v2 routes and methods answer with the protocol's object
            return error_response(request, exc.status_code, str(exc.detail), exc.headers)
        return await http_exception_handler(request, exc)
