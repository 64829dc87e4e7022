"""The raw data sets: bundled sklearn digits, and MNIST / Fashion-MNIST from a local IDX folder or a pinned download."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaeops.core.errors import DataError, DownloadError, ParamsError
from vaeops.core.fileio import atomic_path, sha256_bytes, sha256_file
from vaeops.core.params import DATASETS, DataParams
from vaeops.data.idx import parse, read_bytes

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class IdxFile:
    """One file of an IDX data set: its name, row count and pinned checksums."""

    name: str
    rows: int
    gz_sha256: str  # the original distribution's .gz, checked on every download
    raw_sha256: str | None = None  # the decompressed bytes, where a trusted copy was at hand to pin them


@dataclass(frozen=True)
class IdxSpec:
    """An IDX data set: its four files, mirror URLs, image shape and classes."""

    name: str
    files: dict[str, IdxFile]
    urls: tuple[str, ...]
    image_shape: tuple[int, int] = (28, 28)
    classes: tuple[int, ...] = tuple(range(10))


@dataclass(frozen=True)
class Source:
    """A loaded data set: pools of float32 images in [0, 1] with int64 labels, and where they came from."""

    dataset: str
    pools: dict[str, tuple[np.ndarray, np.ndarray]]  # "all" (digits) or "train" + "test" (official split)
    image_shape: tuple[int, int]
    classes: tuple[int, ...]
    provenance: dict[str, Any] = field(default_factory=dict)


DIGITS_SHAPE, DIGITS_CLASSES = (8, 8), tuple(range(10))

# sha256 of the .gz files as first distributed (yann.lecun.com, and the Zalando S3 bucket for Fashion-MNIST).
# The MNIST raw checksums are of the decompressed IDX bytes, which every faithful copy shares.
IDX_SPECS: dict[str, IdxSpec] = {
    "mnist": IdxSpec(
        name="mnist",
        files={
            "train_images": IdxFile(
                "train-images-idx3-ubyte",
                60000,
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            ),
            "train_labels": IdxFile(
                "train-labels-idx1-ubyte",
                60000,
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            ),
            "test_images": IdxFile(
                "t10k-images-idx3-ubyte",
                10000,
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            ),
            "test_labels": IdxFile(
                "t10k-labels-idx1-ubyte",
                10000,
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ),
        },
        urls=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
    ),
    "fashion-mnist": IdxSpec(
        name="fashion-mnist",
        files={
            "train_images": IdxFile(
                "train-images-idx3-ubyte", 60000, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
            ),
            "train_labels": IdxFile(
                "train-labels-idx1-ubyte", 60000, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
            ),
            "test_images": IdxFile(
                "t10k-images-idx3-ubyte", 10000, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
            ),
            "test_labels": IdxFile(
                "t10k-labels-idx1-ubyte", 10000, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
            ),
        },
        urls=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        ),
    ),
}


def layout(dataset: str) -> tuple[tuple[int, int], tuple[int, ...]]:
    """Image shape and class set of a named data set, known without loading it (the validation gate's reference)."""
    if dataset == "digits":
        return DIGITS_SHAPE, DIGITS_CLASSES
    if dataset in IDX_SPECS:
        return IDX_SPECS[dataset].image_shape, IDX_SPECS[dataset].classes
    raise ParamsError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}")


def load_source(data: DataParams) -> Source:
    """Load the data set named in the `data` params section."""
    if data.dataset == "digits":
        return load_digits()
    if data.dataset in IDX_SPECS:
        spec = IDX_SPECS[data.dataset]
        return load_idx_folder(spec, locate_files(spec, data))
    raise ParamsError(f"data.dataset: unknown data set {data.dataset!r}; choose one of {', '.join(DATASETS)}")


def load_digits() -> Source:
    """scikit-learn's bundled 8x8 digits (1,797 images, grey levels 0..16), scaled to [0, 1]; needs no network."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    provenance = {"loader": "sklearn.datasets.load_digits", "grey_levels": 16}
    return Source("digits", {"all": (images, bunch.target.astype(np.int64))}, DIGITS_SHAPE, DIGITS_CLASSES, provenance)


def locate_files(spec: IdxSpec, data: DataParams) -> dict[str, Path]:
    """Find the four IDX files: in data.source_dir (raw or .gz), else downloaded into data.cache_dir."""
    if data.source_dir is not None:
        folder = Path(data.source_dir)
        if not folder.is_dir():
            raise DataError(f"data.source_dir {folder} is not a folder (it should hold the four {spec.name} IDX files)")
        found, missing = {}, []
        for role, item in spec.files.items():
            candidates = [folder / item.name, folder / f"{item.name}.gz"]
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                missing.append(f"{item.name}[.gz]")
            found[role] = path
        if missing:
            raise DataError(f"data.source_dir {folder} lacks {', '.join(missing)}")
        return found
    if not data.download:
        raise DataError(
            f"data.dataset is {spec.name} but data.source_dir is null and data.download is false: set data.source_dir "
            f"in params.yaml to a folder holding the four IDX files (raw or .gz), or set data.download: true"
        )
    pinned = {f"{item.name}.gz": item.gz_sha256 for item in spec.files.values()}
    paths = fetch(pinned, Path(data.cache_dir) / spec.name, data.urls or spec.urls)
    return {role: paths[f"{item.name}.gz"] for role, item in spec.files.items()}


def fetch(pinned: Mapping[str, str], dest: Path, urls: Sequence[str], timeout: float = 30.0) -> dict[str, Path]:
    """Download each file name in `pinned` into `dest`, trying each base URL in order; keep only exact sha256
    matches."""
    paths = {}
    for name, sha256 in pinned.items():
        target = dest / name
        if not (target.is_file() and sha256_file(target) == sha256):
            _download_one(name, sha256, target, urls, timeout)
        paths[name] = target
    return paths


def _download_one(name: str, sha256: str, target: Path, urls: Sequence[str], timeout: float) -> None:
    problems, unreachable = [], 0
    for base in urls:
        url = base.rstrip("/") + "/" + name
        try:
            digest = hashlib.sha256()
            with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(target) as tmp:
                with open(tmp, "wb") as handle:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        digest.update(chunk)
                        handle.write(chunk)
                if digest.hexdigest() != sha256:
                    # Raising inside atomic_path discards the temp file: a bad download never reaches `target`.
                    raise DataError(f"{url}: sha256 mismatch: expected {sha256}, got {digest.hexdigest()}")
            return
        except DataError as exc:
            problems.append(str(exc))
        except urllib.error.HTTPError as exc:
            problems.append(f"{url}: HTTP {exc.code} {exc.reason}")
        except (urllib.error.URLError, OSError) as exc:
            unreachable += 1
            problems.append(f"{url}: unreachable ({getattr(exc, 'reason', exc)})")
    hint = "no network: none of the URLs could be reached. " if unreachable and unreachable == len(urls) else ""
    raise DownloadError(
        f"could not download {name}: {hint}{'; '.join(problems) or 'no URLs configured'}. To work offline, put the "
        f"four IDX files (raw or .gz) in a folder and set data.source_dir to it in params.yaml "
        f"(for MNIST on this machine: data.source_dir: ../shared/data/mnist)"
    )


def load_idx_folder(spec: IdxSpec, paths: Mapping[str, Path]) -> Source:
    """Read and check the four IDX files of `spec`: shapes, counts, dtype and labels; pixels scaled to [0, 1]."""
    arrays, files = {}, {}
    for role, item in spec.files.items():
        raw = read_bytes(paths[role])
        arrays[role] = parse(raw, str(paths[role]))
        digest = sha256_bytes(raw)
        # Copies are often recompressed, so the .gz checksum proves little; the decompressed bytes are what count.
        files[item.name] = {
            "path": str(paths[role]),
            "sha256_decompressed": digest,
            "verified": "pinned sha256" if digest == item.raw_sha256 else "content checks",
        }
    pools = {}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        _check_idx_pair(spec, split, paths, images, labels)
        pools[split] = ((images / np.float32(255.0)).astype(np.float32), labels.astype(np.int64))
    return Source(spec.name, pools, spec.image_shape, spec.classes, {"files": files})


def _check_idx_pair(
    spec: IdxSpec, split: str, paths: Mapping[str, Path], images: np.ndarray, labels: np.ndarray
) -> None:
    image_path, label_path = paths[f"{split}_images"], paths[f"{split}_labels"]
    expected_rows = spec.files[f"{split}_images"].rows
    if images.dtype != np.uint8 or images.shape != (expected_rows, *spec.image_shape):
        raise DataError(
            f"{image_path}: expected {expected_rows} unsigned-byte images of {spec.image_shape}, got "
            f"{images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.shape != (expected_rows,):
        raise DataError(
            f"{label_path}: expected {expected_rows} unsigned-byte labels, got {labels.dtype} {labels.shape}"
        )
    outside = ~np.isin(labels, spec.classes)
    if outside.any():
        raise DataError(
            f"{label_path}: {int(outside.sum())} labels outside the class set "
            f"{min(spec.classes)}..{max(spec.classes)} (e.g. {sorted(set(labels[outside].tolist()))[:5]})"
        )
