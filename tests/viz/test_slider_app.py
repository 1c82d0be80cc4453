"""The slider app as a user sees it: `selfie-avatar sliders RUN` served by Voila, driven in headless Chromium.

The page must show the avatar the package computes for the slider values, change where a code moves the face when
a slider is moved (typed into its readout, as a user can), return on reset, load the plotly mesh view, and log no
error in the browser console or the server. Screenshots are saved in the test's temporary folder.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from selfie_avatar import cli

WAIT_S = 180  # a Voila kernel starts, imports torch and loads the run: ~10 s here, more on a busy CI machine


def test_a_wrong_run_folder_is_one_line_before_any_server(tmp_path, capsys):
    assert cli.main(["sliders", str(tmp_path / "nothing"), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "config.json is missing" in err and "http://" not in err


LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409]


def responsive_run(tiny_run: Path, dst: Path) -> Path:
    """A copy of the tiny run whose image generator visibly follows I_R, on a copy of its subject whose jawOpen
    moves the lower face only (tests/viz/test_sliders.py's ``_responsive`` and ``_clean_rig`` say why: the
    12-step fixture barely depends on I_R, and a rig regressed from 24 frames hardly opens the jaw)."""
    import json

    run = dst / "run"
    shutil.copytree(tiny_run, run)
    g = torch.Generator().manual_seed(0)
    for ck in (run / "checkpoints").glob("*.ckpt"):
        state = torch.load(ck, map_location="cpu", weights_only=True)
        sd = state["state_dict"]
        sd["ema.to_out.conv.weight"] = torch.randn(sd["ema.to_out.conv.weight"].shape, generator=g) * 0.05
        for k in ("ema.to_out.bias", "ema.fusion_mask.weight", "ema.fusion_mask.bias"):
            sd[k] = torch.zeros_like(sd[k])
        torch.save(state, ck)
    record = json.loads((run / "config.json").read_text())
    subject = dst / "subject"
    shutil.copytree(record["subject"], subject)
    with np.load(subject / "face_model.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    names = [str(n) for n in arrays["expression_names"]]
    neutral = arrays["neutral"]
    height = float(np.ptp(neutral[:, 1]))
    basis = arrays["basis"].copy()
    basis[names.index("jawOpen")] = 0.0
    basis[names.index("jawOpen"), neutral[:, 1] > neutral[LIPS, 1].mean(), 1] = 0.12 * height
    np.savez_compressed(subject / "face_model.npz", **{**arrays, "basis": basis})
    record["subject"] = str(subject)
    (run / "config.json").write_text(json.dumps(record))
    return run


@pytest.fixture
def browser(tmp_path):
    from selfie_avatar.viz.app_driver import AppDriver, browser_binaries

    if not all(browser_binaries()):
        pytest.skip("headless browser test: Debian's chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver; .ci/run installs them where it can)")
    pytest.importorskip("selenium")
    with AppDriver(tmp_path / "chromium") as driver:
        yield driver


@pytest.fixture
def app(tiny_run, tmp_path):
    """`selfie-avatar sliders RUN --no-browser` on a free port; its URL; stopped with Ctrl-C (SIGINT) at the end,
    also when the test fails."""
    run = responsive_run(tiny_run, tmp_path / "app")
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "selfie_avatar.cli", "sliders", str(run), "--no-browser",
                             "--checkpoint", "last", "--device", "cpu", "--host", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        url = None
        deadline = time.monotonic() + WAIT_S
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            url = m.group(1) if m else None
        assert url, f"no URL printed; server log: {Path(log.name).read_text()[-3000:]}"
        yield {"url": url, "run": run, "proc": proc, "log": Path(log.name)}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


# The posed mesh's vertical coordinates as the plotly view in the page holds them.
_MESH_Y = ("const p = document.querySelector('.js-plotly-plot');"
           "return p && p.data && p.data.length ? Array.from(p.data[0].y).map(v => Math.round(v * 1000)) : null;")


def _expected(run: Path):
    from selfie_avatar.reenact.avatar_renderer import AvatarRenderer
    from selfie_avatar.training.checkpoint import open_run
    from selfie_avatar.viz.slider_panel import SliderPanel

    r = open_run(run, "last", "cpu")
    renderer = AvatarRenderer(r.avatar, r.subject.face_model(), r.subject.size)
    panel = SliderPanel(renderer, r.subject, mesh_view=False)  # the same neutral values the app starts from
    return renderer, panel


def _close(a, b, tol=3):
    d = np.abs(a.astype(int) - b.astype(int))
    return d.max() <= tol and d.mean() < 0.5


def test_sliders_in_a_real_browser(app, browser, tmp_path):
    from selfie_avatar.viz.sliders import set_code, slider_images

    browser.open(app["url"], WAIT_S)
    browser.wait(".js-plotly-plot", WAIT_S)  # the plotly mesh view loaded
    browser.screenshot(tmp_path / "01_loaded.png")
    renderer, panel = _expected(app["run"])
    names = renderer.face_model.expression_names
    _, avatar0 = browser.pixels("img.sa-avatar")
    _, render0 = browser.pixels("img.sa-render")
    ref0 = slider_images(renderer, panel.neutral, panel.rest_scale)
    assert _close(avatar0, ref0["image"]) and _close(render0, ref0["render"]), "the page does not show the avatar"

    # jawOpen: the page shows what the package computes, and changes only where the jaw moves the mesh
    mesh0 = browser.driver.execute_script(_MESH_Y)
    assert mesh0, "the plotly view holds no mesh"
    browser.click_tab("jaw")
    latency_jaw, avatar1, shown = browser.move("jawOpen", 1.0)
    assert shown == "1.00"
    _, render1 = browser.pixels("img.sa-render")  # sent in the same update as the avatar, just before it
    browser.screenshot(tmp_path / "02_jaw_open.png")
    ref1 = slider_images(renderer, set_code(panel.neutral, names, "jawOpen", 1.0), panel.rest_scale)
    assert _close(avatar1, ref1["image"]) and _close(render1, ref1["render"])
    moved = np.abs(ref1["render"].astype(int) - ref0["render"].astype(int)).max(-1) > 8
    ys, xs = np.nonzero(moved)
    assert len(ys), "jawOpen does not move this rig's mesh"
    box = np.zeros_like(moved)
    box[max(ys.min() - 2, 0):ys.max() + 3, max(xs.min() - 2, 0):xs.max() + 3] = True
    page_change = np.abs(avatar1.astype(int) - avatar0.astype(int)).sum(-1)
    assert page_change.sum() > 0
    inside, outside = page_change[box].mean(), page_change[~box].mean()
    assert inside > 3 * outside, f"the avatar changed as much away from the jaw ({outside:.2f}) as at it ({inside:.2f})"
    t = time.monotonic()
    while browser.driver.execute_script(_MESH_Y) == mesh0 and time.monotonic() - t < 10:
        time.sleep(0.1)
    assert browser.driver.execute_script(_MESH_Y) != mesh0, "the 3D view did not follow the slider"

    # reset returns the page to the neutral images
    old = browser.pixels("img.sa-avatar")[0]
    browser.click(".sa-reset")
    browser.changed("img.sa-avatar", old)
    assert np.array_equal(browser.pixels("img.sa-avatar")[1], avatar0)
    assert np.array_equal(browser.pixels("img.sa-render")[1], render0)

    # yaw: the head turns in the page as it does in the package
    browser.click_tab("pose")
    target = round((panel.neutral.yaw + 20) * 2) / 2
    latency_yaw, avatar2, shown = browser.move("yaw", target)
    _, render2 = browser.pixels("img.sa-render")
    browser.screenshot(tmp_path / "03_yaw.png")
    ref2 = slider_images(renderer, replace(panel.neutral, yaw=float(shown)), panel.rest_scale)
    assert _close(avatar2, ref2["image"]) and _close(render2, ref2["render"])
    assert np.abs(render2.astype(int) - render0.astype(int)).mean() > 1

    assert not browser.console_errors(), browser.console_errors()
    print(f"slider change to new image in the page (tiny preset, 64 px): jawOpen {latency_jaw * 1000:.0f} ms, "
          f"yaw {latency_yaw * 1000:.0f} ms; screenshots in {tmp_path}")

    # Ctrl-C stops the command and its server cleanly
    app["proc"].send_signal(signal.SIGINT)
    assert app["proc"].wait(30) == 0
    log = app["log"].read_text()
    assert "Traceback" not in log and not re.search(r"^\[E ", log, re.M), log[-3000:]
    import urllib.request

    with pytest.raises(OSError):
        urllib.request.urlopen(app["url"], timeout=2)
