"""Device, precision and thread choices for training: CUDA, then MPS, then CPU, each overridable from params."""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass

import numpy as np
import torch

from vaeops.core.errors import ParamsError


@dataclass(frozen=True)
class Hardware:
    """Where and how the training loop runs."""

    device: torch.device
    precision: str  # "fp32" or "bf16" (autocast)
    data_on_device: bool  # False: host data in pinned memory, copied per batch with non_blocking=True

    @property
    def kind(self) -> str:
        return self.device.type

    def autocast(self) -> ContextManager:
        """bf16 autocast on this device, or a no-op for fp32; weights and the optimizer stay in fp32."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def mps_available() -> bool:
    """True when Apple's Metal backend can run (absent from most builds)."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """Turn train.device into a torch.device: auto picks CUDA (this process's local rank), then MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParamsError(f"train.device is {name!r} but CUDA is not available here; use auto or cpu")
        index = int(name.partition(":")[2] or local_rank)
        if index >= torch.cuda.device_count():
            raise ParamsError(f"train.device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return torch.device("cuda", index)
    if name == "mps" and not mps_available():
        raise ParamsError("train.device is 'mps' but the MPS backend is not available here; use auto or cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """auto means bf16 autocast on CUDA GPUs that support it and fp32 elsewhere; bf16 is refused where it cannot run."""
    if name == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if name == "bf16" and device.type == "mps":
        raise ParamsError("train.precision bf16 is not supported on MPS; use fp32 or auto")
    return name


def resolve_matmul_precision(name: str, device: torch.device) -> str:
    """torch's float32 matmul precision: auto is "high" (TF32) on CUDA and "highest" (true fp32) elsewhere.

    "medium" on a CPU with AMX runs fp32 matmuls through oneDNN in bf16 (fp32 inputs, outputs and weights): the
    speed of bf16 matmuls without autocast's casts of weights and gradients, which cost more than they save here.
    """
    if name == "auto":
        return "high" if device.type == "cuda" else "highest"
    return name


def configure(device_name: str, precision: str, data_on_device: bool, local_rank: int = 0) -> Hardware:
    """Pick the device and precision, select the CUDA device, and let the allocator keep freed memory (see
    retain_freed_memory). Thread count and matmul precision are process-wide torch settings: see compute_settings."""
    device = resolve_device(device_name, local_rank)
    retain_freed_memory()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Hardware(device, resolve_precision(precision, device), data_on_device or device.type != "cuda")


@contextlib.contextmanager
def compute_settings(threads: int, matmul_precision: str, device: torch.device) -> Iterator[None]:
    """Inside the block: `threads` torch CPU threads (0 keeps the current count) and the float32 matmul precision,
    TF32 / bf16-inside-matmul for the fp32 parts (errors of ~1e-3 relative, well inside the ELBO's Monte-Carlo noise).
    Both are restored afterwards, so a stage that follows in the same process (the Prefect flow runs them all in
    one) does not inherit the training stage's choices."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(resolve_matmul_precision(matmul_precision, device))
    try:
        with intra_op_threads(threads if threads > 0 else torch.get_num_threads()):
            yield
    finally:
        torch.set_float32_matmul_precision(previous)


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat subnormal floats as zero on the CPU inside the block, then restore torch's default (off).

    Adam's first moment of a weight whose gradient is always zero (MNIST's blank border pixels, dead ReLU units)
    decays into the subnormal range and stays there (0.9 times the smallest subnormal rounds back to itself); x86
    cores handle subnormals in microcode, which made MNIST steps about 40% slower after a thousand steps. Values below
    1e-38 carry nothing for the ELBO, and flushing them is deterministic. Scoped so other stages keep IEEE arithmetic.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch CPU threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# glibc mallopt options (malloc.h) and the largest mmap threshold it accepts on 64-bit systems.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MAX_MMAP_THRESHOLD = 32 << 20


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks up to 32 MB for reuse instead of handing them back to the OS.

    Every training step allocates and frees the same large temporaries (a 512 x 784 batch of logits is 1.6 MB, an
    IWAE step's 50 x 100 x 784 is 16 MB). Under glibc's adaptive defaults such blocks keep being unmapped or trimmed
    off the heap and mapped again, and every page of a fresh mapping costs a page fault when first touched: on a
    2-core KVM guest `torch.exp(-x.abs())` on 1.6 MB took 1.86 ms instead of 0.23 ms. Process-wide and permanent
    (glibc cannot return to its adaptive thresholds), which suits a process that trains; returns False and changes
    nothing where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter is linked against
    except (OSError, AttributeError):
        return False
    settings = ((M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))
    return all(mallopt(option, value) == 1 for option, value in settings)


def place_data(x: torch.Tensor, hardware: Hardware) -> torch.Tensor:
    """Put the whole data set where batches are cut from: on the device, or left in host memory (each epoch then
    gathers its shuffled rows into a pinned buffer and copies batches from it asynchronously; see trainer.EpochData)."""
    return x.to(hardware.device) if hardware.data_on_device else x


def derive_seed(*keys: int) -> int:
    """An independent 63-bit seed for a tuple of keys, e.g. (seed, stream, rank, epoch) in training or (seed, stream,
    image chunk) in evaluation: resume, DDP and any number of evaluation workers need no RNG bookkeeping."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A seeded random generator living on `device` (random draws must come from a generator on their device)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


PRECISIONS = ("fp32", "bf16")  # matmul precisions of the decoder head in the estimators


def bf16_matmul_supported(device: torch.device) -> bool:
    """True where bf16 matmuls run natively: GPUs, and CPUs with AMX or AVX512-BF16 (elsewhere torch emulates
    them, slower than fp32, so bf16 would cost precision and buy nothing)."""
    if device.type != "cpu":
        return True
    checks = (getattr(torch.cpu, "_is_amx_tile_supported", None), getattr(torch.cpu, "_is_avx512_bf16_supported", None))
    return any(check is not None and check() for check in checks)


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse an unknown precision, and bf16 where this device has no native bf16 matmuls."""
    if precision not in PRECISIONS:
        raise ParamsError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and not bf16_matmul_supported(device):
        raise ParamsError(
            "precision bf16 needs native bf16 matmuls (a GPU, or a CPU with AVX512-BF16 or AMX); "
            "use fp32 on this machine"
        )
