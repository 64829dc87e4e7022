"""IDX reader: round trips, a hand-built reference file, real MNIST headers, and every malformed-file error."""

import gzip

import numpy as np
import pytest

from vaeops.core.errors import DataError
from vaeops.data.idx import encode, parse, read_idx, write_idx

# A 2x3 unsigned-byte matrix written out by hand from the format description (magic 0x00000803 is idx3, so 0x0802).
REFERENCE = b"\x00\x00\x08\x02" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x03" + bytes([0, 1, 2, 253, 254, 255])


def test_hand_built_reference_file_parses():
    array = parse(REFERENCE)
    assert array.dtype == np.uint8
    assert array.tolist() == [[0, 1, 2], [253, 254, 255]]
    assert encode(array) == REFERENCE


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip_raw_and_gzip(tmp_path, dtype, name):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    path = write_idx(tmp_path / name, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(path)
    assert back.dtype == array.dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_big_endian_multibyte_values():
    data = b"\x00\x00\x0b\x01\x00\x00\x00\x02" + b"\x01\x02" + b"\xff\xfe"
    assert parse(data).tolist() == [0x0102, -2]


def test_real_mnist_labels(mnist_dir):
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_truncated_data(tmp_path):
    path = tmp_path / "cut.idx"
    path.write_bytes(REFERENCE[:-2])
    with pytest.raises(
        DataError, match=r"cut.idx: truncated IDX data: header \(2, 3\) of uint8 needs 6 bytes, found 4"
    ):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "head.idx"
    path.write_bytes(REFERENCE[:10])
    with pytest.raises(DataError, match="head.idx: truncated IDX header"):
        read_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short for the 4-byte magic number"):
        read_idx(path)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "cut.idx.gz"
    path.write_bytes(gzip.compress(REFERENCE * 50)[:-20])
    with pytest.raises(DataError, match="cut.idx.gz: corrupt or truncated gzip stream"):
        read_idx(path)


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x02", b"\x00\x00\x07\x02", b"PK\x03\x04"])
def test_wrong_magic_number(tmp_path, magic):
    path = tmp_path / "bad.idx"
    path.write_bytes(magic + REFERENCE[4:])
    with pytest.raises(DataError, match=f"bad.idx: wrong magic number 0x{magic.hex()}"):
        read_idx(path)


def test_header_size_mismatch(tmp_path):
    path = tmp_path / "long.idx.gz"
    path.write_bytes(gzip.compress(REFERENCE + b"\x00\x00\x00"))
    with pytest.raises(
        DataError, match=r"long.idx.gz: size mismatch: header \(2, 3\) of uint8 needs 6 bytes, found 9 \(3 extra\)"
    ):
        read_idx(path)


def test_zero_dimensions_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="0 dimensions"):
        parse(b"\x00\x00\x08\x00")
    with pytest.raises(DataError, match="IDX file not found"):
        read_idx(tmp_path / "absent.idx")


def test_writer_refuses_unsupported_dtype(tmp_path):
    with pytest.raises(DataError, match="cannot store dtype"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.complex64))
