"""Checkpoints: weights, optimizer state, epoch, params and data version, saved atomically, loaded weights-only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from vaeops.core.errors import CheckpointError
from vaeops.core.fileio import write_bytes_atomic
from vaeops.model.vae import VAE, ModelConfig


def save_checkpoint(paths: str | Path | list[str | Path], state: dict[str, Any]) -> None:
    """Save a checkpoint dict (plain types and tensors only) atomically to one or more paths, with the same bytes
    for the same state.

    torch.save names the zip records after the file it writes to; serialising to memory first keeps the random
    temp-file name out of the archive, so DVC sees identical checkpoints from identical runs, and lets last.pt and
    best.pt of an improving epoch share one serialisation.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    for path in paths if isinstance(paths, list) else [paths]:
        write_bytes_atomic(path, data)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with weights_only=True, so a checkpoint file cannot run code."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (run `vaeops train` first)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for corrupt files
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} holds a {type(state).__name__}, not a vaeops checkpoint (a dict with "
            "model_config, model_state, params and data_sha256 written by `vaeops train`)"
        )
    return state


def load_model(
    path: str | Path, expected_data_sha256: str | None = None, map_location: str | torch.device = "cpu"
) -> tuple[VAE, dict[str, Any]]:
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


def training_state(
    vae: VAE, optimizer, scheduler, config: ModelConfig, params, variant: str, data_sha256: str, run: dict[str, Any]
) -> dict[str, Any]:
    """Everything a resumed run needs and every later stage reads, as plain types and tensors (weights_only-safe)."""
    from vaeops.core import __version__

    sections = {
        name: {key: _own(value) for key, value in params.section_dict(name).items()}
        for name in ("data", "model", "train")
    }
    model_config = config.to_dict()
    # The architecture's names are the params' own objects, as when the config is built from a plain YAML load.
    model_config.update({key: sections["model"][key] for key in ("activation", "likelihood", "gaussian_std")})
    return {
        "vaeops_version": __version__,
        "model_config": model_config,
        "model_state": {k: v.detach().cpu() for k, v in vae.state_dict().items()},
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": None if scheduler is None else scheduler.state_dict(),
        "epoch": run["epoch"],
        "variant": variant,
        "params": sections,
        "data_sha256": data_sha256,
        "run": {key: run[key] for key in ("best_loss", "best_epoch", "bad_epochs", "history")},
        "rng_state": torch.get_rng_state(),
    }


def _own(value: Any) -> Any:
    """A string as an object of its own. pickle writes a string seen before as a reference to it, and pydantic hands
    out one shared object per `Literal` value (train.binarize and train.lr_schedule are both "none"): without fresh
    copies, identical models would get different checkpoint bytes, so another model version, than from a YAML load."""
    return value.encode().decode() if isinstance(value, str) else value


def restore_training(
    path: str | Path, vae: VAE, optimizer, scheduler, config: ModelConfig, variant: str, data_sha256: str
) -> dict[str, Any]:
    """Load last.pt into a freshly built model, optimizer and scheduler; refuse a checkpoint of another model or
    data."""
    state = load_checkpoint(path)
    if state.get("variant") != variant or state.get("model_config") != config.to_dict():
        raise CheckpointError(
            f"{path} holds a different model (variant {state.get('variant')!r}, config {state.get('model_config')}); "
            "cannot resume with the current model params; train afresh without --resume"
        )
    if state.get("data_sha256") != data_sha256:
        raise CheckpointError(
            f"{path} was trained on other data ({str(state.get('data_sha256'))[:12]}...); train afresh without --resume"
        )
    vae.load_state_dict(state["model_state"])
    optimizer.load_state_dict(state["optimizer_state"])
    if scheduler is not None and state.get("scheduler_state") is not None:
        scheduler.load_state_dict(state["scheduler_state"])
    torch.set_rng_state(state["rng_state"])
    return {"epoch": state["epoch"], "lr": state["params"]["train"]["lr"], **state["run"]}
