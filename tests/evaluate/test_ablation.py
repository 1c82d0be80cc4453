"""The loss ablation grid: equal budgets and seeds, one W&B group, one evaluated run folder per ablation; and
reading the runs back into a comparison table."""

import json

import pytest

from selfie_avatar.cli import main
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.evaluate.ablation import ABLATIONS, run_ablation_grid
from selfie_avatar.evaluate.compare import TABLE_COLUMNS, compare_runs, eval_samples
from selfie_avatar.losses.registry import LOSS_NAMES, parse_loss_overrides


def test_the_table_switches_off_one_loss_each():
    assert ABLATIONS["full"] == ()
    off = {name: parse_loss_overrides(items) for name, items in ABLATIONS.items() if name != "full"}
    assert {next(iter(o)) for o in off.values()} == set(LOSS_NAMES)
    assert all(len(o) == 1 and set(o.values()) == {0.0} for o in off.values())


def test_grid_trains_and_evaluates_each_run_in_one_group(train_subject, offline_wandb):
    out = offline_wandb / "grid"
    runs = run_ablation_grid(train_subject, out, preset="tiny", names=["full", "no_id_mrf"], max_steps=2,
                             seed=3, group="test-grid", device="cpu", progress=False)
    assert runs == [out / "full", out / "no_id_mrf"]
    records = [json.loads((r / "config.json").read_text()) for r in runs]
    assert records[0]["loss_weights"]["id_mrf"] > 0 and records[1]["loss_weights"]["id_mrf"] == 0
    assert records[1]["train_config"]["loss"] == ["id_mrf=0"]
    for rec in records:  # equal budgets and seeds, one group
        assert rec["train_config"]["wandb_group"] == "test-grid" and rec["train_config"]["seed"] == 3
        assert rec["resolved"]["max_steps"] == 2 and not rec["resolved"]["max_minutes"]
    wandb_runs = [list((r / "wandb").glob("offline-run-*")) for r in runs]
    assert all(len(w) == 1 for w in wandb_runs) and wandb_runs[0] != wandb_runs[1]  # a W&B run each, not shared
    for w in wandb_runs:
        log = next(w[0].glob("*.wandb")).read_bytes()
        assert b"test-grid" in log  # the group reached W&B
    grid = json.loads((out / "ablation.json").read_text())
    assert grid["wandb_group"] == "test-grid" and list(grid["ablations"]) == ["full", "no_id_mrf"]

    rows = compare_runs(runs)
    assert [r["name"] for r in rows] == ["full", "no_id_mrf"]
    assert [r["losses_off"] for r in rows] == ["none", "id_mrf"]
    for run, row in zip(runs, rows):
        metrics = json.loads((run / "eval" / "metrics.json").read_text())
        assert row["step"] == metrics["step"] == 2  # the last checkpoint: equal steps
        assert row["psnr"] == pytest.approx(metrics["mean"]["psnr"])
        assert row["l1"] == pytest.approx(metrics["mean"]["l1"])
        assert row["group"] == "test-grid" and row["lpips_note"] and set(TABLE_COLUMNS) <= set(row)
        if metrics.get("lpips") is None:
            assert row["lpips"] is None
    crops = eval_samples(runs[0], count=2)
    assert len(crops["real"]) == len(crops["generated"]) >= 1 and crops["real"][0].shape == (64, 64, 3)


def test_grid_refuses_before_training(train_subject, tmp_path):
    with pytest.raises(ValueError, match="unknown ablation"):
        run_ablation_grid(train_subject, tmp_path / "g", names=["no_vgg"])
    with pytest.raises(ValueError, match="not both"):
        run_ablation_grid(train_subject, tmp_path / "g", overwrite=True, skip_existing=True)
    with pytest.raises(ValueError, match="train_options"):
        run_ablation_grid(train_subject, tmp_path / "g", train_options={"loss": ["cosine=0"]})
    with pytest.raises(FileNotFoundError, match="subject folder"):
        run_ablation_grid(tmp_path / "nothing", tmp_path / "g")
    (tmp_path / "g" / "no_cosine").mkdir(parents=True)
    (tmp_path / "g" / "no_cosine" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        run_ablation_grid(train_subject, tmp_path / "g")
    with pytest.raises(FileExistsError, match="not a run folder"):
        run_ablation_grid(train_subject, tmp_path / "g", overwrite=True)
    assert (tmp_path / "g" / "no_cosine" / "notes.txt").read_text() == "mine"


def test_ablate_command_and_skip_existing(train_subject, offline_wandb, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    out = offline_wandb / "grid"
    args = ["ablate", str(train_subject), "--out", str(out), "--preset", "tiny", "--max-steps", "2",
            "--ablation", "no_cosine", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "no_cosine" in printed and "psnr" in printed and "cosine" in printed
    metrics = out / "no_cosine" / "eval" / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    assert main(args) == 2  # exists: refused with a message, not a traceback
    assert "--skip-existing" in capsys.readouterr().err
    assert main(args + ["--skip-existing"]) == 0
    assert metrics.stat().st_mtime_ns == stamp  # kept as it was


def test_compare_runs_needs_evaluated_runs(tmp_path):
    with pytest.raises(SelfieAvatarError, match="selfie-avatar train"):
        compare_runs([tmp_path])
    (tmp_path / "config.json").write_text(json.dumps({"train_config": {}, "loss_weights": {}}))
    with pytest.raises(SelfieAvatarError, match="selfie-avatar evaluate"):
        compare_runs([tmp_path])
    with pytest.raises(TypeError, match="list"):
        compare_runs(tmp_path)
