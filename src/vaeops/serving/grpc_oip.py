"""The Open Inference Protocol over gRPC: KServe v2's `GRPCInferenceService` (Triton's proto, the generated code
tritonclient ships), on the same data plane, limits and errors as the HTTP routes.

Every method runs the data plane off the server's own event loop (inference on the data plane's model threads, like
the HTTP routes, the rest in a worker thread), so nothing blocks it; a refusal is a gRPC status with the message the
HTTP route would give.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as rpc

from vaeops.core.errors import VaeopsError
from vaeops.serving.dataplane import DataPlane
from vaeops.serving.oip import DATATYPES, ProtocolError

# HTTP status of the data plane's errors -> gRPC status (Triton answers bad input and oversize batches alike)
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    503: grpc.StatusCode.UNAVAILABLE,
}
CONTENTS = {  # datatype -> the typed InferTensorContents field that carries it when raw contents are not used
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def input_arrays(request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    """The request's inputs as arrays, from raw_input_contents (one per input, in order) or the typed contents."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    arrays: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(request.inputs):
        if tensor.datatype not in DATATYPES:
            raise ProtocolError(
                f"input {tensor.name!r}: datatype {tensor.datatype!r} is not one of {', '.join(DATATYPES)}"
            )
        shape, dtype = list(tensor.shape), np.dtype(DATATYPES[tensor.datatype])
        if any(d < 0 for d in shape):
            raise ProtocolError(f"input {tensor.name!r}: 'shape' must be non-negative integers, got {shape}")
        count = math.prod(shape)
        if raw:
            if len(raw[i]) != count * dtype.itemsize:
                raise ProtocolError(
                    f"input {tensor.name!r}: {len(raw[i])} raw bytes, shape {shape} of {tensor.datatype} needs "
                    f"{count * dtype.itemsize}"
                )
            array = np.frombuffer(raw[i], dtype=dtype)
        else:
            array = np.asarray(getattr(tensor.contents, CONTENTS[tensor.datatype]), dtype=dtype)
            if array.size != count:
                raise ProtocolError(
                    f"input {tensor.name!r}: contents hold {array.size} values, shape {shape} needs {count}"
                )
        if tensor.name in arrays:
            raise ProtocolError(f"input {tensor.name!r} is given twice")
        arrays[tensor.name] = array.reshape(shape)
    if not arrays:
        raise ProtocolError("the inference request needs at least one input")
    return arrays


class InferenceService(rpc.GRPCInferenceServiceServicer):
    """The protocol's methods over one data plane; the ones it does not implement answer UNIMPLEMENTED."""

    def __init__(self, plane: DataPlane):
        self.plane = plane

    async def _run(
        self, context: grpc.aio.ServicerContext, work: Callable[..., Any], *args: Any, model_work: bool = False
    ) -> Any:
        try:  # model work queues for the data plane's model threads, like HTTP's; the rest runs in a worker thread
            return await (self.plane.offload(work, *args) if model_work else asyncio.to_thread(work, *args))
        except VaeopsError as exc:
            await context.abort(CODES.get(exc.http_status, grpc.StatusCode.INTERNAL), str(exc))

    async def ServerLive(self, request, context):  # noqa: N802 - the proto's method names
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):  # noqa: N802
        return pb.ServerReadyResponse(ready=True)

    async def ModelReady(self, request, context):  # noqa: N802
        await self._run(context, self.plane.graph_ready, request.name, request.version or None)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request, context):  # noqa: N802
        return json_format.ParseDict(self.plane.server_metadata(), pb.ServerMetadataResponse())

    async def ModelMetadata(self, request, context):  # noqa: N802
        found = await self._run(context, self.plane.graph_metadata, request.name, request.version or None)
        return json_format.ParseDict(found, pb.ModelMetadataResponse())

    async def ModelConfig(self, request, context):  # noqa: N802
        found = await self._run(context, self.plane.graph_config, request.name, request.version or None)
        return pb.ModelConfigResponse(config=json_format.ParseDict(found, model_config_pb2.ModelConfig()))

    async def ModelStatistics(self, request, context):  # noqa: N802
        found = await self._run(context, self.plane.statistics, request.name or None, request.version or None)
        return json_format.ParseDict(found, pb.ModelStatisticsResponse())

    async def RepositoryIndex(self, request, context):  # noqa: N802
        return json_format.ParseDict({"models": self.plane.repository_index()}, pb.RepositoryIndexResponse())

    async def ModelInfer(self, request, context):  # noqa: N802
        def infer() -> pb.ModelInferResponse:
            arrays = input_arrays(request)
            graph, version, outputs = self.plane.run_tensors(request.model_name, request.model_version or None, arrays)
            wanted = [o.name for o in request.outputs] or list(outputs)
            unknown = [name for name in wanted if name not in outputs]
            if unknown:
                raise ProtocolError(f"unknown output {unknown[0]!r}; this model has {', '.join(outputs)}")
            reply = pb.ModelInferResponse(model_name=graph, model_version=version, id=request.id)
            for name in wanted:
                array = np.ascontiguousarray(outputs[name], dtype="<f4")
                reply.outputs.add(name=name, datatype="FP32", shape=list(array.shape))
                reply.raw_output_contents.append(array.tobytes())
            return reply

        return await self._run(context, infer, model_work=True)


async def start(plane: DataPlane, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC server on host:port (0: a free port) with the HTTP body limit; return it and its port."""
    limit = plane.params.max_body_bytes
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit), ("grpc.so_reuseport", 0)])
    rpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(plane), server)
    shown = f"[{host}]" if ":" in host else host
    bound = server.add_insecure_port(f"{shown}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC port {host}:{port}")
    await server.start()
    return server, bound
