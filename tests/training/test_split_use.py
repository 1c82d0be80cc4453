"""Training reads training and validation frames only: no test frame chooses a checkpoint or is trained on."""

import json

from selfie_avatar.config import TrainConfig
from selfie_avatar.tracking.subject import Subject
from selfie_avatar.training import data as data_module
from selfie_avatar.training.run import train


def test_training_never_reads_a_test_frame(train_subject, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HOME", str(tmp_path))
    read: list[int] = []
    original = data_module.SubjectFrames._load

    def spy(self, i):
        read.append(int(i))
        return original(self, i)

    monkeypatch.setattr(data_module.SubjectFrames, "_load", spy)
    run = tmp_path / "run"
    train(TrainConfig(subject=str(train_subject), out=str(run), preset="tiny", max_steps=6, progress=False,
                      device="cpu", loss=["id_mrf=0", "cosine=0"]))
    s = Subject(train_subject)
    assert read and not set(read) & set(s.test_indices)
    assert set(s.validation_indices) <= set(read)  # validation ran, on the validation frames
    record = json.loads((run / "config.json").read_text())
    assert record["validation_frames"] == s.validation_indices and "validation" in record["checkpoint_selection"]
