"""Drive the slider app in headless Chromium, as a user would: its browser test and its latency benchmark.

Needs selenium (the ``dev`` extra) and Debian's ``chromium`` and ``chromium-driver``; selenium is told never to
download a driver. Images are read back from the page through a canvas, so comparisons see the exact pixels shown.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from pathlib import Path

import numpy as np

from selfie_avatar.errors import SelfieAvatarError

_PIXELS = """
const img = document.querySelector(arguments[0]);
if (!img || !img.complete || !img.naturalWidth) return null;
const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
c.getContext('2d').drawImage(img, 0, 0);
return [img.src, c.toDataURL('image/png')];
"""


_LOADED_SRC = """
const img = document.querySelector(arguments[0]);
return img && img.complete && img.naturalWidth ? img.src : null;
"""


def _number_text(text: str) -> str:
    return text.strip().replace("\u2212", "-")  # the readout writes negative numbers with a minus sign


def browser_binaries() -> tuple[str | None, str | None]:
    """Paths of chromium and chromedriver, or None each where missing."""
    return shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


class AppDriver:
    """A headless Chromium on one page of the slider app.

    Args:
        profile_dir: a folder for the browser's profile.
        size: window size in pixels.

    Raises:
        SelfieAvatarError: chromium or chromedriver is not installed.
    """

    def __init__(self, profile_dir: str | os.PathLike, size: tuple[int, int] = (1400, 1400)) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chromium, chromedriver = browser_binaries()
        if not (chromium and chromedriver):
            raise SelfieAvatarError("Debian's chromium and chromium-driver are needed (apt-get install chromium "
                                    "chromium-driver)")
        os.environ.setdefault("SE_OFFLINE", "true")  # selenium must never try to download a driver
        opts = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    f"--window-size={size[0]},{size[1]}", f"--user-data-dir={Path(profile_dir).resolve()}"):
            opts.add_argument(arg)
        opts.binary_location = chromium
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(chromedriver), options=opts)
        self.driver.set_script_timeout(30)

    def close(self) -> None:
        self.driver.quit()

    def __enter__(self) -> "AppDriver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self, url: str, timeout: float = 180.0) -> None:
        """Load the app and wait until the avatar image is shown (the kernel has started and drawn it)."""
        self.driver.get(url)
        self.wait("img.sa-avatar", timeout)
        deadline = time.monotonic() + 30
        while self.pixels("img.sa-avatar")[1] is None and time.monotonic() < deadline:
            time.sleep(0.1)

    def wait(self, css: str, timeout: float = 60.0):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def pixels(self, css: str) -> tuple[str | None, np.ndarray | None]:
        """(src, (H, W, 3) uint8 RGB) of an image in the page, or (None, None) while it is not loaded."""
        import cv2

        res = self.driver.execute_script(_PIXELS, css)
        if res is None:
            return None, None
        png = base64.b64decode(res[1].split(",", 1)[1])
        bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        return res[0], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def changed(self, css: str, old_src: str | None, timeout: float = 60.0) -> tuple[float, np.ndarray]:
        """Wait until an image's src differs from ``old_src``; return (seconds waited, its pixels)."""
        t = time.perf_counter()
        while time.perf_counter() - t < timeout:
            # Poll the src only (cheap); read the pixels once it changed and the new image has loaded.
            src = self.driver.execute_script(_LOADED_SRC, css)
            if src and src != old_src:
                waited = time.perf_counter() - t
                return waited, self.pixels(css)[1]
            time.sleep(0.002)
        raise TimeoutError(f"{css} did not change within {timeout} s")

    def click_tab(self, title: str) -> None:
        from selenium.webdriver.common.by import By

        tabs = [t for t in self.driver.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab") if t.text.strip() == title]
        if not tabs:
            raise LookupError(f"no tab titled {title!r}")
        tabs[0].click()

    def type_value(self, slider: str, value: float) -> str:
        """Type ``value`` into a slider's readout and press Enter (what a user can do instead of dragging);
        returns what the readout then shows."""
        from selenium.webdriver.common.keys import Keys

        readout = self._readout(slider, value)
        readout.send_keys(Keys.ENTER)
        return _number_text(readout.text)

    def move(self, slider: str, value: float, image: str = "img.sa-avatar") -> tuple[float, np.ndarray, str]:
        """Move a slider and wait for ``image`` to change: (seconds from the Enter key press that sends the change
        to the new image shown, its pixels, what the readout shows)."""
        from selenium.webdriver.common.keys import Keys

        old = self.pixels(image)[0]
        readout = self._readout(slider, value)
        t = time.perf_counter()
        readout.send_keys(Keys.ENTER)
        sent = time.perf_counter() - t
        waited, px = self.changed(image, old)
        return sent + waited, px, _number_text(readout.text)

    def readout(self, slider: str) -> float:
        """The value a slider's readout shows."""
        return float(_number_text(self.wait(f".sa-slider-{slider} .widget-readout", 30).text))

    def _readout(self, slider: str, value: float):
        from selenium.webdriver.common.keys import Keys

        readout = self.wait(f".sa-slider-{slider} .widget-readout", 30)
        readout.click()
        readout.send_keys(Keys.CONTROL, "a")
        readout.send_keys(f"{value}")
        return readout

    def click(self, css: str) -> None:
        self.wait(css, 30).click()

    def console_errors(self) -> list[dict]:
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def screenshot(self, path: str | os.PathLike) -> None:
        self.driver.save_screenshot(str(path))
