"""Identity leakage in reenactment: the report's similarities tell the subject from the driver."""

import numpy as np
import pytest

from selfie_avatar.evaluate.reenact_identity import reenactment_identity, sample_positions
from selfie_avatar.evaluate.scoring import identity_status
from selfie_avatar.io.video import iter_frames
from selfie_avatar.tracking.subject import Subject

needs_descriptor = pytest.mark.skipif(not identity_status()[0], reason=identity_status()[1])


def test_sample_positions_spread_over_the_clip():
    assert sample_positions(10, 4) == [0, 3, 6, 9]
    assert sample_positions(3, 32) == [0, 1, 2] and sample_positions(0, 5) == []


@needs_descriptor
def test_the_subjects_own_frames_look_like_the_subject_and_not_the_driver(train_subject, shared_data):
    subject = Subject(train_subject)
    # Stand-ins for avatar frames: the subject's own crops, which must score as the subject, and the driver's
    # frames beside them, which must not.
    own = [subject.frame(i) for i in subject.test_indices]
    driver = [f for _, f in zip(range(len(own)), iter_frames(shared_data / "driver_d3.mp4"))]
    r = reenactment_identity(own, driver, subject, count=8)
    assert r["frames_without_face"] == {"avatar": 0, "driver": 0}
    assert r["to_subject"]["mean"] > r["driver_to_subject"]["mean"] + 0.03
    assert r["to_driver"]["mean"] == pytest.approx(r["driver_to_subject"]["mean"], abs=0.03)
    # the driver's frames as the "avatar": leakage is then as large as it can be
    r2 = reenactment_identity(driver, driver, subject, count=8)
    assert r2["to_driver"]["mean"] > 0.99 and r2["leakage"] > r["leakage"] + 0.03
    assert np.isfinite(r["to_subject"]["ci95"]).all()


def test_reenact_reports_identity_or_says_why_not(tiny_run, driver_clip, tmp_path):
    import json

    from selfie_avatar.config import ReenactConfig
    from selfie_avatar.reenact.run import reenact

    out = tmp_path / "a.mp4"
    result = reenact(ReenactConfig(run_dir=str(tiny_run), driver=str(driver_clip), out=str(out), max_frames=6,
                                   device="cpu", progress=False, checkpoint="last", side_by_side=False))
    ident = json.loads(out.with_suffix(".json").read_text())["identity"]
    if identity_status()[0]:
        assert {"to_subject", "to_driver", "driver_to_subject", "leakage"} <= set(ident)
        assert "avatar to subject" in result.summary()
    else:
        assert ident["note"] and "identity: not measured" in result.summary()
