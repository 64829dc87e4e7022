"""The OpenAPI schema as the contract: FastAPI's schema with the served model's shapes, the limits of the serve
params, the graph names and version as enumerations, and every status a route answers with its error body.

Requests are checked by the data plane (one place for the limits); this module only says the same in the schema,
so a client or a fuzzer generating from it reaches inference. It is rebuilt when a reload serves another model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from vaeops.bundle.manifest import GRAPHS
from vaeops.serving.dataplane import DataPlane
from vaeops.serving.inputs import LATENT_BOUND

ERROR = {"$ref": "#/components/schemas/ErrorResponse"}
OIP_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
    "description": "Why the request was refused (the Open Inference Protocol's error object)",
}
WHY = {  # the statuses routes answer besides 200, and when
    400: "the body is not JSON (JSON API), or does not follow the protocol: shape, datatype, sizes (/v2)",
    404: "unknown model (graph) or version",
    413: "request body above serve.max_body_bytes, or a batch, sample or draw count above its limit",
    422: "input of the wrong shape, type or range (the message names it)",
    503: "a file of the served model or report fails its check on disk (the message names it)",
}


def numbers(count: int, low: float | None = None, high: float | None = None) -> dict[str, Any]:
    """An array of exactly `count` numbers, each in [low, high] where given."""
    item: dict[str, Any] = {"type": "number"}
    item |= {"minimum": low} if low is not None else {}
    item |= {"maximum": high} if high is not None else {}
    return {"type": "array", "items": item, "minItems": count, "maxItems": count}


def images(shape: list[int], limit: int) -> dict[str, Any]:
    """One image, flat (H*W,) or (H, W), pixels in [0, 1]; or a batch of 1 to `limit` images of one layout."""
    flat, nested = one_image(shape)["anyOf"]
    return {
        "anyOf": [
            flat,
            nested,
            *({"type": "array", "items": one, "minItems": 1, "maxItems": limit} for one in (flat, nested)),
        ]
    }


def latents(dim: int, limit: int) -> dict[str, Any]:
    """One latent (L,) or a batch (N, L) of 1 to `limit`, each value within the library's bound."""
    one = numbers(dim, -LATENT_BOUND, LATENT_BOUND)
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1, "maxItems": limit}]}


def one_image(shape: list[int]) -> dict[str, Any]:
    """One image, flat (H*W,) or (H, W), pixels in [0, 1]."""
    rows, cols = shape[0], int(shape[-1]) if len(shape) > 1 else 1
    flat = numbers(rows * cols, 0, 1)
    return {"anyOf": [flat, {"type": "array", "items": numbers(cols, 0, 1), "minItems": rows, "maxItems": rows}]}


def integer(low: int, high: int | None = None, nullable: bool = False) -> dict[str, Any]:
    """An integer in [low, high] (high None: no upper bound), or null where allowed."""
    value: dict[str, Any] = {"type": "integer", "minimum": low} | ({"maximum": high} if high is not None else {})
    return {"anyOf": [value, {"type": "null"}]} if nullable else value


def bodies(plane: DataPlane) -> dict[str, dict[str, Any]]:
    """The request-body properties that depend on the served model and the limits: name -> property -> schema."""
    model, limits = plane.model, plane.params
    batch = images(list(model.image_shape), limits.max_batch)
    return {
        "EncodeRequest": {"images": batch},
        "DecodeRequest": {"z": latents(model.latent_dim, limits.max_batch)},
        "ReconstructRequest": {
            "images": batch,
            "samples": integer(1, limits.max_samples),
            "seed": integer(0, nullable=True),
        },
        "GenerateRequest": {"n": integer(1, limits.max_batch), "seed": integer(0, nullable=True)},
        "ExplainRequest": {
            "image": one_image(list(model.image_shape)),
            "samples": integer(2, limits.max_samples, nullable=True),
            "seed": integer(0),
            "ks": {"type": "array", "items": integer(1), "minItems": 1, "maxItems": 12},
            "repeats": integer(2, 50),
        },
    }


def responses_for(path: str, method: str) -> list[int]:
    """The error statuses a route answers."""
    if path == "/v2/models/stats":
        return []
    if path.startswith("/v2/models/"):
        return [400, 404, 413] if method == "post" else [400, 404]
    if method == "post" and path in ("/encode", "/decode", "/reconstruct", "/generate", "/explain"):
        return [400, 413, 422]
    return {"/gallery": [503], "/model-card": [503], "/report": [404, 503]}.get(path, [])


def patch(schema: dict[str, Any], plane: DataPlane) -> dict[str, Any]:
    """Write the served model's shapes, the limits and every route's statuses into FastAPI's schema."""
    components = schema["components"]["schemas"]
    for name, properties in bodies(plane).items():
        for key, value in properties.items():
            described = components[name]["properties"][key]
            components[name]["properties"][key] = {**value, "description": described.get("description", "")}
    # samples > 1 only with mode=predictive (mean and sample decode one z): said as two alternatives
    components["ReconstructRequest"]["anyOf"] = [
        {"properties": {"mode": {"enum": ["mean", "sample"]}, "samples": {"const": 1}}},
        {"required": ["mode"], "properties": {"mode": {"const": "predictive"}}},
    ]
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["OIPError"] = OIP_ERROR
    version = plane.model.manifest.model_version
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "name":
                    parameter["schema"] = {"type": "string", "enum": list(GRAPHS)}
                elif parameter["name"] == "model_version":
                    parameter["schema"] = {"type": "string", "enum": [version]}
            answers = operation.setdefault("responses", {})
            answers.pop("422", None)
            body = {"$ref": "#/components/schemas/OIPError"} if path.startswith("/v2") else ERROR
            for status in responses_for(path, method):
                html = path == "/report" and status == 404
                media = (
                    {"text/html": {"schema": {"type": "string"}}} if html else {"application/json": {"schema": body}}
                )
                answers[str(status)] = {"description": WHY[status], "content": media}
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                operation["requestBody"] = infer_body(plane)
    return schema


def infer_body(plane: DataPlane) -> dict[str, Any]:
    """The OIP inference request in JSON (tensor data flat, row-major); binary tensors are the protocol's extension
    and are not described by JSON Schema."""
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "examples": ["x", "z", "eps"]},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2},
            "datatype": {"type": "string", "enum": ["FP32", "FP64"]},
            "data": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}, "minItems": 1},
        },
    }
    request = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1, "maxItems": 3},
            "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        },
    }
    return {"required": True, "content": {"application/json": {"schema": request}}}


def install(app: FastAPI, plane: DataPlane) -> Callable[[], dict[str, Any]]:
    """Make `app.openapi` answer the contract of the model being served (built once per model version)."""
    built: dict[str, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        version = plane.model.manifest.model_version
        if version not in built:
            base = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            built.clear()
            built[version] = patch(base, plane)
        return built[version]

    app.openapi = openapi  # type: ignore[method-assign]
    return openapi
