"""Prepare stage: stratified seeded splits, manifest, real MNIST counts, and bad input leaving data/prepared intact."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from vaeops.cli import main
from vaeops.core.errors import DataError, ParamsError
from vaeops.core.fileio import sha256_file
from vaeops.core.params import load_params
from vaeops.data.idx import write_idx
from vaeops.data.prepare import check_splits, prepare, stratified_take
from vaeops.dataset.splits import load_manifest, load_split

# From ../shared/data/mnist/README.md (the published MNIST label counts).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def digests(images: np.ndarray) -> list[str]:
    return sorted(
        hashlib.sha256(np.ascontiguousarray(image, dtype=np.float32).tobytes()).hexdigest() for image in images
    )


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


def write_mnist_folder(folder: Path, train: int, test: int, train_labels=None) -> Path:
    """Four zero-image IDX files named like MNIST's, with cycling labels unless given."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count, labels in (("train", train, train_labels), ("t10k", test, None)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", np.zeros((count, 28, 28), np.uint8))
        labels = np.arange(count) % 10 if labels is None else labels
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return folder


def test_digits_split_is_stratified_complete_and_matches_sklearn(project):
    summary = prepare(load_params("params.yaml"))
    assert summary["counts"] == {"train": 1294, "val": 144, "test": 359}
    reference = load_digits()
    all_images, totals = [], np.zeros(10, int)
    for name, share in (("train", 0.9 * 0.8), ("val", 0.1 * 0.8), ("test", 0.2)):
        images, labels = load_split("data/prepared", name)
        assert images.dtype == np.float32 and images.shape[1:] == (8, 8)
        assert 0.0 <= images.min() and images.max() <= 1.0
        per_class = np.bincount(labels, minlength=10)
        # Stratified: every class gets its share of its own images, to within one image.
        assert np.all(np.abs(per_class - share * np.bincount(reference.target)) <= 1.0), (name, per_class)
        all_images.append(images)
        totals += per_class
    # The three splits partition the data set exactly: same images, no duplicates, none lost.
    assert digests(np.concatenate(all_images)) == digests(reference.images / 16.0)
    assert totals.tolist() == np.bincount(reference.target).tolist()
    manifest = load_manifest("data/prepared")
    assert manifest["dataset"] == "digits" and manifest["image_shape"] == [8, 8]
    assert manifest["params"] == {"dataset": "digits", "val_fraction": 0.1, "test_fraction": 0.2, "seed": 0}
    assert manifest["counts"]["val"]["per_class"]["0"] == int(np.bincount(load_split("data/prepared", "val")[1])[0])
    for name, digest in manifest["files"].items():
        assert sha256_file(Path("data/prepared") / name) == digest


def test_same_seed_same_bytes_other_seed_other_split(project, set_params):
    prepare(load_params("params.yaml"))
    first, first_counts = snapshot(Path("data/prepared")), load_manifest("data/prepared")["counts"]
    prepare(load_params("params.yaml"))
    assert snapshot(Path("data/prepared")) == first
    prepare(load_params(set_params({"data.seed": 1})))
    assert snapshot(Path("data/prepared"))["train.npz"] != first["train.npz"]
    # Another seed draws other images, but stratification fixes how many of each class go where.
    assert load_manifest("data/prepared")["counts"] == first_counts


def test_stratified_take_exact_total_and_shares():
    labels = np.repeat(np.arange(3), [10, 20, 7])
    taken = stratified_take(labels, 0.3, np.random.default_rng(0))
    assert len(taken) == round(0.3 * 37) and len(set(taken.tolist())) == len(taken)
    assert np.bincount(labels[taken], minlength=3).tolist() == [3, 6, 2]
    np.testing.assert_array_equal(taken, stratified_take(labels, 0.3, np.random.default_rng(0)))


def _splits(images=None, labels=None):
    rng = np.random.default_rng(0)
    good = (rng.random((20, 8, 8), dtype=np.float32), np.arange(20) % 10)
    return {
        "train": (good[0] if images is None else images, good[1] if labels is None else labels),
        "val": good,
        "test": good,
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ({"images": np.full((20, 8, 8), np.nan, np.float32)}, "train split: 1280 NaN and 0 infinite pixels"),
        ({"images": np.full((20, 8, 8), np.inf, np.float32)}, "train split: 0 NaN and 1280 infinite pixels"),
        ({"images": np.full((20, 8, 8), 1.5, np.float32)}, r"train split: 1280 pixels outside \[0, 1\]"),
        ({"labels": np.arange(20) % 10 + 3}, r"train split: 6 labels outside the class set .*\[10, 11, 12\]"),
        ({"labels": np.arange(20) % 9}, r"train split: class\(es\) \[9\] have no images"),
        ({"images": np.zeros((20, 7, 7), np.float32)}, r"train split: expected images \(N, 8, 8\)"),
    ],
)
def test_check_splits_rejects_bad_arrays(change, message):
    with pytest.raises(DataError, match=message):
        check_splits(_splits(**change), tuple(range(10)), (8, 8))


@pytest.fixture
def good_prepared(project):
    """A first, good digits preparation, and its file checksums."""
    assert main(["prepare"]) == 0
    return snapshot(project / "data" / "prepared")


@pytest.mark.parametrize(
    "case, message",
    [
        ("malformed params", "params.yaml is not valid YAML"),
        ("unknown data set", "data.dataset: Input should be 'digits', 'mnist' or 'fashion-mnist', got 'emnist'"),
        ("no source", "data.source_dir is null and data.download is false"),
        ("missing file", "lacks t10k-images-idx3-ubyte"),
        ("truncated IDX", "train-images-idx3-ubyte: truncated IDX data"),
        ("wrong magic", "train-images-idx3-ubyte: wrong magic number 0x00010803"),
        ("size mismatch", "train-images-idx3-ubyte: size mismatch"),
        ("wrong count", "expected 60000 unsigned-byte images of (28, 28), got uint8 (100, 28, 28)"),
        ("label outside the set", "train-labels-idx1-ubyte.gz: 2 labels outside the class set 0..9 (e.g. [10, 42])"),
    ],
)
def test_bad_input_fails_cleanly_and_keeps_last_good_data(project, set_params, good_prepared, capsys, case, message):
    folder = project / "idx"
    images = folder / "train-images-idx3-ubyte"
    if case == "malformed params":
        (project / "params.yaml").write_text("data:\n  dataset: [digits\n")
    elif case == "unknown data set":
        set_params({"data.dataset": "emnist"})
    elif case == "no source":
        set_params({"data.dataset": "mnist"})
    else:
        set_params({"data.dataset": "mnist", "data.source_dir": str(folder)})
        if case == "label outside the set":
            labels = np.arange(60000) % 10
            labels[[5, 7]] = [10, 42]
            write_mnist_folder(folder, 60000, 10000, labels)
        else:
            write_mnist_folder(folder, 100, 10)
        data = images.read_bytes()
        if case == "missing file":
            (folder / "t10k-images-idx3-ubyte").unlink()
        elif case == "truncated IDX":
            images.write_bytes(data[:-100])
        elif case == "wrong magic":
            images.write_bytes(b"\x00\x01\x08\x03" + data[4:])
        elif case == "size mismatch":
            images.write_bytes(data + b"\x00" * 784)
    assert main(["prepare"]) != 0
    assert message in capsys.readouterr().err
    assert snapshot(project / "data" / "prepared") == good_prepared


def test_real_mnist_keeps_official_test_set(project, set_params, mnist_dir):
    summary = prepare(load_params(set_params({"data.dataset": "mnist", "data.source_dir": str(mnist_dir)})))
    assert summary["counts"] == {"train": 54000, "val": 6000, "test": 10000}
    manifest = load_manifest("data/prepared")
    count = lambda split: [manifest["counts"][split]["per_class"][str(c)] for c in range(10)]  # noqa: E731
    assert count("test") == MNIST_TEST_COUNTS
    assert [a + b for a, b in zip(count("train"), count("val"))] == MNIST_TRAIN_COUNTS
    # The recompressed local copy still decompresses to the original bytes, so the pinned raw sha256 matches.
    assert {f["verified"] for f in manifest["source"]["files"].values()} == {"pinned sha256"}
    test_images, test_labels = load_split("data/prepared", "test")
    assert test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(float(test_images.mean()) * 255 - 33.79) < 0.01


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"data.val_fraction": 0.0}, "data.val_fraction: Input should be greater than 0, got 0.0"),
        ({"data.test_fraction": 1.0}, "data.test_fraction: Input should be less than 1, got 1.0"),
        ({"data.seed": -1}, "data.seed: Input should be greater than or equal to 0, got -1"),
        ({"data.urls": ["ftp://mirror/"]}, "data.urls: 'ftp://mirror/' is not an http"),
        (
            {"validate.class_share_min": 0.3, "validate.class_share_max": 0.2},
            r"validate.class_share_min \(0.3\) is above validate.class_share_max \(0.2\)",
        ),
        ({"validate.ink_fraction_max": 1.5}, "validate.ink_fraction_max: Input should be less than or equal to 1"),
        ({"validate.min_rows": -5}, "validate.min_rows: Input should be greater than or equal to 0, got -5"),
    ],
)
def test_out_of_range_data_and_validate_params_are_refused(set_params, changes, message):
    with pytest.raises(ParamsError, match=message):
        load_params(set_params(changes))
