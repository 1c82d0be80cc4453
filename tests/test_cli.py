import json
from pathlib import Path

import pytest

from selfie_avatar.cli import build_parser, main
from selfie_avatar.config import PrepareConfig, config_from_args, config_from_dict, load_config, save_config
from selfie_avatar.io.video import probe_video


def test_every_command_has_help(capsys):
    for cmd in ("prepare", "train", "evaluate", "reenact", "live", "export", "train-encoder", "ablate", "demo",
                "sample", "weights"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "usage: selfie-avatar " + cmd in out


def test_prepare_flags_map_onto_the_config():
    args = build_parser().parse_args(["prepare", "in.mp4", "--out", "s", "--size", "128", "--max-frames", "9",
                                      "--device", "cpu", "--no-write-video"])
    cfg = config_from_args(PrepareConfig, args)
    assert (cfg.video, cfg.out, cfg.size, cfg.max_frames, cfg.device, cfg.write_video) == \
        ("in.mp4", "s", 128, 9, "cpu", False)


def test_config_round_trip_and_typos_refused(tmp_path):
    cfg = PrepareConfig(video="a.mp4", out="b", size=128)
    save_config(cfg, tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["type"] == "PrepareConfig"
    assert load_config(PrepareConfig, tmp_path / "c.json") == cfg
    with pytest.raises(ValueError, match="sizee"):
        config_from_dict(PrepareConfig, {"sizee": 3})


def test_missing_video_is_a_clean_error(tmp_path, capsys):
    code = main(["prepare", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.mp4" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_weights_lists_every_asset(capsys):
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert "face_landmarker.task" in out and "selfie_segmentation.tflite" in out


def test_demo_runs_end_to_end_on_the_builtin_sample(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seconds", "1.2", "--size", "64", "--device", "cpu",
                 "--preset", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "landmark reprojection error" in printed and "demo finished" in printed and str(out) in printed
    assert (out / "sample.mp4").is_file() and (out / "subject" / "preview.png").is_file()
    assert json.loads((out / "demo_config.json").read_text())["size"] == 64
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["psnr"] > summary["test"]["untrained_psnr"]
    assert set(summary["baselines"]) >= {"nearest_codes", "mean_frame", "last_frame"}
    assert "margin" in printed and summary["margin"]["psnr"]["baseline"] in summary["baselines"]
    for key in ("grid", "test_video", "baselines", "avatar_video", "side_by_side_video"):
        assert Path(summary["files"][key]).is_file(), key
    assert probe_video(summary["files"]["avatar_video"]).num_frames == probe_video(out / "driver.mp4").num_frames


def test_the_presets_have_one_definition_and_every_help_names_them_all(capsys):
    from selfie_avatar.config import PRESETS
    from selfie_avatar.models.config import NETWORK_PRESETS, ModelConfig
    from selfie_avatar.training.presets import SCHEDULES, get_preset

    # One list of names: the networks and the schedules are tables keyed by exactly config.PRESETS's names.
    assert list(NETWORK_PRESETS) == list(SCHEDULES) == list(PRESETS)
    for name in PRESETS:
        assert get_preset(name).model == ModelConfig.preset(name) and get_preset(name).model.size > 0
    with pytest.raises(ValueError, match="tiny, cpu, lite, full"):
        get_preset("huge")
    with pytest.raises(ValueError, match="tiny, cpu, lite, full"):
        ModelConfig.preset("huge")
    for command in ("train", "ablate", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(f"{name} (" in text for name in PRESETS), (command, text)
