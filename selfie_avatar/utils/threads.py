"""How many CPU threads torch should use when other processes share the cores.

torch's OpenMP threads wait for each other at the end of every parallel operation by spinning. When another
process holds one of two cores, the thread that shares a core with it keeps the others spinning at each barrier:
a CPU training step became 3.6 times slower (``benchmarks/busy_machine.py``), while one thread on the free core
runs at full single-core speed. So the toolkit counts the cores that other processes leave free and uses that many
threads, never more than torch's own default; during training it looks again every ``every_s`` seconds
(:class:`ThreadGovernor`), so a browser or a notebook that starts or stops mid-run is followed.

Other load is read from ``/proc/stat`` for the CPUs this process may run on, minus this process's own CPU time.
Where that is not available (not Linux) or the user fixed a number (``OMP_NUM_THREADS``, or
``SELFIE_AVATAR_THREADS``, which also accepts ``fixed`` to turn the adaptation off), nothing is changed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from selfie_avatar.utils.log import get_logger

log = get_logger("threads")

ENV = "SELFIE_AVATAR_THREADS"


@dataclass
class CpuSample:
    """Cumulative CPU seconds at one moment: all of this process's CPUs (busy and total), and this process."""

    wall: float
    busy: float
    total: float
    own: float


def _cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def sample_cpu() -> CpuSample | None:
    """Read the counters, or None where ``/proc/stat`` is not there."""
    cpus = _cpus()
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        v = [float(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(v)
        busy += sum(v) - v[3] - v[4]
    if total == 0:
        return None
    t = os.times()
    return CpuSample(time.monotonic(), busy / tick, total / tick, t.user + t.system)


def other_cores(a: CpuSample, b: CpuSample) -> float:
    """Cores other processes kept busy, on average, between two samples."""
    span = (b.total - a.total) / max(len(_cpus()), 1)  # seconds of wall time the counters cover
    if span <= 0:
        return 0.0
    return max(0.0, ((b.busy - a.busy) - (b.own - a.own)) / span)


_torch_default: int | None = None  # torch's own thread count, before this module first changed it


def max_threads() -> int:
    """The most threads the adaptation ever uses: torch's own default, as it was before any change here."""
    import torch

    return _torch_default if _torch_default is not None else torch.get_num_threads()


def _set_threads(n: int) -> None:
    global _torch_default
    import torch

    if _torch_default is None:
        _torch_default = torch.get_num_threads()
    torch.set_num_threads(n)


def user_fixed() -> bool:
    return bool(os.environ.get("OMP_NUM_THREADS")) or bool(os.environ.get(ENV))


def free_threads(other: float, default: int) -> int:
    """Threads for the cores left free: round down a partly used core (a shared core is the slow case)."""
    return max(1, min(default, int(len(_cpus()) - other + 0.25)))


def adapt_threads(interval: float = 0.2) -> int | None:
    """Measure the other load for ``interval`` seconds and set torch's thread count to the free cores.

    Returns:
        The thread count set, or None when nothing was changed (fixed by the user, or no counters here).
    """
    import torch

    fixed = os.environ.get(ENV, "")
    if fixed.isdigit():
        _set_threads(int(fixed))
        return int(fixed)
    if user_fixed():
        return None
    a = sample_cpu()
    if a is None:
        return None
    time.sleep(interval)
    other = other_cores(a, sample_cpu())
    n = free_threads(other, max_threads())
    if n != torch.get_num_threads():
        log.info("other processes are using %.1f of %d cores: using %d thread%s (set %s=N to choose)",
                 other, len(_cpus()), n, "" if n == 1 else "s", ENV)
        _set_threads(n)
    return n


class ThreadGovernor:
    """Every ``every_s`` seconds, set torch's threads to the cores other processes left free since the last look.

    Call :meth:`tick` often (each training step); it reads the counters only when ``every_s`` has passed.
    """

    def __init__(self, every_s: float = 15.0) -> None:
        import torch

        self.every_s = every_s
        self.enabled = not user_fixed()
        self.default = max_threads()  # the most it will ever use, also when the command started on fewer
        self.threads = torch.get_num_threads()
        self._last = sample_cpu() if self.enabled else None
        self.enabled = self._last is not None
        self.changes: list[tuple[float, int]] = []

    def tick(self) -> None:
        if not self.enabled or time.monotonic() - self._last.wall < self.every_s:
            return
        now = sample_cpu()
        other = other_cores(self._last, now)
        self._last = now
        n = free_threads(other, self.default)
        if n != self.threads:
            log.info("other processes are using %.1f of %d cores: training on %d thread%s (was %d)", other,
                     len(_cpus()), n, "" if n == 1 else "s", self.threads)
            _set_threads(n)
            self.threads = n
            self.changes.append((now.wall, n))
