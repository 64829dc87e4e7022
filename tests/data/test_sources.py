"""Data sources: pinned-checksum downloads from a local HTTP server or file:// (never the internet), IDX folders."""

import functools
import gzip
import http.server
import socket
import threading

import numpy as np
import pytest

from vaeops.cli import main
from vaeops.core.errors import DataError
from vaeops.core.fileio import sha256_file
from vaeops.data.idx import encode, read_idx
from vaeops.data.prepare import check_splits, split_source
from vaeops.data.sources import IDX_SPECS, IdxFile, IdxSpec, fetch, load_idx_folder


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def publish(folder, name: str, array: np.ndarray) -> str:
    """Write a gzip IDX file into the mirror folder; return its sha256."""
    (folder / name).write_bytes(gzip.compress(encode(array), mtime=0))
    return sha256_file(folder / name)


def test_download_verifies_and_keeps_the_file(served, tmp_path):
    folder, url = served
    labels = np.arange(30, dtype=np.uint8) % 10
    pinned = {"labels.gz": publish(folder, "labels.gz", labels)}
    paths = fetch(pinned, tmp_path / "cache", [url])
    np.testing.assert_array_equal(read_idx(paths["labels.gz"]), labels)
    # A second fetch uses the verified copy: it works with the mirror gone.
    (folder / "labels.gz").unlink()
    assert fetch(pinned, tmp_path / "cache", [url]) == paths


def test_checksum_mismatch_is_refused_and_not_kept(served, tmp_path):
    folder, url = served
    publish(folder, "labels.gz", np.zeros(5, np.uint8))
    with pytest.raises(DataError, match=r"labels.gz: sha256 mismatch: expected 0{64}, got [0-9a-f]{64}"):
        fetch({"labels.gz": "0" * 64}, tmp_path / "cache", [url])
    assert not (tmp_path / "cache" / "labels.gz").exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_next_mirror_after_404_and_file_urls(served, tmp_path):
    folder, url = served
    other = tmp_path / "other"
    other.mkdir()
    sha = publish(other, "x.gz", np.ones(4, np.uint8))
    paths = fetch({"x.gz": sha}, tmp_path / "cache", [url, other.as_uri() + "/"])
    assert sha256_file(paths["x.gz"]) == sha


def test_no_network_says_so_and_points_at_source_dir(tmp_path):
    with pytest.raises(DataError) as info:
        fetch({"x.gz": "0" * 64}, tmp_path / "cache", [closed_port_url()], timeout=5)
    assert "no network" in str(info.value)
    assert "set data.source_dir" in str(info.value)


def test_prepare_download_with_pinned_checksums_refuses_other_files(project, set_params, served, capsys):
    folder, url = served
    for item in IDX_SPECS["mnist"].files.values():
        publish(folder, f"{item.name}.gz", np.zeros(item.rows if "labels" in item.name else (2, 28, 28), np.uint8))
    set_params({"data.dataset": "mnist", "data.download": True, "data.urls": [url]})
    assert main(["prepare"]) != 0
    err = capsys.readouterr().err
    assert "could not download train-images-idx3-ubyte.gz" in err
    assert f"expected {IDX_SPECS['mnist'].files['train_images'].gz_sha256}" in err
    assert not (project / "data" / "prepared").exists()


def test_small_idx_folder_keeps_official_test_split(tmp_path):
    spec = IdxSpec(
        name="tiny",
        files={
            role: IdxFile(name, rows, "0" * 64)
            for role, name, rows in (
                ("train_images", "tri", 200),
                ("train_labels", "trl", 200),
                ("test_images", "tei", 50),
                ("test_labels", "tel", 50),
            )
        },
        urls=(),
    )
    rng = np.random.default_rng(0)
    paths = {}
    for role, item in spec.files.items():
        shape = (item.rows, 28, 28) if "images" in role else (item.rows,)
        array = (
            rng.integers(0, 256, shape, dtype=np.uint8)
            if "images" in role
            else (np.arange(item.rows) % 10).astype(np.uint8)
        )
        paths[role] = tmp_path / item.name
        paths[role].write_bytes(encode(array))
    source = load_idx_folder(spec, paths)
    assert {f["verified"] for f in source.provenance["files"].values()} == {"content checks"}
    splits = split_source(source, val_fraction=0.1, test_fraction=0.5, seed=0)
    check_splits(splits, source.classes, source.image_shape)
    assert {name: len(labels) for name, (_, labels) in splits.items()} == {"train": 180, "val": 20, "test": 50}
    np.testing.assert_array_equal(splits["test"][0], read_idx(paths["test_images"]) / np.float32(255))
    assert splits["train"][0].dtype == np.float32 and splits["train"][0].max() <= 1.0
