"""Small timing helpers for benchmarks (best-of-N wall clock)."""
from __future__ import annotations

import time


def best_of(fn, repeats: int = 5, warmup: int = 1) -> tuple[float, object]:
    """Minimum wall-clock seconds of ``fn()`` over ``repeats`` runs and its last result."""
    out = None
    for _ in range(warmup):
        out = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def machine_summary() -> str:
    import os
    import platform

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")
