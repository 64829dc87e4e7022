"""The data profile a champion keeps: per-image features against a direct computation, class shares, sampling."""

from __future__ import annotations

import numpy as np

from vaeops.dataset.profile import image_features, profile


def test_features_skip_non_finite_pixels_and_count_ink():
    images = np.array([[[0.0, 1.0], [0.6, np.nan]], [[0.2, 0.2], [0.2, 0.2]]])
    features = image_features(images, ink_threshold=0.5)
    np.testing.assert_allclose(features["mean"], [(0 + 1 + 0.6) / 3, 0.2])
    np.testing.assert_allclose(features["ink_fraction"], [0.5, 0.0])


def test_profile_has_shares_shape_and_a_seeded_sample():
    rng = np.random.default_rng(0)
    images, labels = rng.random((100, 4, 4)), np.repeat([0, 1, 2, 3], 25)
    first, again = profile(images, labels, 0.5, sample=10), profile(images, labels, 0.5, sample=10)
    assert first == again and first["image_shape"] == [4, 4] and first["images"] == 100
    assert first["class_shares"] == {"0": 0.25, "1": 0.25, "2": 0.25, "3": 0.25}
    assert len(first["mean"]) == len(first["ink_fraction"]) == 10
    assert set(first["mean"]) <= {round(float(v), 6) for v in image_features(images, 0.5)["mean"]}
