"""The export manifest (`manifest.json`): what a bundle holds, every file named with its sha256, read and checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from vaeops.core.artifacts import Artifact, dump_artifact, parse_artifact
from vaeops.core.errors import ModelFileError
from vaeops.core.fileio import read_json_object, sha256_bytes

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "vaeops-onnx/1"
METADATA_PREFIX = "vaeops."  # the ONNX metadata_props keys every exported graph carries
GRAPHS = ("encoder", "decoder", "reconstruct", "reconstruct_mean")
# The other files a champion bundle holds beside the manifest's graphs and gallery.
METRICS = "metrics.json"  # the evaluation metrics of the run that made it
CHECKPOINT = "checkpoint.pt"  # the champion's own checkpoint, so the gate can re-score it on new data
DECISION = "promotion.json"  # the gate's decision that installed it
PROFILE = "data_profile.json"  # a summary of its training data, for the drift check
REPORT = "report.md"  # the evaluation report of the run that made it, figures beside it (install.PLOT_PREFIX)
REEXPORT = "re-run `vaeops export`"


class FileEntry(Artifact):
    """One file of the bundle: a plain name inside the folder, its sha256 and size."""

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)

    @model_validator(mode="after")
    def _inside(self) -> FileEntry:
        # Only plain file names inside the bundle: a manifest must not point a reader elsewhere.
        if not self.file or Path(self.file).name != self.file or self.file in (".", ".."):
            raise ValueError(f"names {self.file!r}, not a file inside the bundle")
        return self


class GraphEntry(FileEntry):
    """One ONNX graph: its file, tensor names and the worst ONNX-vs-PyTorch error of the parity check."""

    inputs: list[str]
    outputs: list[str]
    max_abs_error: dict[str, float]


class GalleryEntry(FileEntry):
    """The gallery of test images shipped for the page."""

    images: int = Field(ge=0)
    split: Literal["test"] = "test"


class Parity(Artifact):
    """The ONNX-vs-PyTorch check every graph passed: on how many images, with which tolerances."""

    images: int = Field(ge=1)
    atol: float = Field(ge=0)
    rtol: float = Field(ge=0)


class Manifest(Artifact):
    """The export manifest: the model's identity and input contract, the evaluation metrics, and every file."""

    format: Literal["vaeops-onnx/1"] = MANIFEST_FORMAT
    model_version: str = Field(min_length=1)
    checkpoint: str
    checkpoint_sha256: str
    epoch: int | None
    params_sha256: str
    data_sha256: str
    input_dim: int = Field(ge=1)
    latent_dim: int = Field(ge=1)
    image_shape: list[int] = Field(min_length=2, max_length=2)
    likelihood: Literal["bernoulli", "gaussian"]
    metrics: dict[str, float | int | str | bool | None]
    vaeops_version: str
    opset: int
    parity: Parity
    versions: dict[str, str]
    graphs: dict[str, GraphEntry]
    gallery: GalleryEntry | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        height, width = self.image_shape
        if height < 1 or width < 1 or height * width != self.input_dim:
            raise ValueError(f"image_shape {self.image_shape} does not match input_dim {self.input_dim}")
        missing = [name for name in GRAPHS if name not in self.graphs]
        if missing:
            raise ValueError(f"names no file for graph(s) {', '.join(missing)}")
        return self

    @property
    def variant(self) -> str:
        """The trained model variant this bundle holds (the checkpoint's folder: models/<variant>/best.pt)."""
        return Path(self.checkpoint).parent.name

    def to_json(self) -> str:
        """The manifest file's text: indented, key-sorted JSON."""
        return json.dumps(dump_artifact(self), indent=2, sort_keys=True) + "\n"


def read_manifest(bundle_dir: str | Path) -> Manifest:
    """Read and check a bundle's manifest; any fault is a ModelFileError naming the file and the key."""
    path = Path(bundle_dir) / MANIFEST
    raw = read_json_object(
        path, "export manifest", ModelFileError, "run `vaeops export`, or point serve.model_dir at an export"
    )
    if raw.get("format") != MANIFEST_FORMAT:
        raise ModelFileError(f"{path} is not a {MANIFEST_FORMAT} export manifest")
    return parse_artifact(raw, Manifest, f"{path}", ModelFileError)


def read_listed_file(
    bundle_dir: str | Path, entry: FileEntry, name: str, listed_by: str = "the export manifest", remedy: str = REEXPORT
) -> bytes:
    """The bytes of a file the manifest (or `listed_by`) lists, only if its sha256 matches; a missing, modified or
    truncated file is a ModelFileError."""
    path = Path(bundle_dir) / entry.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}, named by {listed_by}: {exc.strerror}") from None
    if sha256_bytes(data) != entry.sha256:
        raise ModelFileError(
            f"{path} does not match {listed_by} (sha256 {sha256_bytes(data)[:12]}..., expected "
            f"{entry.sha256[:12]}...; {len(data)} bytes, expected {entry.bytes}): the file was modified or "
            f"truncated; refusing to load {name}, {remedy}"
        )
    return data


def read_verified(bundle_dir: str | Path) -> tuple[Manifest, dict[str, bytes]]:
    """A bundle's checked manifest and the bytes of every graph and gallery file it lists, each matching its sha256."""
    manifest = read_manifest(bundle_dir)
    entries: dict[str, FileEntry] = dict(manifest.graphs)
    if manifest.gallery is not None:
        entries["gallery"] = manifest.gallery
    return manifest, {entry.file: read_listed_file(bundle_dir, entry, name) for name, entry in entries.items()}


def file_entry(name: str, data: bytes, **details: Any) -> dict[str, Any]:
    """A manifest entry for `data` written as `name`: the fields FileEntry needs, plus `details`."""
    return {"file": name, "sha256": sha256_bytes(data), "bytes": len(data), **details}
