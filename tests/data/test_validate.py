"""Validation gate with real Great Expectations: a clean pass, and every bad input named in a failing exit."""

import json
from pathlib import Path

import numpy as np
import pytest

from vaeops.cli import main
from vaeops.core.errors import DataError
from vaeops.core.fileio import sha256_file
from vaeops.core.params import ValidateParams, load_params
from vaeops.data.prepare import prepare
from vaeops.data.stats import DEFAULTS, image_frame, mark_leaks, resolve_bounds
from vaeops.data.validate import validate
from vaeops.dataset.splits import SPLITS, load_manifest, load_split, write_prepared

PREPARED = Path("data/prepared")


@pytest.fixture
def digits(project):
    """Good prepared digits in the scratch project; returns the splits as arrays."""
    prepare(load_params("params.yaml"))
    return {name: load_split(PREPARED, name) for name in SPLITS}


def rewrite(splits):
    """Write altered splits the way prepare would, with a manifest whose counts match them."""
    manifest = {k: v for k, v in load_manifest(PREPARED).items() if k != "files"}
    for name, (_, labels) in splits.items():
        manifest["counts"][name]["total"] = int(len(labels))
    write_prepared(PREPARED, splits, manifest)
    return {p.name: sha256_file(p) for p in sorted(PREPARED.iterdir())}


def test_clean_digits_pass_every_expectation(digits, capsys):
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "validation PASSED: digits, 45/45 expectations met" in out
    report = json.loads(Path("reports/validation.json").read_text())
    assert report["success"] and report["failed"] == 0 and report["failures"] == []
    assert report["rows"] == {"train": 1294, "val": 144, "test": 359}
    assert report["data_sha256"] == sha256_file(PREPARED / "manifest.json")
    checks = {c["check"] for c in report["expectations"]}
    for name in (
        "schema",
        "no NaN or inf pixels",
        "labels in the class set",
        "every class present",
        "class share bounds",
        "ink fraction bounds",
        "pixel count",
        "images shared with other splits",
        "row count matches manifest",
    ):
        assert name in checks
    tables = {c["table"] for c in report["expectations"]}
    assert tables == {f"{s}_{t}" for s in SPLITS for t in ("images", "classes")}


def test_frame_statistics_match_hand_computed_values():
    images = np.array([[[0.0, 0.25], [0.75, 1.0]], [[np.nan, 0.5], [np.inf, 0.6]]], dtype=np.float32)
    frame = image_frame(images, np.array([3, 4]), ink_threshold=0.5)
    assert frame.loc[0, ["min", "max", "mean", "ink_fraction", "pixel_count", "nonfinite"]].tolist() == [
        0.0,
        1.0,
        0.5,
        0.5,
        4,
        0,
    ]
    assert frame.loc[1, "nonfinite"] == 2 and frame.loc[1, "min"] == 0.5 and frame.loc[1, "ink_fraction"] == 0.25
    marked = mark_leaks({"train": frame, "test": frame.iloc[[0]]})
    assert marked["train"]["leaked"].tolist() == [1, 0] and marked["test"]["leaked"].tolist() == [1]


def test_null_bounds_take_the_data_set_defaults():
    assert resolve_bounds(ValidateParams(), "mnist").ink_fraction_min == DEFAULTS["mnist"]["ink_fraction_min"]
    assert resolve_bounds(ValidateParams(min_rows=7), "digits").min_rows == 7


def _nan(s):
    s["train"][0][:3, 0, 0] = np.nan


def _range(s):
    s["val"][0][0, 0, :2] = [1.5, 2.0]
    s["val"][0][1, 1, 1] = -0.25


def _label(s):
    s["test"][1][:4] = 11


def _missing(s):
    images, labels = s["val"]
    keep = labels != 3
    s["val"] = (images[keep], labels[keep])


def _leak(s):
    test_images, test_labels = s["test"]
    test_images[:5] = s["train"][0][:5]
    test_labels[:5] = s["train"][1][:5]


def _blank(s):
    s["train"][0][:2] = 0.0


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (_nan, ["train_images: no NaN or inf pixels", "3 of 1294 rows"]),
        (
            _range,
            [
                "val_images: pixel maximum in [0, 1]",
                "1 of 144 rows",
                "[2.0]",
                "val_images: pixel minimum in [0, 1]",
                "[-0.25]",
            ],
        ),
        (_label, ["test_images: labels in the class set", "4 of 359 rows", "[11, 11, 11, 11]"]),
        (_missing, ["val_classes: every class present", "(classes [3])"]),
        (
            _leak,
            [
                "test_images: images shared with other splits",
                "observed 5",
                "train_images: images shared with other splits",
            ],
        ),
        (_blank, ["train_images: ink fraction bounds", "2 of 1294 rows", "[0.0, 0.0]"]),
    ],
    ids=["nan", "out-of-range", "label-outside-set", "missing-class", "leakage", "blank-images"],
)
def test_bad_data_fails_the_gate_naming_the_expectation(digits, capsys, mutate, expected):
    mutate(digits)
    before = rewrite(digits)
    assert main(["validate"]) == 3
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, (text, err)
    report = json.loads(Path("reports/validation.json").read_text())
    assert not report["success"] and report["failed"] == len(report["failures"]) >= 1
    assert {p.name: sha256_file(p) for p in sorted(PREPARED.iterdir())} == before


def test_leak_tolerance_comes_from_params(digits, set_params):
    _leak(digits)
    rewrite(digits)
    report = validate(load_params(set_params({"validate.max_leaked_images": 5})))
    assert report["success"] and report["leaked_images"] == {"train": 5, "val": 0, "test": 5}


def test_class_share_bounds_from_params(digits, set_params, capsys):
    set_params({"validate.class_share_min": 0.2})
    assert main(["validate"]) == 2
    assert "validate.class_share_min = 0.2 is above validate.class_share_max = 0.15" in capsys.readouterr().err
    set_params({"validate.class_share_max": 0.5})
    assert main(["validate"]) == 3
    err = capsys.readouterr().err
    assert "train_classes: class share bounds" in err and "10 of 10 rows" in err and "'min_value': 0.2" in err


def test_edited_split_or_wrong_data_set_is_refused(digits, set_params):
    with open(PREPARED / "val.npz", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(DataError, match="val.npz: sha256 .* differs from the manifest"):
        validate(load_params("params.yaml"))
    with pytest.raises(DataError, match="holds 'digits' but params say data.dataset: 'mnist'"):
        validate(load_params(set_params({"data.dataset": "mnist", "data.source_dir": "."})))


def test_real_mnist_passes(project, set_params, mnist_dir):
    params = load_params(set_params({"data.dataset": "mnist", "data.source_dir": str(mnist_dir)}))
    prepare(params)
    report = validate(params)
    assert report["success"] and report["rows"] == {"train": 54000, "val": 6000, "test": 10000}
    assert report["leaked_images"] == {"train": 0, "val": 0, "test": 0}
