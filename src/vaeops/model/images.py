"""Images as the model sees them: one prepared split as a float tensor (N, D), checked, binarized once if asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vaeops.core.errors import DataError
from vaeops.dataset.splits import load_split
from vaeops.model.binarize import binarize_static


def load_images(
    prepared_dir: str | Path, split: str, binarize: str = "none", binarize_seed: int = 0
) -> tuple[torch.Tensor, np.ndarray, tuple[int, int]]:
    """The split as (N, D) float32, binarized once when `binarize` is static; its labels; the image shape (H, W)."""
    images, labels = load_split(prepared_dir, split)
    if images.shape[0] == 0:
        raise DataError(f"{prepared_dir}/{split}.npz holds no images: there is nothing to evaluate")
    x = torch.from_numpy(images.reshape(images.shape[0], -1).astype(np.float32))
    if not (0 <= float(x.min()) and float(x.max()) <= 1):
        raise DataError(f"{prepared_dir}/{split}.npz: pixel values outside [0, 1]")
    if binarize == "static":
        x = binarize_static(x, binarize_seed)
    return x, labels, tuple(images.shape[1:])
