"""Adam and the learning-rate schedules of train.lr_schedule (none, step, cosine, plateau)."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau, StepLR

from vaeops.core.params import TrainParams

Scheduler = LRScheduler | ReduceLROnPlateau


def build_optimizer(parameters, cfg: TrainParams, device: torch.device) -> torch.optim.Adam:
    """Adam; the fused kernel on CPU and CUDA (one pass over the weights per step instead of one per operation)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(
        parameters, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), fused=fused, foreach=None if fused else True
    )


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainParams) -> Scheduler | None:
    """The per-epoch learning-rate schedule, or None for a constant rate."""
    if cfg.lr_schedule == "step":
        return StepLR(optimizer, step_size=cfg.lr_step_epochs, gamma=cfg.lr_gamma)
    if cfg.lr_schedule == "cosine":
        # LambdaLR rather than CosineAnnealingLR: its state does not pin the length, so a resumed run that raises
        # train.epochs follows the cosine of the new length.
        epochs = cfg.epochs
        return LambdaLR(optimizer, lambda epoch: 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs)))
    if cfg.lr_schedule == "plateau":
        return ReduceLROnPlateau(optimizer, mode="min", factor=cfg.lr_gamma, patience=cfg.lr_patience)
    return None


def step_scheduler(scheduler: Scheduler | None, val_loss: float) -> None:
    """Advance the schedule once per epoch; the plateau schedule watches the validation loss."""
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(val_loss)
    elif scheduler is not None:
        scheduler.step()


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the first parameter group (all groups share it here)."""
    return float(optimizer.param_groups[0]["lr"])


def override_lr(optimizer: torch.optim.Optimizer, scheduler: Scheduler | None, saved_lr: float, lr: float) -> None:
    """On resume, apply a changed train.lr (e.g. a lower rate after a divergence), keeping the schedule's progress:
    the restored optimizer state would otherwise silently keep the saved rate."""
    if lr == saved_lr:
        return
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * lr / saved_lr
        group["initial_lr"] = lr
    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr for _ in scheduler.base_lrs]
    if isinstance(scheduler, LRScheduler):
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
