"""The playground end to end: `leaky playground` on loopback, the page in headless Chromium.

Every request the page makes that is not to the local server is aborted and recorded: the
page must work with no network. Set LEAKY_PLAYGROUND_SCREENSHOTS to a folder to keep the
test's English and Japanese screenshots there.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow

SETUP = "#depth=2&width=8&learning_rate=0.05&batch_size=32"
WAIT_MS = 180_000  # a loaded 2-core machine trains and draws slowly


@pytest.fixture
def server_url():
    """`leaky playground` in a child process on a free loopback port; stopped afterwards."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "leaky", "playground", "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        line = ""
        deadline = time.monotonic() + 180
        while "http://" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"no URL printed: {line!r}"
        yield match.group(0)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=60)


def _wait(page, expression, arg=None):
    page.wait_for_function(expression, arg=arg, timeout=WAIT_MS)


def test_playground_in_a_real_browser(server_url, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium installed (apt-get install chromium): page not checked")
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("LEAKY_PLAYGROUND_SCREENSHOTS", tmp_path))
    outside = []

    def only_loopback(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1250})
            context.route("**/*", only_loopback)
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server_url + SETUP)
            _wait(page, "window.playground && window.playground.rendered > 0")
            first_loss = float(page.get_attribute("#net-summary-0", "data-loss"))

            # Play: the loss falls and the views follow.
            page.click("#play")
            _wait(page, "Number(document.body.dataset.step) >= 60")
            page.click("#play")
            _wait(page, "!window.playground.running")
            _wait(
                page,
                "(first) => Number(document.getElementById('net-summary-0').dataset.loss)"
                " < 0.8 * first",
                first_loss,
            )
            assert page.evaluate("document.getElementById('view-loss').data.length") == 2

            # Compare, then push every pre-activation down: ReLU dies, Leaky ReLU does not.
            page.check("#input-compare")
            _wait(page, "document.getElementById('net-title-1')")
            page.evaluate(
                "(() => { const s = document.getElementById('input-bias_shift');"
                " s.value = 3; s.dispatchEvent(new Event('change')); })()"
            )
            _wait(page, "window.playground.last.params.bias_shift === 3")
            page.click("#step")
            _wait(page, "Number(document.getElementById('net-summary-0').dataset.dead) === 1")
            assert page.get_attribute("#net-title-0", "data-activation") == "relu"
            assert page.get_attribute("#net-title-1", "data-activation") == "leaky_relu"
            assert float(page.get_attribute("#net-summary-1", "data-dead")) == 0.0

            # A bad value is named beside its control; the server goes on serving.
            page.fill("#input-seed", "-5")
            page.dispatch_event("#input-seed", "change")
            page.wait_for_selector("#error-seed:not([hidden])", timeout=WAIT_MS)
            assert "-5" in page.text_content("#error-seed")
            page.fill("#input-seed", "0")
            page.dispatch_event("#input-seed", "change")
            page.wait_for_selector("#error-seed", state="hidden", timeout=WAIT_MS)
            page.screenshot(path=str(shots / "playground-en.png"), full_page=True)

            # Export: the run's numbers as JSON, the views as PNG (drawn by plotly in the page).
            with page.expect_download(timeout=WAIT_MS) as download:
                page.click("#export-json")
            exported = json.loads(Path(download.value.path()).read_text())
            assert exported["params"]["bias_shift"] == 3
            assert exported["view"]["networks"][0]["dead"] == [1.0, 1.0]
            with page.expect_download(timeout=WAIT_MS) as download:
                page.click("#export-png")
            assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            # Japanese: every word from the catalogue, the language kept in the URL.
            page.select_option("#lang", "ja")
            _wait(page, "document.querySelector('h1').textContent === 'leaky プレイグラウンド'")
            assert page.text_content("#play") == "再生"
            assert "lang=ja" in page.url
            page.screenshot(path=str(shots / "playground-ja.png"), full_page=True)
            params = page.evaluate("window.playground.params")

            # The URL alone reopens the same setup.
            again = context.new_page()
            again.goto(page.url)
            _wait(again, "window.playground && window.playground.rendered > 0")
            _wait(again, "window.playground.last.params.bias_shift === 3")
            assert again.evaluate("window.playground.params") == params
            assert again.text_content("h1") == "leaky プレイグラウンド"
            assert params["compare"] and params["depth"] == 2 and params["seed"] == 0
        finally:
            browser.close()
    assert not errors, errors
    assert not outside, f"the page asked the network for {outside}"


# A lesson's preset is on the page, at ``step``, and drawn.
AT_STEP = """([preset, step]) => { const m = window.playground.last;
  return Boolean(m) && m.step === step && Number(document.body.dataset.step) === step
    && Object.entries(preset).every(([name, value]) => m.params[name] === value); }"""


def _browser(playwright):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium installed (apt-get install chromium): page not checked")
    return playwright.chromium.launch(
        executable_path=chromium,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


@pytest.mark.parametrize(("locale", "lang"), [("en-GB", "en"), ("ja-JP", "ja")])
def test_every_lesson_shows_its_point_in_a_real_browser(server_url, tmp_path, locale, lang):
    from playwright.sync_api import sync_playwright

    from leaky.messages import get_messages
    from leaky.playground.lessons import LESSONS, measure

    words = get_messages(lang)
    shots = Path(os.environ.get("LEAKY_PLAYGROUND_SCREENSHOTS", tmp_path))
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            # A first-time visitor, in the browser's language: the first lesson opens.
            page = browser.new_context(viewport={"width": 1400, "height": 1250}, locale=locale)
            page = page.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server_url)
            _wait(page, "window.playground && window.playground.rendered > 0")
            assert page.evaluate("document.documentElement.lang") == lang
            for number, lesson in enumerate(LESSONS, start=1):
                _wait(page, AT_STEP, [lesson.preset, 0])
                assert page.get_attribute("#lesson", "data-lesson") == lesson.key
                title = words(f"playground.lessons.{lesson.key}.title")
                assert page.text_content("#lesson-title") == title
                assert page.text_content("#lesson-number") == words(
                    "playground.lessons.number", number=number, count=len(LESSONS)
                )
                page.click("#lesson-train")
                _wait(page, AT_STEP, [lesson.preset, lesson.steps])
                if any(check.metric == "born_dead" for check in lesson.checks):
                    _wait(page, "window.playground.last.born_dead.done")
                view = page.evaluate("window.playground.last")
                # The point, from the page's own data, and as the page itself reads it.
                for check in lesson.checks:
                    assert check.holds(view), (lesson.key, check, measure(view, check))
                shown = page.eval_on_selector_all(
                    "#lesson-checks li",
                    "items => items.map((i) => [i.dataset.value, i.dataset.holds])",
                )
                assert [holds for _, holds in shown] == ["true"] * len(lesson.checks)
                for (value, _), check in zip(shown, lesson.checks, strict=True):
                    assert float(value) == pytest.approx(measure(view, check))
                if lesson.key == "leaky_flows":
                    # The gradient panel's verdict names ReLU's dead units, not "healthy".
                    assert page.get_attribute("#verdicts", "data-verdicts") == "dying,healthy"
                page.screenshot(path=str(shots / f"lesson-{number}-{lesson.key}-{lang}.png"))
                if number < len(LESSONS):
                    page.click("#lesson-next")
            # Free play is one click away; the link then names no lesson.
            page.click("#lesson-close")
            page.wait_for_selector("#lesson", state="hidden", timeout=WAIT_MS)
            assert "lesson=" not in page.url and page.is_visible("#lessons-open")
        finally:
            browser.close()
    assert not errors, errors


def test_a_hand_out_link_reopens_its_lesson_with_controls_hidden(server_url, tmp_path):
    from playwright.sync_api import sync_playwright

    from leaky.playground import TrainingSession
    from leaky.playground.lessons import get_lesson

    lesson = get_lesson("relu_dies")
    link = server_url + "#lesson=relu_dies&learning_rate=0.02&hide=seed,optimizer,batch_size"
    hidden = ("seed", "optimizer", "batch_size")
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1250})
            page = context.new_page()
            page.goto(link)
            setup = {**lesson.preset, "learning_rate": 0.02}
            _wait(page, AT_STEP, [setup, 0])
            for name in hidden:
                assert not page.is_visible(f"#control-{name}")
            assert page.is_visible("#control-depth") and page.is_visible("#control-learning_rate")
            assert page.evaluate("document.documentElement.lang") == "en"
            shared = page.url  # what the teacher copies: written back by the page
            assert "lesson=relu_dies" in shared and "learning_rate=0.02" in shared
            assert "hide=seed%2Coptimizer%2Cbatch_size" in shared and "depth=" not in shared
            first = page.evaluate("window.playground.last")

            # The shared link reopens the same view: same settings, same numbers.
            again = context.new_page()
            again.goto(shared)
            _wait(again, AT_STEP, [setup, 0])
            view = again.evaluate("window.playground.last")
            assert view["params"] == first["params"]
            assert view["networks"][0]["train_loss"] == first["networks"][0]["train_loss"]
            session = TrainingSession(setup).snapshot()
            assert view["networks"][0]["train_loss"] == pytest.approx(
                session["networks"][0]["train_loss"], rel=1e-6
            )
            for name in hidden:
                assert not again.is_visible(f"#control-{name}")

            # Export as Python: the page's setup as a script that trains as many steps.
            again.click("#lesson-train")
            _wait(again, AT_STEP, [setup, lesson.steps])
            with again.expect_download(timeout=WAIT_MS) as download:
                again.click("#export-python")
            script = Path(download.value.path()).read_text()
            assert download.value.suggested_filename == "leaky_playground.py"
            assert f"STEPS = {lesson.steps}" in script and "LEARNING_RATE = 0.02" in script
            compile(script, "leaky_playground.py", "exec")

            # A link naming what does not exist says so, and a bad value beside its control;
            # the page then shows the session as it is.
            bad = context.new_page()
            bad.goto(server_url + "#lesson=gelu&hide=colour&depth=0")
            bad.wait_for_selector("#banner:not([hidden])", timeout=WAIT_MS)
            assert "gelu" in bad.text_content("#banner") and "colour" in bad.text_content("#banner")
            bad.wait_for_selector("#error-depth:not([hidden])", timeout=WAIT_MS)
            _wait(bad, "window.playground.rendered > 0")
            assert bad.evaluate("window.playground.last.params.depth") == 4
        finally:
            browser.close()
