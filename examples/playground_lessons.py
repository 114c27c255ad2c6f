"""Screenshots of every playground lesson, in English and Japanese, and each lesson's numbers.

    python examples/playground_lessons.py docs/lessons

Starts `leaky playground` on a free loopback port, opens each lesson's link in headless
Chromium (Debian's `chromium`; Japanese text needs `fonts-ipaexfont-gothic`), presses the
lesson's "Train" button, waits for the view after those steps (and for the born-dead
estimate), and writes lesson-<n>-<key>-<lang>.png into the folder given. It prints, as JSON,
each lesson's checks as the page's data shows them (leaky.playground.lessons.measure) at
step 0 and after the lesson's steps, each network's milliseconds per training step, and the
seconds from pressing "Train" to the view after its last step.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from leaky.playground.lessons import LESSONS, measure

AT_STEP = """([preset, step]) => { const m = window.playground.last;
  return Boolean(m) && m.step === step && Number(document.body.dataset.step) === step
    && Object.entries(preset).every(([name, value]) => m.params[name] === value); }"""


def main() -> None:
    """Walk every lesson in both languages."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/lessons")
    out.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "leaky", "playground", "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE,
        text=True,
    )
    results = []
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", server.stdout.readline()).group(0)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
            )
            for lang in ("en", "ja"):
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.set_default_timeout(300_000)  # the first session imports torch
                for number, lesson in enumerate(LESSONS, start=1):
                    page.goto(f"{url}#lesson={lesson.key}&lang={lang}")
                    page.reload()  # a new session from the link alone
                    page.wait_for_function(AT_STEP, arg=[lesson.preset, 0])
                    first = page.evaluate("window.playground.last")
                    start = time.perf_counter()
                    page.click("#lesson-train")
                    page.wait_for_function(AT_STEP, arg=[lesson.preset, lesson.steps])
                    seconds = time.perf_counter() - start
                    if any(check.metric == "born_dead" for check in lesson.checks):
                        page.wait_for_function("window.playground.last.born_dead.done")
                    time.sleep(1)  # the last drawing settles
                    view = page.evaluate("window.playground.last")
                    page.screenshot(path=str(out / f"lesson-{number}-{lesson.key}-{lang}.png"))
                    results.append(
                        {
                            "lesson": lesson.key,
                            "lang": lang,
                            "steps": lesson.steps,
                            "train_seconds": round(seconds, 1),
                            "checks": [
                                {
                                    **check.to_dict(),
                                    "at_step_0": measure(first, check),
                                    "value": measure(view, check),
                                }
                                for check in lesson.checks
                            ],
                            "holds": all(check.holds(view) for check in lesson.checks),
                            "ms_per_step": {
                                net["activation"]: net["ms_per_step"] for net in view["networks"]
                            },
                        }
                    )
                page.close()
            browser.close()
        print(json.dumps(results, indent=1))
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
