"""The graphs an export holds: the VAE's modules as deterministic ONNX with a symbolic batch, checked and stamped."""

from __future__ import annotations

import logging
import warnings

import onnx
import torch
from torch import nn

from vaeops.core.errors import ExportError
from vaeops.export.torchlib_cache import reuse_torchlib_registry
from vaeops.model.vae import VAE

# Ops whose output changes from run to run: none may appear in an exported graph (noise comes in as `eps`).
RANDOM_OPS = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
# Logs one warning per torchvision op on every export when torchvision is absent (it is not needed here).
NOISY_LOGGER = "torch.onnx._internal.exporter._registration"
STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


class _Encoder(nn.Module):
    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vae.encode(x)


class _Decoder(nn.Module):
    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.pixel_mean(self.vae.decode(z))


class _Reconstruct(nn.Module):
    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.vae(x, eps)


class _ReconstructMean(nn.Module):
    # A fused x -> x_hat graph for the hot path: no eps input to allocate, no exp/mul/add to run.
    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae(x)


def graph_specs(vae: VAE) -> dict[str, tuple[nn.Module, list[str], list[str]]]:
    """The graphs to export: name -> (module in eval mode, input names, output names)."""
    return {
        "encoder": (_Encoder(vae).eval(), ["x"], ["mu", "logvar"]),
        "decoder": (_Decoder(vae).eval(), ["z"], ["x_hat"]),
        "reconstruct": (_Reconstruct(vae).eval(), ["x", "eps"], ["x_hat"]),
        "reconstruct_mean": (_ReconstructMean(vae).eval(), ["x"], ["x_hat"]),
    }


def example_inputs(input_names: list[str], input_dim: int, latent_dim: int) -> dict[str, torch.Tensor]:
    """Trace inputs: batch 2, since torch.export specialises sizes 0 and 1 and the batch must stay symbolic."""
    widths = {"x": input_dim, "eps": latent_dim, "z": latent_dim}
    return {name: torch.full((2, widths[name]), 0.5) for name in input_names}


def export_graph(
    module: nn.Module, inputs: dict[str, torch.Tensor], output_names: list[str], opset: int
) -> onnx.ModelProto:
    """Export one module with the dynamo exporter and a symbolic batch dimension shared by every input."""
    reuse_torchlib_registry()
    batch = torch.export.Dim("batch", min=1)
    logger = logging.getLogger(NOISY_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter warns that the shared batch axis is renamed
            program = torch.onnx.export(
                module,
                tuple(inputs.values()),
                dynamo=True,
                input_names=list(inputs),
                output_names=output_names,
                dynamic_shapes={name: {0: batch} for name in inputs},
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types (torch.export, onnxscript, ...)
        raise ExportError(f"torch.onnx.export failed for {type(module).__name__.lstrip('_')}: {exc}") from None
    finally:
        logger.setLevel(level)
    return strip_source_paths(program.model_proto)


def strip_source_paths(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the exporter's per-node Python stack traces: they hold absolute paths of this checkout, so two clones
    would write different bytes for the same model (and DVC would see a new model version)."""
    nodes = [*proto.graph.node, *(node for function in proto.functions for node in function.node)]
    for node in nodes:
        kept = [prop for prop in node.metadata_props if prop.key != STACK_TRACE_KEY]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    return proto


def check_graph(name: str, proto: onnx.ModelProto) -> None:
    """Run the full ONNX checker (with shape inference) and refuse graphs that contain random ops."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{name}: the ONNX checker rejected the graph: {exc}") from None
    random_ops = sorted({node.op_type for node in proto.graph.node} & RANDOM_OPS)
    if random_ops:
        raise ExportError(f"{name}: the graph contains random ops {random_ops}; exported graphs must be deterministic")
    for value in (*proto.graph.input, *proto.graph.output):
        first = value.type.tensor_type.shape.dim[0]
        if not first.dim_param:
            raise ExportError(f"{name}: {value.name} has a fixed batch dimension {first.dim_value}; it must be dynamic")


def set_metadata(proto: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Replace the model's metadata_props with `metadata` (string keys and values, as ONNX requires)."""
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        proto.metadata_props.add(key=key, value=value)
