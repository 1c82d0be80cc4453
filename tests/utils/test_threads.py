"""The thread count follows the cores other processes leave free, and never overrides the user's choice."""

from __future__ import annotations

import pytest
import torch

from selfie_avatar.utils import threads
from selfie_avatar.utils.threads import CpuSample, ThreadGovernor, free_threads, other_cores


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(threads, "_cpus", lambda: {0, 1})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(threads.ENV, raising=False)
    monkeypatch.setattr(threads, "_torch_default", None)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_other_load_is_system_busy_time_minus_our_own(two_cores):
    a = CpuSample(wall=0.0, busy=0.0, total=0.0, own=0.0)
    # 10 s of wall time on 2 cores (20 CPU-seconds), 19 busy of which 9.5 were ours: another process held a core
    b = CpuSample(wall=10.0, busy=19.0, total=20.0, own=9.5)
    assert other_cores(a, b) == pytest.approx(0.95)
    assert free_threads(0.95, default=2) == 1
    assert free_threads(0.1, default=2) == 2  # a little background noise keeps both threads
    assert free_threads(1.9, default=2) == 1  # never fewer than one
    assert free_threads(0.0, default=1) == 1  # never more than torch's default


def test_the_governor_lowers_and_restores_threads(two_cores, monkeypatch):
    torch.set_num_threads(2)
    samples = iter([CpuSample(0, 0, 0, 0), CpuSample(20, 38, 40, 19), CpuSample(40, 58, 80, 39)])
    monkeypatch.setattr(threads, "sample_cpu", lambda: next(samples))
    clock = iter([5.0, 25.0, 45.0])
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    gov = ThreadGovernor(every_s=15)
    gov.tick()  # 5 s after start: too early to look
    assert torch.get_num_threads() == 2
    gov.tick()  # another process held a core: one thread
    assert torch.get_num_threads() == 1 and gov.threads == 1
    gov.tick()  # it has gone: both threads again (busy 20 of 40 CPU-seconds, all ours)
    assert torch.get_num_threads() == 2 and [n for _, n in gov.changes] == [1, 2]


def test_a_users_thread_count_wins(two_cores, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.adapt_threads(interval=0.0) is None
    assert not ThreadGovernor().enabled
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv(threads.ENV, "1")
    assert threads.adapt_threads(interval=0.0) == 1 and torch.get_num_threads() == 1


def test_adapt_measures_on_this_machine(two_cores):
    n = threads.adapt_threads(interval=0.05)
    assert n is None or 1 <= n <= 2


def test_a_run_that_started_busy_gets_its_threads_back(two_cores, monkeypatch):
    """The command lowered torch to one thread at start; the governor may still go back up to torch's default."""
    torch.set_num_threads(2)
    samples = iter([CpuSample(0, 0, 0, 0), CpuSample(0.2, 0.38, 0.4, 0.0),   # adapt: another process holds a core
                    CpuSample(1, 1, 2, 0.5), CpuSample(21, 21, 42, 20.5)])   # governor: it has gone
    monkeypatch.setattr(threads, "sample_cpu", lambda: next(samples))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    assert threads.adapt_threads() == 1 and torch.get_num_threads() == 1
    clock = iter([25.0])
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    gov = ThreadGovernor(every_s=15)
    assert gov.default == 2 and gov.threads == 1
    gov.tick()
    assert torch.get_num_threads() == 2
