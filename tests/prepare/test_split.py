import json

import numpy as np
import pytest

from selfie_avatar.tracking.subject import Subject, split_frames


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 24, 60, 1008])
def test_the_three_sets_never_overlap_and_keep_frame_order(n):
    valid = np.ones(n + 7, bool)
    valid[[1, 4, 6]] = False  # frames without a face belong to no set
    s = split_frames(valid, 0.10, 0.05)
    sets = [s.train, s.validation, s.test]
    flat = s.train + s.validation + s.test
    assert flat == np.flatnonzero(valid).tolist()  # disjoint, complete, in order: train < validation < test
    assert not {1, 4, 6} & set(flat)
    if len(flat) >= 2:
        assert s.test and s.train
    if len(flat) >= 3:
        assert s.validation
    assert all(len(x) == len(set(x)) for x in sets)


def test_an_older_subject_folder_gets_a_validation_slice_from_its_training_frames(tmp_path):
    meta = {"format": "selfie_avatar.subject", "format_version": 1, "size": 64, "num_frames": 100,
            "split": {"train": list(range(90)), "heldout": list(range(90, 100)), "held_out_fraction": 0.1}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    s = Subject(tmp_path, check=False).split  # only meta.json: the split logic, not a whole folder
    assert s.derived and s.test == list(range(90, 100))
    assert s.validation == list(range(85, 90)) and s.train == list(range(85))
