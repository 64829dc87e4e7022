"""The inner training loop: one epoch over index slices of a shuffled permutation, and the validation pass.

Speed on CPU comes from what the loop does not do: no Dataset/DataLoader (the data set is one tensor, a batch is
`data[order[i:i + B]]`), no host synchronisation per step (metrics add up in a tensor on the device and are read once
per epoch), fused Adam, and bf16 autocast where the hardware has it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from vaeops.model.binarize import binarize_fresh
from vaeops.model.devices import Hardware
from vaeops.model.objectives import elbo_terms, iwae_terms
from vaeops.model.vae import VAE

# Rows of the per-epoch metric accumulator: batch sums of these, divided by the image count at the end.
STAT_NAMES = ("loss", "recon", "kl", "mc_std")


class Objective(nn.Module):
    """The training objective as one module, so DistributedDataParallel and torch.compile see a single forward."""

    def __init__(
        self,
        vae: VAE,
        objective: str = "elbo",
        samples: int = 1,
        latent: str = "sample",
        kl: str = "analytic",
        kl_weight: float = 1.0,
    ):
        super().__init__()
        self.vae, self.objective, self.samples, self.latent, self.kl = vae, objective, samples, latent, kl
        self.kl_weight = kl_weight  # 0 for the plain autoencoder: its loss has no KL term at all
        self.beta = kl_weight  # the KL weight of the current epoch (a warm-up ramps it to kl_weight)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the loss to minimise and a (4,) tensor of batch sums: loss, recon, KL, MC std over the K draws."""
        if self.objective == "iwae":
            terms = iwae_terms(self.vae, x, self.samples, self.generator)
        else:
            terms = elbo_terms(self.vae, x, self.samples, self.latent, self.kl, self.beta, self.generator)
        n = x.shape[0]
        draws = terms.per_sample_elbo
        spread = draws.float().std(0).sum() if draws.shape[0] > 1 else terms.loss.new_zeros(())
        stats = torch.stack([terms.loss.detach() * n, terms.recon.detach() * n, terms.kl.detach() * n, spread])
        return terms.loss, stats.float()


def kl_beta(epoch: int, warmup_epochs: int) -> float:
    """Linear KL warm-up: beta = (epoch + 1) / warmup_epochs up to 1 (epoch counts from 0); 1 when warm-up is off."""
    return 1.0 if warmup_epochs <= 0 else min(1.0, (epoch + 1) / warmup_epochs)


@dataclass
class EpochData:
    """What one epoch iterates over: the data tensor, this rank's shuffled row indices, and how batches reach the
    device."""

    data: torch.Tensor  # (N, D) on the device, or in pinned host memory
    order: torch.Tensor  # (n,) row indices for this rank and epoch
    hardware: Hardware
    dynamic_binarize: bool = False

    def batches(self, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
        """Yield the epoch's batches: index slices of the permutation, binarized afresh when asked."""
        if self.hardware.data_on_device:
            order = self.order.to(self.data.device)
            take = lambda start, stop: self.data.index_select(0, order[start:stop])  # noqa: E731
        else:
            # Gather the epoch's rows once into pinned memory, then copy contiguous slices asynchronously.
            source = torch.empty((self.order.shape[0], self.data.shape[1]), dtype=self.data.dtype, pin_memory=True)
            torch.index_select(self.data, 0, self.order, out=source)
            device = self.hardware.device
            take = lambda start, stop: source[start:stop].to(device, non_blocking=True)  # noqa: E731
        for start in range(0, self.order.shape[0], batch_size):
            batch = take(start, start + batch_size)
            yield binarize_fresh(batch, generator) if self.dynamic_binarize else batch


def train_epoch(
    step_module: nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    epoch_data: EpochData,
    batch_size: int,
    grad_clip: float = 0.0,
    progress: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run one epoch of optimisation; return the (4,) batch-sum accumulator (still on the device, not synchronised).

    `step_module` is `objective` itself, or its DDP / torch.compile wrapper; `objective.generator` supplies the noise.
    """
    step_module.train()
    hardware = epoch_data.hardware
    params = [p for p in objective.parameters() if p.requires_grad]
    total = torch.zeros(len(STAT_NAMES), device=hardware.device)
    for batch in epoch_data.batches(batch_size, objective.generator):
        with hardware.autocast():
            loss, stats = step_module(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
        optimizer.step()
        total += stats
        if progress is not None:
            progress(batch.shape[0], total)
    return total


@torch.no_grad()
def validation_sums(
    objective: Objective,
    x: torch.Tensor,
    batch_size: int,
    hardware: Hardware,
    generator: torch.Generator,
    spread_samples: int,
) -> torch.Tensor:
    """Batch sums over `x` of the training objective at its full KL weight (what early stopping watches), its recon
    and KL
    terms, and the std of a single-draw ELBO estimate over `spread_samples` draws (0 when off or latent = mean)."""
    objective.eval()
    vae = objective.vae
    total = torch.zeros(len(STAT_NAMES), device=hardware.device)
    for start in range(0, x.shape[0], batch_size):
        batch = x[start : start + batch_size].to(hardware.device, non_blocking=True)
        n = batch.shape[0]
        with hardware.autocast():
            if objective.objective == "iwae":
                terms = iwae_terms(vae, batch, objective.samples, generator)
            else:
                terms = elbo_terms(
                    vae, batch, objective.samples, objective.latent, objective.kl, objective.kl_weight, generator
                )
            spread = terms.loss.new_zeros(())
            if spread_samples >= 2 and objective.latent == "sample":
                draws = elbo_terms(vae, batch, spread_samples, "sample", objective.kl, 1.0, generator).per_sample_elbo
                spread = draws.float().std(0).sum()
        total += torch.stack([terms.loss * n, terms.recon * n, terms.kl * n, spread]).float()
    return total


def summarize(total: torch.Tensor, count: int) -> dict[str, float]:
    """Turn an accumulator into per-image means (the one host synchronisation of an epoch)."""
    values = (total / max(count, 1)).tolist()
    return dict(zip(STAT_NAMES, values))


def is_finite(metrics: dict[str, float]) -> bool:
    """False when any metric is NaN or infinite (the sign that training diverged)."""
    return all(math.isfinite(v) for v in metrics.values())
