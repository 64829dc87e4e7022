"""IDX files (the MNIST container format), raw or gzip: a strict reader that checks the header, and a small writer."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from vaeops.core.errors import DataError
from vaeops.core.fileio import write_bytes_atomic

# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str | Path) -> bytes:
    """Return the IDX bytes of a file, decompressing it when it is gzip (detected by content, not by name)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip stream ({exc})") from None


def parse(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array in native byte order; every header inconsistency is a DataError naming `name`."""
    if len(data) < 4:
        raise DataError(f"{name}: truncated IDX file: {len(data)} bytes, too short for the 4-byte magic number")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in DTYPES:
        raise DataError(
            f"{name}: wrong magic number 0x{data[:4].hex()}: an IDX file starts with two zero bytes and a type code "
            f"in {{{', '.join(f'0x{c:02x}' for c in DTYPES)}}}"
        )
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header_len} bytes, file has {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_len
    if actual < expected:
        raise DataError(
            f"{name}: truncated IDX data: header {shape} of {dtype.name} needs {expected} bytes, found {actual}"
        )
    if actual > expected:
        raise DataError(
            f"{name}: size mismatch: header {shape} of {dtype.name} needs {expected} bytes, found {actual} "
            f"({actual - expected} extra)"
        )
    return np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a numpy array, checking magic number, type code, dimensions and size."""
    return parse(read_bytes(path), str(path))


def encode(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (the inverse of parse)."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"IDX cannot store dtype {array.dtype}")
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    return header + array.astype(DTYPES[code], copy=False).tobytes()


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write an array as an IDX file atomically; gzip it when `compress` is true (default: when the name ends in
    .gz)."""
    path = Path(path)
    data = encode(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    write_bytes_atomic(path, data)
    return path
