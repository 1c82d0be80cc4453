"""How long one slider change takes in the slider app, as a user sees it: from the Enter key that sends a new
value to the new avatar image shown in the page (render + generator in the kernel + PNG encoding + the widget
message to the browser + decoding), in headless Chromium.

    .venv/bin/python benchmarks/slider_latency.py RUN [RUN ...] [--moves 12] [--screenshot docs/slider_app.png]

For each run it serves ``selfie-avatar sliders``'s app, then alternates ``jawOpen`` between 0 and 1 and ``yaw``
between the rest pose and 15 degrees to one side, ``--moves`` times each, and reads the kernel's own
render + generator time from the page beside each. Writes ``outputs/benchmarks/slider_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
from pathlib import Path

from machine import cpu_name  # benchmarks/machine.py (the script's folder is on sys.path)
from selfie_avatar.config import SlidersConfig
from selfie_avatar.training.checkpoint import read_run_record
from selfie_avatar.utils.atomic import write_json_atomic
from selfie_avatar.viz.app_driver import AppDriver
from selfie_avatar.viz.slider_app import start_server, stop_server

REPO = Path(__file__).resolve().parents[1]


def measure(run: Path, moves: int, screenshot: Path | None) -> dict:
    record = read_run_record(run)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with open(tmp / "voila.log", "w") as log:
            proc, url = start_server(SlidersConfig(run_dir=str(run), browser=False, device="cpu"), tmp, log)
            try:
                with AppDriver(tmp / "chromium", size=(1300, 1000)) as page:
                    page.open(url)
                    page.wait(".js-plotly-plot")
                    rows = []
                    page.click_tab("jaw")
                    for k in range(moves):
                        s, _, _ = page.move("jawOpen", 1.0 if k % 2 == 0 else 0.0)
                        rows.append({"slider": "jawOpen", "page_s": s, "kernel_ms": _kernel_ms(page)})
                    if screenshot is not None:
                        screenshot.parent.mkdir(parents=True, exist_ok=True)
                        page.move("jawOpen", 0.6)
                        page.screenshot(screenshot)
                    page.click_tab("pose")
                    yaw0 = page.readout("yaw")
                    for k in range(moves):
                        s, _, _ = page.move("yaw", round(yaw0 + (15 if k % 2 == 0 else 0)))
                        rows.append({"slider": "yaw", "page_s": s, "kernel_ms": _kernel_ms(page)})
                    errors = page.console_errors()
            finally:
                stop_server(proc)
    page_ms = [r["page_s"] * 1000 for r in rows]
    kernel = [r["kernel_ms"] for r in rows if r["kernel_ms"] is not None]
    return {"run": str(run), "preset": record["train_config"]["preset"], "size": record["model"]["size"],
            "moves": len(rows), "page_ms_median": statistics.median(page_ms),
            "page_ms_p90": sorted(page_ms)[int(0.9 * (len(page_ms) - 1))],
            "kernel_render_generator_ms_median": statistics.median(kernel) if kernel else None,
            "console_errors": errors, "rows": rows}


def _kernel_ms(page: AppDriver) -> float | None:
    m = re.search(r"([\d.]+) ms", page.wait(".sa-timing").text)
    return float(m.group(1)) if m else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--moves", type=int, default=12)
    ap.add_argument("--screenshot", default=None, help="save a screenshot of the first run's page here")
    ap.add_argument("--out", default=str(REPO / "outputs" / "benchmarks" / "slider_latency.json"))
    args = ap.parse_args()
    results = []
    for k, run in enumerate(args.runs):
        r = measure(Path(run), args.moves, Path(args.screenshot) if args.screenshot and k == 0 else None)
        results.append(r)
        print(f"{r['preset']} ({r['size']} px): slider change to new image in the page {r['page_ms_median']:.0f} ms "
              f"median, {r['page_ms_p90']:.0f} ms p90; render + generator in the kernel "
              f"{r['kernel_render_generator_ms_median']:.0f} ms", flush=True)
    report = {"cpu": cpu_name(), "device": "cpu", "results": results}
    write_json_atomic(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "results"}))


if __name__ == "__main__":
    main()
