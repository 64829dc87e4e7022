"""Checkpoints: weights, optimizer state, epoch, params and data version, saved atomically, loaded weights-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vaeops.errors import CheckpointError
from vaeops.fileio import atomic_path
from vaeops.model import VAE, ModelConfig


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Save a checkpoint dict (plain types and tensors only) via a temp file and rename."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with weights_only=True, so a checkpoint file cannot run code."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (run `vaeops train` first)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for corrupt files
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None


def load_model(path: str | Path, expected_data_sha256: str | None = None, map_location: str | torch.device = "cpu") -> tuple[VAE, dict[str, Any]]:
    """Rebuild the VAE stored in a checkpoint, in eval mode; refuse it if it was trained on other data."""
    state = load_checkpoint(path, map_location)
    if expected_data_sha256 is not None and state.get("data_sha256") != expected_data_sha256:
        raise CheckpointError(
            f"{path} was trained on data {str(state.get('data_sha256'))[:12]}..., but the prepared data is "
            f"{expected_data_sha256[:12]}...; retrain (`vaeops train`) or re-prepare the matching data"
        )
    try:
        model = VAE(ModelConfig.from_dict(state["model_config"]))
        model.load_state_dict(state["model_state"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not hold a vaeops model: {exc}") from None
    return model.eval(), state
