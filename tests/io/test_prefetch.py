import threading
import time

import pytest

from selfie_avatar.io.prefetch import prefetch


def test_yields_everything_in_order():
    assert list(prefetch(range(100), depth=3)) == list(range(100))


def test_producer_error_reaches_the_consumer_after_the_good_items():
    def gen():
        yield 1
        yield 2
        raise OSError("disk gone")

    out = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetch(gen()):
            out.append(x)
    assert out == [1, 2]


def test_closing_the_consumer_stops_the_producer():
    produced = []

    def gen():
        for i in range(10_000):
            produced.append(i)
            yield i

    it = prefetch(gen(), depth=2)
    assert next(it) == 0
    it.close()
    time.sleep(0.3)
    n = len(produced)
    time.sleep(0.3)
    assert len(produced) == n < 10  # stopped, a few items ahead at most
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())
