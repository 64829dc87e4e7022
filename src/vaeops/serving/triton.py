"""`vaeops triton-repo`: the served model as an NVIDIA Triton model repository, the scale-out path.

One folder per exported graph, each with a `config.pbtxt` (platform onnxruntime_onnx, max batch size, dynamic
batching, an instance group Triton places on a GPU when one is present) and a numbered version folder holding
`model.onnx`. A new model becomes the next version; writing the same model again changes nothing. Clients address
the graphs by the same names and tensors as on `vaeops serve`'s /v2 routes, so one client works against both.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import onnx

from vaeops.bundle.manifest import GRAPHS, Manifest, read_listed_file, read_manifest
from vaeops.core.errors import ExportError
from vaeops.core.fileio import atomic_directory, sha256_bytes, sha256_file
from vaeops.core.params import Params, load_params

CONFIG = "config.pbtxt"
MODEL_FILE = "model.onnx"
TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.INT64: "TYPE_INT64",
}


def tensor_specs(model: onnx.ModelProto, kind: str) -> list[tuple[str, str, list[int]]]:
    """(name, Triton data type, dims without the batch dimension) of a graph's inputs or outputs."""
    specs = []
    for value in getattr(model.graph, kind):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        if not dims or dims[0] != -1:
            raise ExportError(f"{value.name}: the first dimension must be the symbolic batch dimension, got {dims}")
        if tensor.elem_type not in TRITON_TYPES:
            raise ExportError(f"{value.name}: ONNX element type {tensor.elem_type} has no Triton data type here")
        specs.append((value.name, TRITON_TYPES[tensor.elem_type], dims[1:]))
    return specs


def model_config(
    name: str, model: onnx.ModelProto, max_batch_size: int, queue_delay_us: int, model_version: str
) -> dict:
    """A Triton model configuration in Triton's JSON form (what GET /v2/models/{name}/config answers); config_text
    writes the same content as config.pbtxt."""
    return {
        "name": name,
        "platform": "onnxruntime_onnx",
        "max_batch_size": max_batch_size,
        "version_policy": {"latest": {"num_versions": 1}},
        "input": [{"name": n, "data_type": t, "dims": d} for n, t, d in tensor_specs(model, "input")],
        "output": [{"name": n, "data_type": t, "dims": d} for n, t, d in tensor_specs(model, "output")],
        "dynamic_batching": {"max_queue_delay_microseconds": queue_delay_us},
        # KIND_AUTO: Triton puts the instance on a GPU when one is present, else on the CPU.
        "instance_group": [{"count": 1, "kind": "KIND_AUTO"}],
        "parameters": {"vaeops_model_version": {"string_value": model_version}},
    }


def config_text(config: dict) -> str:
    """A model configuration (model_config's form) in protobuf text format, as config.pbtxt."""

    def tensors(items: list[dict]) -> str:
        return ",\n".join(
            f'  {{\n    name: "{t["name"]}"\n    data_type: {t["data_type"]}\n'
            f"    dims: [ {', '.join(map(str, t['dims']))} ]\n  }}"
            for t in items
        )

    ((key, value),) = config["parameters"].items()
    group = config["instance_group"][0]
    return (
        f'name: "{config["name"]}"\nplatform: "{config["platform"]}"\nmax_batch_size: {config["max_batch_size"]}\n'
        f"version_policy: {{ latest {{ num_versions: {config['version_policy']['latest']['num_versions']} }} }}\n"
        f"input [\n{tensors(config['input'])}\n]\noutput [\n{tensors(config['output'])}\n]\n"
        f"dynamic_batching {{\n  max_queue_delay_microseconds: "
        f"{config['dynamic_batching']['max_queue_delay_microseconds']}\n}}\n"
        f"instance_group [\n  {{\n    count: {group['count']}\n    kind: {group['kind']}\n  }}\n]\n"
        f'parameters {{\n  key: "{key}"\n  value: {{ string_value: "{value["string_value"]}" }}\n}}\n'
    )


def versions(folder: Path) -> list[int]:
    """The numbered version folders of one model in a repository, ascending."""
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()) if folder.is_dir() else []


def next_version(repo: Path, graphs: dict[str, bytes]) -> tuple[int, bool]:
    """The version the graphs go to, and whether it is new: the latest one when it holds these very graphs."""
    latest = max((max(versions(repo / name), default=0) for name in graphs), default=0)
    same = latest > 0 and all(
        (repo / name / str(latest) / MODEL_FILE).is_file()
        and sha256_file(repo / name / str(latest) / MODEL_FILE) == sha256_bytes(data)
        for name, data in graphs.items()
    )
    return (latest, False) if same else (latest + 1, True)


def write_repository(
    model_dir: str | Path, repo: str | Path, max_batch_size: int, queue_delay_us: int
) -> dict[str, Any]:
    """Write (or add a version to) the Triton repository of the exported model in `model_dir`; atomic as a whole."""
    model_dir, repo = Path(model_dir), Path(repo)
    manifest = read_manifest(model_dir)
    graphs = {name: read_listed_file(model_dir, manifest.graphs[name], name) for name in GRAPHS}  # sha256-checked bytes
    check_target(repo)
    version, new = next_version(repo, graphs)
    if new:
        try:
            write_versions(repo, graphs, version, max_batch_size, queue_delay_us, manifest.model_version)
        except OSError as exc:
            raise ExportError(f"cannot write the Triton repository {repo}: {exc.strerror or exc}") from None
    return {
        "repository": str(repo),
        "version": version,
        "written": new,
        "model_version": manifest.model_version,
        "models": list(graphs),
    }


def repository_version(repo: Path, manifest: Manifest) -> str | None:
    """The newest version folder of `repo` whose model.onnx files are exactly the manifest's graphs (sha256), as
    Triton names that model; None when the repository does not hold them."""
    if not (repo / GRAPHS[0]).is_dir():
        return None
    matching = [
        version
        for version in (str(v) for v in versions(repo / GRAPHS[0]))
        if all(
            (repo / g / version / MODEL_FILE).is_file()
            and sha256_file(repo / g / version / MODEL_FILE) == manifest.graphs[g].sha256
            for g in GRAPHS
        )
    ]
    return matching[-1] if matching else None


def check_target(repo: Path) -> None:
    """Write only where nothing but an earlier repository of these graphs stands: never move a user's file away."""
    if repo.exists() and not repo.is_dir():
        raise ExportError(f"{repo} is a file, not a Triton repository folder; choose another serve.triton_repo")
    foreign = sorted(p.name for p in repo.iterdir() if p.name not in GRAPHS) if repo.is_dir() else []
    if foreign:
        raise ExportError(
            f"{repo} holds {', '.join(foreign[:5])}, which no vaeops Triton repository has; choose an "
            "empty or new folder for serve.triton_repo"
        )


def write_versions(
    repo: Path, graphs: dict[str, bytes], version: int, max_batch_size: int, queue_delay_us: int, model_version: str
) -> None:
    """Add `version` of every graph, with its config, in one atomic swap of the repository."""
    with atomic_directory(repo) as staging:
        if repo.is_dir():
            shutil.copytree(repo, staging, dirs_exist_ok=True)  # earlier versions stay for rollback
        for name, data in graphs.items():
            model = onnx.load_from_string(data)
            (staging / name / str(version)).mkdir(parents=True)
            (staging / name / str(version) / MODEL_FILE).write_bytes(data)
            config = model_config(name, model, max_batch_size, queue_delay_us, model_version)
            (staging / name / CONFIG).write_text(config_text(config), encoding="utf-8")


def triton_repo(params: Params) -> dict[str, Any]:
    """Stage-style entry: the Triton repository of serve.model_dir (the champion) at serve.triton_repo."""
    section = params.serve
    return write_repository(
        section.model_dir, section.triton_repo, section.triton_max_batch_size, section.triton_queue_delay_us
    )


def run_cli(args: argparse.Namespace) -> None:
    """`vaeops triton-repo`: write the repository and say which version it holds."""
    result = triton_repo(load_params(args.params, args.overrides))
    state = "written" if result["written"] else "already there"
    print(
        f"triton-repo: {result['model_version']} as version {result['version']} of "
        f"{', '.join(result['models'])} in {result['repository']}/ ({state})"
    )
