"""The README's playground screenshots, and the page's own slider-to-view latency.

    python examples/playground_screenshots.py docs

Starts `leaky playground` on a free loopback port, opens it in headless Chromium (Debian's
`chromium`; Japanese text needs `fonts-ipaexfont-gothic`), compares ReLU with Leaky ReLU on
two spirals with a bias shift, trains for a while, and writes playground-en.png and
playground-ja.png into the folder given. It then changes the noise slider a few times and
prints, as JSON, how long each change took to reach the drawn page (the page measures it:
from sending the setting to the end of drawing the first view that has it).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

SETUP = "#compare=true&bias_shift=0.5&depth=6&width=16&learning_rate=0.01&noise=0.05"
TRAIN_SECONDS = 40.0


def main() -> None:
    """Take both screenshots, then measure the latency."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    server = subprocess.Popen(
        [sys.executable, "-m", "leaky", "playground", "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", server.stdout.readline()).group(0)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1250})
            page.set_default_timeout(300_000)  # the first session imports torch's optimisers
            page.goto(url + SETUP)
            page.wait_for_function("window.playground && window.playground.rendered > 0")
            page.click("#play")
            time.sleep(TRAIN_SECONDS)
            page.click("#play")
            page.wait_for_function("!window.playground.running")
            time.sleep(2)
            page.screenshot(path=str(out / "playground-en.png"), full_page=True)
            page.select_option("#lang", "ja")
            page.wait_for_function("document.documentElement.lang === 'ja'")
            time.sleep(2)
            page.screenshot(path=str(out / "playground-ja.png"), full_page=True)
            page.click("#play")
            waits = []
            for value in (0.06, 0.05, 0.06, 0.05, 0.06, 0.05):
                page.evaluate(
                    "(v) => { window.playground.lastLatency = undefined;"
                    " const s = document.getElementById('input-noise');"
                    " s.value = v; s.dispatchEvent(new Event('change')); }",
                    value,
                )
                page.wait_for_function("window.playground.lastLatency !== undefined")
                waits.append(page.evaluate("window.playground.lastLatency"))
            page.click("#play")
            browser.close()
        print(
            json.dumps(
                {
                    "slider_to_drawn_view_ms": [round(w) for w in waits],
                    "median_ms": round(statistics.median(waits)),
                }
            )
        )
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
