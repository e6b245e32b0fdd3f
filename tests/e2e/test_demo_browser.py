"""The demo page in a real browser: headless Chromium (Playwright) against a live `streamuq serve`.

Feeds a street clip (made into a VP8 .webm from the shared GIF), waits for results and
reads the canvases back. Saves a screenshot to the test's temporary folder; with
`STREAMUQ_DEMO_SCREENSHOT=docs/images/demo.png` it refreshes the one the README shows
(a plain test run must not leave the work tree changed).

The browser tests need /usr/bin/chromium (Debian `chromium`; `.ci/run` installs it):
skipped without it locally, failed without it in CI (`CI` set).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from live_server import serving
from PIL import Image, ImageSequence

REPO = Path(__file__).resolve().parents[2]
API_KEY = "demo-key-0123456789"
CLIP = REPO.parent / "shared" / "data" / "camvid" / "clips" / "street-1.gif"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A synthetic camera (a moving test pattern) for getUserMedia, allowed without a prompt.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
SCREENSHOT_ENV = "STREAMUQ_DEMO_SCREENSHOT"

# Distinct colours and the share of opaque pixels of a canvas, read back with getImageData.
CANVAS_CONTENT = """(id) => {
  const canvas = document.getElementById(id);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  let opaque = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0) opaque += 1;
    colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  }
  return { colours: colours.size, opaque: opaque / (data.length / 4), width: canvas.width };
}"""


def test_demo_router_serves_the_page_and_only_its_files() -> None:
    from fastapi import FastAPI

    from service.api import demo

    app = FastAPI()
    app.include_router(demo.router)

    async def get(*paths: str) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
            return [await http.get(path) for path in paths]

    page, script, style, escape, other = asyncio.run(
        get("/", "/static/app.js", "/static/style.css", "/static/..%2Fapi%2Fdemo.py", "/static/demo.py")
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in page.text
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert escape.status_code == other.status_code == 404
    # Self-contained: nothing is fetched from another origin.
    for name in demo.STATIC_FILES:
        text = (demo.STATIC_DIR / name).read_text()
        assert "http://" not in text and "https://" not in text, name


def _stat(page: Any, name: str) -> str:
    return str(page.locator(f"#stat-{name}").inner_text())


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is missing: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test, but {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def page(browser: Any, live_server: str) -> Iterator[Any]:
    """The demo page, loaded and holding the model; fails the test on any uncaught page error."""
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 640})
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server}/")
    page.wait_for_function("window.streamuq && window.streamuq.model !== null", timeout=30_000)
    yield page
    page.click("#stop")
    context.close()
    assert not errors, errors


def _wait_frames(page: Any, more: int) -> None:
    """Wait until `more` results beyond those drawn so far have been drawn."""
    target = int(page.evaluate("window.streamuq.frames")) + more
    page.wait_for_function(f"window.streamuq.frames >= {target}", timeout=90_000)


def _assert_no_error(page: Any) -> None:
    status = page.locator("#status")
    assert status.get_attribute("class") == "status", status.inner_text()


SHIPPED_MODEL_ARGS = ["--log-level", "warning"]  # no --weights-dir: the shipped model


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(SHIPPED_MODEL_ARGS, tmp_path_factory.mktemp("server") / "serve.log") as server:
        yield server.url


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same with API keys on: `API_KEY` is the only one."""
    log = tmp_path_factory.mktemp("keyed") / "serve.log"
    with serving(SHIPPED_MODEL_ARGS, log, {"STREAMUQ_API_KEYS": API_KEY}) as server:
        yield server.url


@pytest.fixture()
def clip_webm(tmp_path: Path) -> Path:
    """The shared street GIF as a VP8 .webm, which every Chromium build plays."""
    if not CLIP.is_file():
        pytest.skip(f"sample clip {CLIP} is not here")
    path = tmp_path / "street.webm"
    with Image.open(CLIP) as gif, av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=20)
        stream.width, stream.height = gif.size
        stream.pix_fmt = "yuv420p"
        for frame in ImageSequence.Iterator(gif):
            container.mux(stream.encode(av.VideoFrame.from_image(frame.convert("RGB"))))
        container.mux(stream.encode())
    return path


@pytest.mark.browser
@pytest.mark.e2e
@pytest.mark.slow
def test_demo_page_streams_a_clip_and_draws_mask_and_uncertainty(page: Any, clip_webm: Path) -> None:
    assert page.locator("#legend li").count() == len(page.evaluate("window.streamuq.model.classes"))
    page.set_input_files("#file", str(clip_webm))
    _wait_frames(page, 6)
    frames_before = int(_stat(page, "frames"))
    _wait_frames(page, 4)
    assert int(_stat(page, "frames")) >= frames_before + 4
    assert float(_stat(page, "fps")) > 0
    assert _stat(page, "latency").endswith(" ms")
    _assert_no_error(page)

    overlay = page.evaluate(CANVAS_CONTENT, "overlay")
    heatmap = page.evaluate(CANVAS_CONTENT, "heatmap")
    assert overlay["width"] == 240 and overlay["opaque"] == 1.0 and overlay["colours"] > 500, overlay
    assert heatmap["width"] == 240 and heatmap["opaque"] == 1.0 and heatmap["colours"] >= 2, heatmap

    # Controls: another uncertainty redraws at once; the mode and reset go to the server.
    page.select_option("#uncertainty", "confidence")
    assert page.locator("#cbar-max").inner_text() == "1.0"
    page.select_option("#mode", "vq-dnn")
    page.click("#reset")
    _wait_frames(page, 3)
    _assert_no_error(page)
    assert page.evaluate(CANVAS_CONTENT, "heatmap")["colours"] >= 2

    page.select_option("#mode", "vq-bnn")
    page.select_option("#uncertainty", "entropy")
    _wait_frames(page, 5)
    page.mouse.move(0, 0)  # no hover highlight in the picture
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or clip_webm.with_name("demo.png"))
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000


@pytest.mark.browser
@pytest.mark.e2e
@pytest.mark.slow
def test_demo_page_streams_the_webcam(page: Any) -> None:
    page.click("#webcam")
    _wait_frames(page, 3)
    _assert_no_error(page)
    overlay = page.evaluate(CANVAS_CONTENT, "overlay")
    assert overlay["width"] == 480 and overlay["opaque"] == 1.0 and overlay["colours"] > 10, overlay


@pytest.mark.browser
@pytest.mark.e2e
@pytest.mark.slow
def test_demo_page_asks_for_and_uses_the_api_key(browser: Any, keyed_server: str, clip_webm: Path) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{keyed_server}/")  # the page itself is open
        page.wait_for_function("document.getElementById('status').classList.contains('error')")
        assert "API key" in page.locator("#status").inner_text()

        page.fill("#api-key", API_KEY)
        page.dispatch_event("#api-key", "change")
        page.wait_for_function("window.streamuq.model !== null", timeout=30_000)
        page.set_input_files("#file", str(clip_webm))
        _wait_frames(page, 3)
        _assert_no_error(page)
        page.click("#stop")
    finally:
        context.close()
