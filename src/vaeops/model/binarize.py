"""Binarization of grey-level images: none, static (one fixed seeded draw) or dynamic (a fresh draw every epoch)."""

from __future__ import annotations

import torch

MODES = ("none", "static", "dynamic")


def binarize_static(x: torch.Tensor, seed: int) -> torch.Tensor:
    """One fixed Bernoulli draw per pixel with probability = grey level; the same seed gives the same images."""
    gen = torch.Generator(device=x.device)
    gen.manual_seed(seed)
    return torch.bernoulli(x, generator=gen)


def binarize_fresh(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A new Bernoulli draw per pixel (dynamic binarization: each epoch sees different binary images)."""
    return torch.bernoulli(x, generator=generator)
