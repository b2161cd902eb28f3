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


def machine_info() -> dict:
    """``processor``, ``cpu_count``, ``torch`` (version), ``torch_threads`` and
    ``summary``, the same in one line (:func:`machine_summary`)."""
    import os
    import platform

    import torch

    info = {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    summary = (f"{info['processor']}, {info['cpu_count']} cores, torch {info['torch']}, "
               f"{info['torch_threads']} threads")
    return {**info, "summary": summary}


def machine_summary() -> str:
    """One line: processor, cores, torch version and threads."""
    return machine_info()["summary"]
