"""Drive the demo page in Debian's headless Chromium (selenium + chromedriver; no browser download).

Used by ``test_browser.py``, and to refresh the README's screenshot::

    python -m tests.demo._browser --out docs/demo.png --mode T --set init.image_size=48 \
        --set train.resolution=64 --set train.iterations=200 --set train.warm_iterations=100 \
        --set eval.test_pose_iterations=10 --set video.n_frames=24 --set video.resolution=128 --set eval.lpips=false

(starts a server on the example scene, clicks through steps 1-3 and saves a full-page screenshot).
"""

from __future__ import annotations

import argparse
import base64
import shutil
import tempfile
import time
from pathlib import Path

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver",)
# Headless as root on a machine without network: without the background-networking flags Chromium stalls.
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio")


def find(candidates) -> str | None:
    for c in candidates:
        if Path(c).is_file():
            return c
    name = Path(candidates[0]).name
    return shutil.which(name)


def missing_reason() -> str | None:
    """Why the browser test cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if find(CHROMIUM) is None or find(CHROMEDRIVER) is None:
        return "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    return None


def make_driver(width: int = 1400, height: int = 1400):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = find(CHROMIUM)
    for flag in CHROME_FLAGS + (f"--window-size={width},{height}", f"--user-data-dir={tempfile.mkdtemp()}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(find(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(120)
    return driver


class Page:
    """The demo page, by the element ids the app gives its components."""

    def __init__(self, driver, url: str, timeout: float = 240) -> None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        self.d, self.timeout = driver, timeout
        self.wait = lambda cond, t=None: WebDriverWait(
            driver, t or timeout, poll_frequency=0.5, ignored_exceptions=(StaleElementReferenceException,)
        ).until(cond)
        driver.get(url)
        self.wait(lambda d: d.find_elements("id", "run1"), 120)

    def css(self, selector: str):
        return self.d.find_elements("css selector", selector)

    def text(self, elem_id: str) -> str:
        """The visible text of an element (read in the page, so a re-rendered element is never stale)."""
        return self.d.execute_script("const e = document.getElementById(arguments[0]); return e ? e.innerText : ''",
                                     elem_id)

    def choose_source(self, value: str) -> None:
        (radio,) = [r for r in self.css("#source input[type=radio]") if r.get_attribute("value") == value]
        if radio.is_selected():
            return
        radio.click()
        method = "gt" if value == "example" else "dust3r"
        self.wait(lambda d: self.css("#method input")[0].get_attribute("value") == method, 30)
        time.sleep(0.5)  # let the method dropdown settle after its choices changed

    def choose(self, elem_id: str, value: str) -> None:
        """Pick ``value`` in a dropdown: the option whose label is ``value`` or starts with ``value + ' '``
        (mode labels are "T — texture ..."); a value that is no option is typed as a custom value (features)."""
        from selenium.webdriver.common.keys import Keys

        box = self.css(f"#{elem_id} input")[0]
        box.click()
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(value)
        time.sleep(0.5)
        option_id = self.d.execute_script(
            "const v = arguments[0]; const o = [...document.querySelectorAll('[data-testid=dropdown-option]')]"
            ".find(e => e.getAttribute('aria-label') === v || e.getAttribute('aria-label').startsWith(v + ' '));"
            "return o ? o.id : null", value)
        if option_id:
            self.d.find_element("id", option_id).click()
        else:
            box.send_keys(Keys.ENTER)
        self.wait(lambda d: box.get_attribute("value").startswith(value), 30)

    def set_number(self, elem_id: str, value) -> None:
        from selenium.webdriver.common.keys import Keys

        box = self.css(f"#{elem_id} input")[0]
        box.click()
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(str(value), Keys.TAB)

    def tick(self, elem_id: str, on: bool = True) -> None:
        box = self.css(f"#{elem_id} input[type=checkbox]")[0]
        if box.is_selected() != on:
            box.click()

    def upload(self, paths) -> None:
        self.css("#uploads input[type=file]")[0].send_keys("\n".join(str(p) for p in paths))
        stems = [Path(p).stem for p in paths]  # the page shows stem and extension on separate lines
        self.wait(lambda d: all(s in self.text("uploads") for s in stems), 60)

    def clear_uploads(self) -> None:
        for button in self.css("#uploads button[aria-label='Clear'], #uploads button[aria-label='clear']"):
            button.click()

    def run(self, step: int, done: str) -> str:
        """Click step ``step``'s button; wait until its summary says ``done`` or an error toast appears."""
        self.d.find_element("id", f"run{step}").click()
        self.wait(lambda d: done in self.text(f"step{step}-summary") or self.toasts())
        errors = self.toasts()
        if errors:
            raise AssertionError(f"step {step} failed on the page: {errors}")
        return self.text(f"step{step}-summary")

    def expect_error(self, step: int, message: str) -> str:
        """Click step ``step``'s button and wait for an error toast containing ``message``; close it."""
        self.d.find_element("id", f"run{step}").click()
        self.wait(lambda d: any(message in t for t in self.toasts()), 120)
        text = next(t for t in self.toasts() if message in t)
        self.close_toasts()
        return text

    def toasts(self) -> list[str]:
        return [t for t in self.d.execute_script(
            "return [...document.querySelectorAll('[data-testid=toast-text]')].map(e => e.innerText)") if t]

    def close_toasts(self) -> None:
        for button in self.css("[data-testid=toast-close]"):
            try:
                button.click()
            except Exception:  # already gone
                pass
        self.wait(lambda d: not self.toasts(), 30)

    def screenshot(self, path: Path) -> Path:
        """The whole page (beyond the window) as PNG."""
        metrics = self.d.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics["cssContentSize"]
        shot = self.d.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def run_example(page: Page, feature: str = "iuvrgb", mode: str = "G", trajectory: str = "arc",
                depth_normal: bool = True) -> dict[str, str]:
    """Steps 1 -> 2 -> 3 on the example scene; returns the three summaries."""
    page.choose_source("example")
    page.choose("method", "gt")
    page.choose("feature", feature)
    page.choose("mode", mode)
    out = {"step1": page.run(1, "Step 1 done")}
    out["step2"] = page.run(2, "Step 2")
    page.choose("trajectory", trajectory)
    page.tick("depth-normal", depth_normal)
    out["step3"] = page.run(3, "Step 3 done")
    time.sleep(2)  # let the videos and images load before a screenshot
    return out


def main() -> None:
    from feat2gs.demo.cli import serve
    from feat2gs.demo.settings import DemoSettings
    from tests.demo._demo import free_port

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/demo.png"))
    parser.add_argument("--set", action="append", default=[], dest="sets")
    parser.add_argument("--feature", default="iuvrgb")
    parser.add_argument("--mode", default="G")
    parser.add_argument("--trajectory", default="arc")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="feat2gs_demo_"))
    app, url = serve(DemoSettings(cache_dir=cache, preset="quick", overrides=tuple(args.sets)), "127.0.0.1",
                     free_port(), block=False)
    driver = make_driver()
    try:
        page = Page(driver, url, timeout=1800)
        print(run_example(page, args.feature, args.mode, args.trajectory))
        print("screenshot:", page.screenshot(args.out))
    finally:
        driver.quit()
        app.close()


if __name__ == "__main__":
    main()
