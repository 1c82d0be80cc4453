"""Fixtures shared with the training tests (a small subject, a tiny trained run) and a driving clip."""

import pytest

from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def driver_clip(tmp_path_factory):
    """The real driver when ../shared/data is there, else a one-second built-in sample clip."""
    video = SHARED_DATA / "driver_d3.mp4"
    if video.is_file():
        return video
    from tests.prepare.conftest import build_short_sample

    return build_short_sample(tmp_path_factory.mktemp("driver") / "driver.mp4", seconds=1.0)
