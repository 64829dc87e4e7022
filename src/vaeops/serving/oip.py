"""The Open Inference Protocol ("v2", spoken by Triton, KServe and MLServer) over HTTP, JSON and binary tensors.

Every exported graph is one OIP model (encoder, decoder, reconstruct, reconstruct_mean) with the tensor names of the
export manifest. Requests and responses carry tensors as JSON `data` or, with the binary tensor data extension, as
raw little-endian bytes after the JSON header (`Inference-Header-Content-Length`). Inputs go through the inference
library's checks (`OnnxVAE.run_graph`), so every bad input the JSON API refuses is refused here too, with the
protocol's error object `{"error": ...}` and a 4xx status.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from fastapi.responses import Response

from vaeops.core.errors import InputError
from vaeops.serving.inference import OnnxVAE

HEADER_LENGTH = "Inference-Header-Content-Length"
# OIP datatypes and the numpy dtypes of their little-endian binary form; BYTES is not a tensor this model takes.
DATATYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


class ProtocolError(InputError):
    """A request that does not follow the Open Inference Protocol (bad JSON, shape, datatype, binary sizes)."""

    http_status = 400


class UnknownModel(InputError):
    """The request names a model (graph) or version this server does not have."""

    http_status = 404


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return value


def _tensor(entry: dict[str, Any], binary: memoryview, offset: int) -> tuple[str, np.ndarray, int]:
    """One request input: its name, its array (shape and datatype checked), and the offset past its binary data."""
    name, shape, datatype = entry.get("name"), entry.get("shape"), entry.get("datatype")
    if not isinstance(name, str):
        raise ProtocolError("every input needs a string 'name'")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ProtocolError(f"input {name!r}: 'shape' must be a list of non-negative integers, got {shape!r}")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise ProtocolError(f"input {name!r}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}")
    dtype = np.dtype(DATATYPES[datatype])
    count = math.prod(shape)
    size = _object(entry.get("parameters") or {}, f"input {name!r} parameters").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size != count * dtype.itemsize:
            raise ProtocolError(
                f"input {name!r}: binary_data_size {size!r} does not match shape {shape} of {datatype} "
                f"({count * dtype.itemsize} bytes)"
            )
        if offset + size > len(binary):
            raise ProtocolError(f"input {name!r}: the body holds {len(binary) - offset} binary bytes, {size} declared")
        array = np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(shape)
        return name, array, offset + size
    if "data" not in entry:
        raise ProtocolError(f"input {name!r} has neither 'data' nor a binary_data_size parameter")
    try:
        array = np.asarray(entry["data"], dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ProtocolError(f"input {name!r}: 'data' is not a list of {datatype} values: {exc}") from None
    if array.size != count:
        raise ProtocolError(f"input {name!r}: 'data' holds {array.size} values, shape {shape} needs {count}")
    return name, array.reshape(shape), offset


def parse_request(body: bytes, header_length: str | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON header of an inference request and its input arrays, from JSON data or the binary section."""
    if header_length is None:
        header, binary = body, memoryview(b"")
    else:
        # ASCII digits only: str.isdigit() also takes "²" and other Unicode digits, which int() then refuses.
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
            raise ProtocolError(f"{HEADER_LENGTH} {header_length!r} is not a length within the {len(body)}-byte body")
        header, binary = body[: int(header_length)], memoryview(body)[int(header_length) :]
    try:
        request = _object(orjson.loads(header), "the inference request")
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"the inference request is not valid JSON: {exc}") from None
    entries = request.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise ProtocolError("the inference request needs a non-empty 'inputs' list")
    arrays, offset = {}, 0
    for entry in entries:
        name, array, offset = _tensor(_object(entry, "each input"), binary, offset)
        if name in arrays:
            raise ProtocolError(f"input {name!r} is given twice")
        arrays[name] = array
    if offset != len(binary):
        raise ProtocolError(f"the body has {len(binary) - offset} binary bytes that no input declares")
    return request, arrays


def check_datatypes(graph: str, arrays: dict[str, np.ndarray]) -> None:
    """Every input in the graph's own datatype, FP32: as Triton does, another datatype is refused, not converted."""
    for name, array in arrays.items():
        if array.dtype != np.float32:
            given = next((k for k, v in DATATYPES.items() if np.dtype(v) == array.dtype), str(array.dtype))
            raise ProtocolError(f"input {name!r}: data-type is {given!r}, but model {graph!r} expects 'FP32'")


def requested_outputs(request: dict[str, Any], names: list[str]) -> dict[str, bool]:
    """Output name -> whether to send it as binary; all outputs when the request names none."""
    default = _flag(_object(request.get("parameters") or {}, "request parameters"), "binary_data_output", False)
    entries = request.get("outputs")
    if entries is None:
        return {name: default for name in names}
    if not isinstance(entries, list):
        raise ProtocolError("'outputs' must be a list")
    wanted = {}
    for entry in entries:
        name = _object(entry, "each requested output").get("name")
        if name not in names:
            raise ProtocolError(f"unknown output {name!r}; this model has {', '.join(names)}")
        parameters = _object(entry.get("parameters") or {}, f"output {name!r} parameters")
        if "classification" in parameters:
            raise ProtocolError("the classification extension is not supported")
        wanted[name] = _flag(parameters, "binary_data", default)
    return wanted


def _flag(parameters: dict[str, Any], key: str, default: bool) -> bool:
    """A boolean parameter; as Triton does, anything but a JSON true or false is refused (the string "false" is not
    false)."""
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise ProtocolError(f"parameter {key!r} must be a JSON boolean (true or false), got {value!r}")
    return value


def build_response(
    model: str, version: str, request_id: Any, outputs: dict[str, np.ndarray], binary: dict[str, bool]
) -> Response:
    """The inference response: JSON data, or raw bytes after the JSON header for outputs asked for as binary."""
    entries, chunks = [], []
    for name, send_binary in binary.items():
        array = np.ascontiguousarray(outputs[name], dtype="<f4")
        entry: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
        if send_binary:
            entry["parameters"] = {"binary_data_size": array.nbytes}
            chunks.append(array.tobytes())
        else:
            entry["data"] = array.ravel()
        entries.append(entry)
    reply: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": entries}
    if request_id is not None:
        reply["id"] = request_id
    header = orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(
        b"".join([header, *chunks]), media_type="application/octet-stream", headers={HEADER_LENGTH: str(len(header))}
    )


def model_metadata(model: OnnxVAE, graph: str, integral: str | None = None) -> dict[str, Any]:
    """OIP model metadata of one graph: its version, platform, and tensors (-1 for the batch dimension)."""

    def tensors(items: list) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "datatype": "FP32", "shape": [d if isinstance(d, int) else -1 for d in t.shape]}
            for t in items
        ]

    session = model.sessions[graph]
    return {
        "name": graph,
        "versions": [model.manifest.model_version, *([integral] if integral else [])],
        "platform": "onnxruntime_onnx",
        "inputs": tensors(session.get_inputs()),
        "outputs": tensors(session.get_outputs()),
    }


def graph_of(model: OnnxVAE, name: str, requested_version: str | None, integral: str | None = None) -> str:
    """The graph a request names, if this model has it in the requested version: None or "" (the served one), the
    champion's identity, or the integral version a Triton repository holds it under (Triton's name for it)."""
    version = model.manifest.model_version
    if name not in model.sessions:
        raise UnknownModel(f"unknown model {name!r}; this server has {', '.join(model.sessions)}")
    if requested_version not in (None, "", version, integral):
        known = f"{version!r}" + (f" (Triton version {integral!r})" if integral else "")
        raise UnknownModel(f"model {name!r} has version {known} only, not {requested_version!r}")
    return name
