import time

import pytest

from selfie_avatar.utils.timing import calls_per_second


def test_rate_of_a_known_call_and_warmup_is_not_timed():
    calls = []

    def slow_first():
        calls.append(1)
        time.sleep(0.2 if len(calls) == 1 else 0.01)

    rate = calls_per_second(slow_first, repeats=5, warmup=1)
    assert len(calls) == 6
    assert 50 < rate <= 100  # 10 ms per timed call; the 200 ms warm-up call does not count


def test_repeats_must_be_positive():
    with pytest.raises(ValueError, match="repeats"):
        calls_per_second(lambda: None, repeats=0)
