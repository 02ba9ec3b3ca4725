"""Settings that make PyTorch faster: the heap's handling of freed memory, and the training precision.

*Freed memory.* Applied by the ``causal-wm`` command line (`keep_freed_memory`).

glibc serves every allocation above its mmap threshold (128 KiB at first, adapting upwards only when such a block
is freed) with a fresh ``mmap``, and hands it back with ``munmap`` when freed. The transition GNN allocates tensors of
a few MB per edge batch on every call, so each call pays for page faults on fresh memory; in the probe's latent
interventions that was about half of the transition's time (measured: 12–17 ms vs 7.4–7.6 ms per call, 176 samples of
5 slots). `keep_freed_memory` raises the mmap and trim thresholds so that freed blocks stay in the heap and are
reused. PyTorch's CPU tuning guide reaches the same effect with jemalloc or tcmalloc via ``LD_PRELOAD``.

It changes no result, only speed and the resident memory a process keeps. Library users who want it call it
themselves; importing ``causal_wm`` never changes the allocator.

*Training precision* (``causal-wm train --precision bf16``, `training_autocast`). Under bfloat16 autocast the
convolutions and matrix products of the training step run in bfloat16, with float32 weights, optimizer state and
losses; no loss scaling is needed (bfloat16 has float32's exponent range). The model keeps the precision-sensitive
parts in float32 whatever the autocast (`full_precision`): slots leave the encoders, and Δz the transition, as
float32, so rollouts accumulate in float32; the state encoder and decoder (the positions and their one-step changes
that the dynamics loss compares), the keypoint maps' softmax and centroids, and the inferred edge logits run in
float32. Evaluation, probing and interventions always run in float32.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the command line applies `keep_freed_memory` before it
    import torch

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30
"""Blocks up to this size come from the heap, and up to this much free memory stays in it."""

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Keep freed large blocks in glibc's heap for reuse (see the module docstring); True if it took effect.

    A no-op returning False off Linux or without glibc's ``mallopt`` (e.g. musl); idempotent."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            return False
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _applied = bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    return _applied


PRECISIONS = ("fp32", "bf16")
"""Training precisions: float32 throughout, or bfloat16 autocast (see the module docstring)."""


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively: a CUDA GPU that supports bfloat16, or a CPU with
    AVX512-BF16 or AMX tiles. Elsewhere bfloat16 is emulated and slower than float32."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return device.type == "cpu" and any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def training_autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of one training step's forward pass at ``precision`` (one of `PRECISIONS`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is bfloat16 or float16; unchanged otherwise (float64 stays float64)."""
    import torch

    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Suspend autocast on ``x``'s device: the block runs in the dtype of its inputs (float32)."""
    import torch

    return torch.autocast(x.device.type, enabled=False)
