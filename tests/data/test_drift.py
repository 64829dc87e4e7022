"""Drift against the champion's training data: scored per feature, warn on a mild shift, stop on a broken feed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_digits

from helpers import complete_params
from vaeops.core.errors import ValidationFailed
from vaeops.core.params import load_params
from vaeops.data.drift import DriftFailed, compare, drift, profile
from vaeops.dataset.splits import write_prepared

DIGITS = load_digits()
IMAGES, LABELS = (DIGITS.images / 16.0).astype(np.float32), DIGITS.target.astype(np.int64)


def digits_profile(images=IMAGES, labels=LABELS) -> dict:
    return profile(images, labels, ink_threshold=0.5, sample=2000)


def test_the_same_data_does_not_drift():
    first, second = digits_profile(IMAGES[::2], LABELS[::2]), digits_profile(IMAGES[1::2], LABELS[1::2])
    report = compare(first, second, warn=0.1, fail=0.3)
    assert report["level"] == "ok", report
    assert report["features"]["mean"]["p_value"] > 0.01  # two halves of one data set: no evidence of a difference


def test_a_mild_brightness_shift_warns_and_a_far_one_fails():
    reference = digits_profile()
    mild = compare(reference, digits_profile(IMAGES * 0.93), warn=0.1, fail=0.3)
    assert mild["level"] == "warn" and any(m.startswith("mean:") for m in mild["messages"]), mild
    inverted = compare(reference, digits_profile(1.0 - IMAGES), warn=0.1, fail=0.3)
    assert inverted["level"] == "fail" and inverted["scores"]["mean"] > 0.9


def test_a_class_gone_fails_and_another_shape_is_not_compared():
    keep = LABELS != 7
    gone = compare(digits_profile(), digits_profile(IMAGES[keep], LABELS[keep]), warn=0.1, fail=0.3)
    assert gone["level"] == "fail" and gone["features"]["class_shares"]["classes_gone"] == ["7"]
    bigger = np.zeros((50, 28, 28), np.float32)
    other = compare(digits_profile(), profile(bigger, np.arange(50) % 10, 0.5, 50), warn=0.1, fail=0.3)
    assert (
        other["level"] == "warn"
        and not other["comparable"]
        and "image shape [8, 8] -> [28, 28]" in other["messages"][0]
    )


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(complete_params({})))
    return tmp_path


def write_feed(images: np.ndarray) -> None:
    n = len(images)
    write_prepared(
        "data/prepared",
        {
            "train": (images[: n // 2], LABELS[: n // 2]),
            "val": (images[n // 2 :], LABELS[n // 2 :]),
            "test": (images[n // 2 :], LABELS[n // 2 :]),
        },
        {"dataset": "digits"},
    )


def test_the_stage_reports_and_stops_before_training_on_a_broken_feed(project):
    write_feed(IMAGES)
    first = drift(load_params())
    assert first["level"] == "ok" and "nothing to compare" in first["messages"]
    (project / "champion").mkdir()
    (project / "champion" / "data_profile.json").write_text(
        json.dumps(digits_profile(IMAGES[: len(IMAGES) // 2], LABELS[: len(LABELS) // 2]))
    )
    assert drift(load_params())["level"] == "ok"
    write_feed(1.0 - IMAGES)  # a feed with inverted pixels
    with pytest.raises(DriftFailed, match="drifted from the champion's"):
        drift(load_params())
    report = json.loads((project / "reports" / "drift.json").read_text())
    assert report["level"] == "fail" and report["scores"]["ink_fraction"] > 0.3
    assert json.loads((project / "reports" / "drift_gate.json").read_text()) == {"level": "fail"}


def test_a_champion_profile_missing_a_key_is_named(project):
    write_feed(IMAGES)
    (project / "champion").mkdir()
    broken = digits_profile(IMAGES[: len(IMAGES) // 2], LABELS[: len(LABELS) // 2])
    del broken["class_shares"]
    (project / "champion" / "data_profile.json").write_text(json.dumps(broken))
    with pytest.raises(ValidationFailed, match=r"data_profile.json: key 'class_shares': Field required"):
        drift(load_params())
