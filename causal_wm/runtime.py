"""Process-level settings that make PyTorch on CPU faster, applied by the ``causal-wm`` command line.

glibc serves every allocation above its mmap threshold (128 KiB at first, adapting upwards only when such a block
is freed) with a fresh ``mmap``, and hands it back with ``munmap`` when freed. The transition GNN allocates tensors of
a few MB per edge batch on every call, so each call pays for page faults on fresh memory; in the probe's latent
interventions that was about half of the transition's time (measured: 12–17 ms vs 7.4–7.6 ms per call, 176 samples of
5 slots). `keep_freed_memory` raises the mmap and trim thresholds so that freed blocks stay in the heap and are
reused. PyTorch's CPU tuning guide reaches the same effect with jemalloc or tcmalloc via ``LD_PRELOAD``.

It changes no result, only speed and the resident memory a process keeps. Library users who want it call it
themselves; importing ``causal_wm`` never changes the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

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
