"""One way to time a call for a frames-per-second figure: warm-up calls first (allocator, kernel choice,
``torch.compile``), then the median of timed calls, each waited for on CUDA (kernels run asynchronously)."""

from __future__ import annotations

import time
from typing import Callable

import torch


def calls_per_second(fn: Callable[[], object], repeats: int = 20, warmup: int = 3,
                     device: torch.device | str | None = None) -> float:
    """Calls per second of ``fn()``: one over the median of ``repeats`` timed calls, after ``warmup`` untimed ones.

    Args:
        fn: the call to time (no arguments; close over the inputs).
        repeats: timed calls (at least 1).
        warmup: untimed calls before them.
        device: the device ``fn`` runs on; on CUDA every call is synchronised before its clock stops.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    cuda = device is not None and torch.device(device).type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    times.sort()
    return 1.0 / times[len(times) // 2]
