"""The loss ablation grid: equal budgets, the same seeds for every configuration, one W&B group, one evaluated run
folder per ablation and seed; and the table of paired differences, from synthetic run folders (no training)."""

import json
import math
import re

import numpy as np
import pytest
from scipy.stats import t

from selfie_avatar.cli import main
from selfie_avatar.config import AblationConfig
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.evaluate.ablation import ABLATION_OPTIONS, ABLATIONS, grid_runs, run_ablation_grid, run_folder
from selfie_avatar.evaluate.ablation_table import ablation_table, format_ablation_table
from selfie_avatar.evaluate.compare import TABLE_COLUMNS, compare_runs, eval_samples
from selfie_avatar.evaluate.stats import frame_interval
from selfie_avatar.losses.registry import LOSS_NAMES, parse_loss_overrides

FRAMES = list(range(100, 136))


@pytest.fixture
def one_thread():
    """Train on one CPU thread, as tests/training/test_encoder.py does: on a shared 2-core machine two threads
    waiting on each other's barriers made one tiny grid run 44 s instead of 6 s."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fake_run(root, name, seed, means, per_frame=None, frames=FRAMES, folder=None):
    """A run folder as train + evaluate leave it, reduced to what the table reads."""
    run = folder or run_folder(root, name, seed)
    (run / "eval").mkdir(parents=True)
    weights = {n: 0.0 if f"{n}=0" in ABLATIONS[name] else 1.0 for n in LOSS_NAMES}
    (run / "config.json").write_text(json.dumps({
        "train_config": {"seed": seed, "run_name": f"{name}-s{seed}", **ABLATION_OPTIONS.get(name, {})},
        "loss_weights": weights, "subject": "/s"}))
    per_frame = per_frame or {m: [v] * len(frames) for m, v in means.items()}
    (run / "eval" / "metrics.json").write_text(json.dumps({
        "metrics": list(means), "mean": means, "per_frame": per_frame, "frames": frames, "step": 7,
        "margin": {"psnr": {"baseline": "mean_frame", "baseline_mean": 17.5},
                   "l1": {"baseline": "nearest_codes", "baseline_mean": 0.08}},
        "notes": {"lpips": "no trunk here", "identity": "no descriptor here"}}))
    return run


def fake_grid(root, values: dict[str, dict[str, list[float]]]):
    """``{configuration: {metric: one value per seed}}`` -> ``{configuration: {seed: run folder}}``."""
    return {name: {seed: fake_run(root, name, seed, {m: v[k] for m, v in per_metric.items()})
                   for k, seed in enumerate(range(len(next(iter(per_metric.values())))))}
            for name, per_metric in values.items()}


def t_interval(values):
    v = np.asarray(values)
    half = t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return [v.mean() - half, v.mean() + half]


def test_the_table_switches_off_one_loss_each_and_the_plate():
    assert ABLATIONS["full"] == ()
    losses = {name: items for name, items in ABLATIONS.items() if name != "full" and name not in ABLATION_OPTIONS}
    off = {name: parse_loss_overrides(items) for name, items in losses.items()}
    assert {next(iter(o)) for o in off.values()} == set(LOSS_NAMES)
    assert all(len(o) == 1 and set(o.values()) == {0.0} for o in off.values())
    assert ABLATIONS["no_background_plate"] == () and ABLATION_OPTIONS["no_background_plate"] == {
        "background_plate": False}
    assert ABLATIONS["no_face_foreground"] == () and ABLATION_OPTIONS["no_face_foreground"] == {
        "face_foreground": False}
    assert ABLATIONS["no_reference"] == () and ABLATION_OPTIONS["no_reference"] == {"reference": False}


def test_the_plate_ablation_trains_without_the_plate_and_says_so(train_subject, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("selfie_avatar.training.run.train", lambda cfg, callbacks=None: seen.append(cfg))
    run_ablation_grid(AblationConfig(subject=str(train_subject), out=str(tmp_path / "grid"), preset="tiny",
                                     ablation=["full", "no_background_plate", "no_face_foreground", "no_reference"],
                                     max_steps=1, evaluate=False, progress=False))
    assert [c.background_plate for c in seen] == [True, False, True, True]
    assert [c.loss for c in seen] == [[], [], [], []]
    assert [c.face_foreground for c in seen] == [None, None, False, None]  # None: the preset's
    assert [c.reference for c in seen] == [True, True, True, False]
    table = ablation_table(fake_grid(tmp_path / "t", {"full": {"psnr": [20.0]}, "no_background_plate": {
        "psnr": [18.0]}, "no_face_foreground": {"psnr": [19.0]}, "no_reference": {"psnr": [19.5]}}))
    assert table["configs"]["no_background_plate"]["losses_off"] == "background plate"
    assert table["configs"]["no_face_foreground"]["losses_off"] == "face as foreground"
    assert table["configs"]["no_reference"]["losses_off"] == "reference bank"


def test_paired_difference_is_the_per_seed_difference(tmp_path):
    full = {"psnr": [20.0, 21.5, 19.0], "l1": [0.050, 0.046, 0.055]}
    no_id = {"psnr": [19.2, 21.0, 18.1], "l1": [0.052, 0.047, 0.058]}
    runs = fake_grid(tmp_path, {"full": full, "no_id_mrf": no_id})
    table = ablation_table(runs)
    assert table["metrics"] == ["psnr", "l1"] and list(table["configs"]) == ["full", "no_id_mrf"]
    for m in ("psnr", "l1"):
        hand = [a - f for a, f in zip(no_id[m], full[m])]
        d = table["paired"]["no_id_mrf"][m]
        assert d["per_seed"] == pytest.approx(hand) and d["mean"] == pytest.approx(np.mean(hand))
        assert d["ci95"] == pytest.approx(t_interval(hand)) and d["over"] == "seeds" and d["n"] == 3
        s = table["configs"]["full"]["metrics"][m]
        assert s["mean"] == pytest.approx(np.mean(full[m])) and s["std"] == pytest.approx(np.std(full[m], ddof=1))
        assert table["seed_noise"][m] == pytest.approx(np.std(full[m], ddof=1))
    assert table["rows"][0]["psnr"] == "20.17 ± 1.26" and table["rows"][1]["losses off"] == "id_mrf"
    assert table["rows"][-1] == {"configuration": "best trivial baseline", "losses off": "(reference line)",
                                 "psnr": "17.50 (mean_frame)", "l1": "0.0800 (nearest_codes)"}
    text = format_ablation_table(table)
    assert "ablation - full" in text and "psnr (higher is better)" in text and "seed noise" in text
    assert "identity: no descriptor here" in text  # a metric that was not computed says why


def test_the_interval_flags_what_exceeds_seed_noise_and_nothing_else(tmp_path):
    # The seeds move every configuration by about 1 dB; pairing by seed removes that from the differences.
    full = {"psnr": [20.0, 21.0, 22.0], "l1": [0.050, 0.060, 0.040]}
    worse = {"psnr": [19.5, 20.52, 21.49], "l1": [0.054, 0.063, 0.045]}  # consistently 0.5 dB and ~0.004 worse
    noisy = {"psnr": [20.3, 20.6, 22.1], "l1": [0.047, 0.064, 0.039]}  # differences of either sign
    better = {"psnr": [20.8, 21.7, 22.9], "l1": [0.045, 0.056, 0.036]}
    table = ablation_table(fake_grid(tmp_path, {"full": full, "no_id_mrf": worse, "no_cosine": noisy,
                                                "no_adversarial": better}))
    p = table["paired"]
    assert abs(p["no_id_mrf"]["psnr"]["mean"]) < table["seed_noise"]["psnr"]  # smaller than the seed std ...
    assert p["no_id_mrf"]["psnr"]["beyond_noise"]  # ... and still beyond it, paired
    assert p["no_id_mrf"]["psnr"]["verdict"] == "worse, beyond seed noise"
    assert p["no_id_mrf"]["l1"]["verdict"] == "worse, beyond seed noise"  # higher L1 is worse
    assert not p["no_cosine"]["psnr"]["beyond_noise"] and p["no_cosine"]["psnr"]["verdict"] == "within seed noise"
    assert not p["no_cosine"]["l1"]["beyond_noise"]
    assert p["no_adversarial"]["psnr"]["verdict"] == p["no_adversarial"]["l1"]["verdict"] == "better, beyond seed noise"
    row = next(r for r in table["difference_rows"] if r["ablation"] == "no_id_mrf" and r["metric"].startswith("psnr"))
    assert row["seed noise"] == "1.00" and row["over"] == "3 seeds" and row["difference"] == "-0.50"


def test_one_seed_falls_back_to_the_frame_bootstrap(tmp_path):
    rng = np.random.default_rng(0)
    base = 20 + rng.normal(0, 1, len(FRAMES))
    shifted = base - 0.8 + rng.normal(0, 0.1, len(FRAMES))
    same = base + rng.normal(0, 0.1, len(FRAMES))
    runs = {name: {0: fake_run(tmp_path, name, 0, {"psnr": float(v.mean())}, {"psnr": v.tolist()})}
            for name, v in (("full", base), ("no_id_mrf", shifted), ("no_cosine", same))}
    table = ablation_table(runs)
    d = table["paired"]["no_id_mrf"]["psnr"]
    assert d["over"] == "frames" and d["n"] == len(FRAMES) and d["per_seed"] is None
    assert d["ci95"] == pytest.approx(list(frame_interval(shifted - base)))
    assert d["mean"] == pytest.approx(np.mean(shifted - base))
    assert d["verdict"] == "worse on these frames (one seed)"
    assert table["paired"]["no_cosine"]["psnr"]["verdict"] == "within frame noise"
    assert table["seed_noise"]["psnr"] is None and table["rows"][0]["psnr"] == f"{base.mean():.2f} ± -"
    assert "block-bootstrap" in table["note"] and "--seeds 3" in table["note"]
    assert table["difference_rows"][0]["over"] == f"{len(FRAMES)} test frames"
    assert "frames" in table["configs"]["full"]["metrics"]["psnr"]["error_bar_kind"]


def test_the_table_refuses_runs_it_cannot_pair(tmp_path):
    runs = fake_grid(tmp_path / "a", {"full": {"psnr": [20.0, 21.0]}, "no_id_mrf": {"psnr": [19.0, 20.0]}})
    with pytest.raises(SelfieAvatarError, match="seed 0 but is listed as seed 5"):
        ablation_table({"full": {5: runs["full"][0]}})
    with pytest.raises(SelfieAvatarError, match="share no seed"):
        ablation_table({"full": {0: runs["full"][0]}, "no_id_mrf": {1: runs["no_id_mrf"][1]}})
    other = fake_run(tmp_path / "b", "no_id_mrf", 0, {"psnr": 19.0}, frames=FRAMES[:-1])
    with pytest.raises(SelfieAvatarError, match="other test frames"):
        ablation_table({"full": {0: runs["full"][0]}, "no_id_mrf": {0: other}})
    (runs["full"][1] / "eval" / "metrics.json").unlink()
    with pytest.raises(SelfieAvatarError, match="selfie-avatar evaluate"):
        ablation_table(runs)
    only = ablation_table({"no_id_mrf": runs["no_id_mrf"]})  # no reference: values, no differences
    assert only["paired"] == {} and "no 'full' runs" in only["note"]


def test_a_grid_from_before_seeds_reads_back_and_is_not_trained_into(train_subject, tmp_path):
    out = tmp_path / "old"
    for name, psnr in (("full", 20.0), ("no_cosine", 19.0)):
        fake_run(out, name, 3, {"psnr": psnr}, folder=out / name)
    (out / "ablation.json").write_text(json.dumps({"type": "AblationGrid", "seed": 3,
                                                   "runs": {"full": "x/full", "no_cosine": "x/no_cosine"}}))
    assert grid_runs(out) == {"full": {3: out / "full"}, "no_cosine": {3: out / "no_cosine"}}
    table = ablation_table(out)
    assert table["paired"]["no_cosine"]["psnr"]["mean"] == pytest.approx(-1.0)
    for flags in ({}, {"overwrite": True}, {"skip_existing": True}):
        with pytest.raises(FileExistsError, match="before seeds.*seed_<k>"):
            run_ablation_grid(AblationConfig(subject=str(train_subject), out=str(out), **flags))
    assert (out / "full" / "config.json").is_file() and not (out / "full" / "seed_0").exists()  # nothing moved


def test_grid_trains_each_seed_of_each_configuration_in_one_group(train_subject, offline_wandb, one_thread):
    out = offline_wandb / "grid"
    cfg = AblationConfig(subject=str(train_subject), out=str(out), preset="tiny", ablation=["full", "no_id_mrf"],
                         max_steps=2, seed=3, seeds=2, group="test-grid", device="cpu", progress=False)
    result = run_ablation_grid(cfg)
    assert result.runs == {n: {3: out / n / "seed_3", 4: out / n / "seed_4"} for n in ("full", "no_id_mrf")}
    assert result.group == "test-grid" and grid_runs(out) == result.runs
    for name, seeds in result.runs.items():
        for seed, run in seeds.items():
            rec = json.loads((run / "config.json").read_text())
            tc = rec["train_config"]
            assert tc["wandb_group"] == "test-grid" and tc["seed"] == seed and tc["run_name"] == f"{name}-s{seed}"
            assert rec["resolved"]["max_steps"] == 2 and not rec["resolved"]["max_minutes"]  # equal budgets
            assert (rec["loss_weights"]["id_mrf"] == 0) == (name == "no_id_mrf")
            (w,) = (run / "wandb").glob("offline-run-*")  # a W&B run each, not shared
            log = next(w.glob("*.wandb")).read_bytes()
            assert f"{name}-s{seed}".encode() in log  # the run's name reached W&B
            # and its config: the run record's train_config, stored as JSON inside the binary log
            (config,) = {m.group() for m in re.finditer(rb'\{"subject":[^{}]*"progress":(true|false)\}', log)}
            assert json.loads(config) | {"seed": seed, "wandb_group": "test-grid"} == json.loads(config)

    table = json.loads((out / "ablation_table.json").read_text())
    d = table["paired"]["no_id_mrf"]["psnr"]
    assert d["over"] == "seeds" and d["seeds"] == [3, 4] and table["configs"]["full"]["steps"] == [2, 2]
    metrics = {s: json.loads((r / "eval" / "metrics.json").read_text()) for s, r in result.runs["full"].items()}
    assert table["configs"]["full"]["metrics"]["psnr"]["per_seed"] == [metrics[s]["mean"]["psnr"] for s in (3, 4)]
    assert table["baseline"]["psnr"]["name"] == metrics[3]["margin"]["psnr"]["baseline"]
    assert "no_id_mrf" in result.summary() and "test-grid" in result.summary()

    rows = compare_runs(result.folders)
    assert [r["name"] for r in rows] == ["full-s3", "full-s4", "no_id_mrf-s3", "no_id_mrf-s4"]
    assert [r["losses_off"] for r in rows] == ["none", "none", "id_mrf", "id_mrf"]
    assert set(TABLE_COLUMNS) <= set(rows[0])
    assert rows[0]["psnr"] == pytest.approx(metrics[3]["mean"]["psnr"]) and rows[0]["group"] == "test-grid"
    crops = eval_samples(result.folders[0], count=2)
    assert len(crops["real"]) == len(crops["generated"]) >= 1 and crops["real"][0].shape == (64, 64, 3)


def test_grid_refuses_before_training(train_subject, tmp_path):
    def grid(**kw):
        return run_ablation_grid(AblationConfig(subject=str(train_subject), out=str(tmp_path / "g"), **kw))

    with pytest.raises(ValueError, match="unknown ablation"):
        grid(ablation=["no_vgg"])
    with pytest.raises(ValueError, match="seeds must be >= 1, got 0"):
        grid(seeds=0)
    with pytest.raises(ValueError, match="not both"):
        grid(overwrite=True, skip_existing=True)
    with pytest.raises(ValueError, match="train_options"):
        run_ablation_grid(AblationConfig(subject=str(train_subject), out=str(tmp_path / "g")),
                          train_options={"loss": ["cosine=0"]})
    with pytest.raises(FileNotFoundError, match="subject folder"):
        run_ablation_grid(AblationConfig(subject=str(tmp_path / "nothing"), out=str(tmp_path / "g")))
    (tmp_path / "g" / "no_cosine" / "seed_1").mkdir(parents=True)
    (tmp_path / "g" / "no_cosine" / "seed_1" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        grid(seeds=2)  # seed 1 is the second seed
    with pytest.raises(FileExistsError, match="not a run folder"):
        grid(seeds=2, overwrite=True)
    assert (tmp_path / "g" / "no_cosine" / "seed_1" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "g" / "ablation.json").exists()  # refused before anything was written


def test_ablate_command_and_skip_existing(train_subject, offline_wandb, monkeypatch, capsys, one_thread):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    out = offline_wandb / "grid"
    args = ["ablate", str(train_subject), "--out", str(out), "--preset", "tiny", "--max-steps", "2",
            "--ablation", "no_cosine", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "no_cosine" in printed and "psnr" in printed and "cosine" in printed and "ablation_table.json" in printed
    metrics = out / "no_cosine" / "seed_0" / "eval" / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    group = json.loads((out / "ablation.json").read_text())["wandb_group"]
    assert main(args) == 2  # exists: refused with a message, not a traceback
    assert "--skip-existing" in capsys.readouterr().err
    assert main(args + ["--skip-existing"]) == 0
    assert metrics.stat().st_mtime_ns == stamp  # kept as it was
    assert json.loads((out / "ablation.json").read_text())["wandb_group"] == group  # a continued grid keeps its group
    assert main(args + ["--skip-existing", "--max-steps", "3"]) == 2  # kept runs had another budget
    assert "max_steps" in capsys.readouterr().err


def test_compare_runs_needs_evaluated_runs(tmp_path):
    with pytest.raises(SelfieAvatarError, match="selfie-avatar train"):
        compare_runs([tmp_path])
    (tmp_path / "config.json").write_text(json.dumps({"train_config": {}, "loss_weights": {}}))
    with pytest.raises(SelfieAvatarError, match="selfie-avatar evaluate"):
        compare_runs([tmp_path])
    with pytest.raises(TypeError, match="list"):
        compare_runs(tmp_path)


def test_an_ablation_that_changes_nothing_for_the_preset_is_left_out():
    from selfie_avatar.evaluate.ablation import _drop_no_ops

    assert "no_adversarial" not in _drop_no_ops(list(ABLATIONS), "cpu")  # cpu already trains without the GAN
    assert "no_face_foreground" not in _drop_no_ops(list(ABLATIONS), "cpu")  # nor with the face as foreground
    assert "no_face_foreground" not in _drop_no_ops(list(ABLATIONS), "full")
    assert "no_background_plate" in _drop_no_ops(list(ABLATIONS), "cpu")  # every preset has the plate
    assert "no_reference" in _drop_no_ops(list(ABLATIONS), "cpu")
    assert "no_reference" not in _drop_no_ops(list(ABLATIONS), "full")  # full has no reference bank
    assert _drop_no_ops(list(ABLATIONS), "tiny") == list(ABLATIONS)
    # The user's own setting counts: with the face as foreground on cpu, switching it off is an ablation again.
    assert "no_face_foreground" in _drop_no_ops(list(ABLATIONS), "cpu", {"face_foreground": True})
    assert "no_face_foreground" not in _drop_no_ops(list(ABLATIONS), "tiny", {"face_foreground": False})
