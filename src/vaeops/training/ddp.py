"""Multi-process training through torch.distributed: set up by torchrun's environment, gloo on CPU, nccl on CUDA."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; a single process is rank 0 of a world of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """Read RANK / WORLD_SIZE / LOCAL_RANK as set by torchrun; absent variables mean a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist()
    return Dist(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def init(ctx: Dist, device: torch.device) -> None:
    """Join the process group (env:// rendezvous from torchrun) unless this is a single process or it already joined."""
    if ctx.enabled and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None
        )


def shutdown(ctx: Dist) -> None:
    """Leave the process group cleanly (torchrun warns when a process exits without it)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, ctx: Dist, device: torch.device) -> nn.Module:
    """Wrap in DistributedDataParallel (which broadcasts rank 0's weights, then averages gradients every step)."""
    if not ctx.enabled:
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def shard(indices: torch.Tensor, ctx: Dist) -> torch.Tensor:
    """This rank's equal share of an epoch's permutation (the same permutation on every rank; the tail that does
    not divide evenly is dropped, so every rank runs the same number of steps and no all-reduce waits forever)."""
    if not ctx.enabled:
        return indices
    per_rank = indices.shape[0] // ctx.world_size
    return indices[ctx.rank * per_rank : (ctx.rank + 1) * per_rank]


def all_reduce_sum(tensor: torch.Tensor, ctx: Dist) -> torch.Tensor:
    """Sum a metric tensor over ranks in place (one collective per epoch, not per step)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def weights_digest(module: nn.Module) -> str:
    """sha256 over the raw bytes of every parameter and buffer: equal digests mean bitwise-equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def gather_digests(module: nn.Module, ctx: Dist) -> list[str]:
    """Every rank's weights digest, in rank order: the check that DDP kept the replicas identical."""
    mine = weights_digest(module)
    if not ctx.enabled:
        return [mine]
    everyone: list[str | None] = [None] * ctx.world_size
    dist.all_gather_object(everyone, mine)
    return [str(d) for d in everyone]


def barrier(ctx: Dist) -> None:
    """Wait for every rank (e.g. until rank 0 has written the checkpoint)."""
    if ctx.enabled:
        dist.barrier()
