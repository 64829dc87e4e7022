"""Every error the service answers, mapped in one place: each exception carries its HTTP status, and the body takes
the shape of the protocol the route speaks (`{"error": ...}` under /v2, `{"detail": ...}` elsewhere)."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vaeops.core.errors import InputError, VaeopsError

OIP_PREFIX = "/v2"


def speaks_oip(request: Request) -> bool:
    """Whether the request went to an Open Inference Protocol route."""
    return request.url.path == OIP_PREFIX or request.url.path.startswith(OIP_PREFIX + "/")


def status_of(exc: VaeopsError, oip: bool) -> int:
    """The exception's status; bad input, a batch over the limit included, is 400 under the OIP (as Triton answers)
    and 422 (413 over a limit) on the JSON API."""
    return 400 if oip and isinstance(exc, InputError) and exc.http_status in (413, 422) else exc.http_status


def validation_message(exc: RequestValidationError) -> str:
    """FastAPI's list of validation errors as the one string every error body carries: where, and what."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


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

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, 400 if speaks_oip(request) else 422, validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if speaks_oip(request):  # unknown /v2 routes and methods answer with the protocol's object
            return error_response(request, exc.status_code, str(exc.detail), exc.headers)
        return await http_exception_handler(request, exc)
