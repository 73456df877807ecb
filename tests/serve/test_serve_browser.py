"""End to end in headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright's Python
package; Playwright's own browser download is never used): the page uploads a photo and draws the
boxes, labels and bar charts; the explain toggle lays the heatmap over the face; the webcam path
runs on Chromium's fake camera fed with the bundled portrait. Screenshots are saved to
``out/test-screenshots/``.

Skipped, with the reason, where Chromium or Playwright is missing (``make test`` installs Chromium
when it runs as root with apt).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_helpers import ROOT, encode, free_port, portrait, wait_for

CHROMIUM = os.environ.get("DEEPFER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"browser test skipped: Debian's chromium is not installed ({CHROMIUM} missing; "
                "`apt-get install chromium`, which `make test` runs when it is root)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser test skipped: the playwright package is "
                               "missing (pip install -e '.[dev]')")

pytestmark = pytest.mark.timeout(180)

SHOTS = ROOT / "out" / "test-screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def y4m(im: Image.Image, path: Path, frames: int = 2) -> Path:
    """A raw YUV 4:2:0 video of ``im`` for Chromium's fake camera (``--use-file-for-fake-video-capture``)."""
    w, h = im.size
    y, cb, cr = (np.asarray(c) for c in im.convert("YCbCr").split())
    half = (w // 2, h // 2)
    chroma = [np.asarray(Image.fromarray(c).resize(half, Image.Resampling.BILINEAR)).tobytes() for c in (cb, cr)]
    frame = b"FRAME\n" + y.tobytes() + chroma[0] + chroma[1]
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * frames)
    return path


@pytest.fixture(scope="module")
def live_server(settings, engine) -> Iterator[str]:
    """The app on a free port of 127.0.0.1, in a thread of this process."""
    import uvicorn

    from deepfer.serve.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("browser")
    (d / "portrait.jpg").write_bytes(encode(portrait()))
    (d / "notes.jpg").write_bytes(b"just some text, whatever the name says")
    (d / "huge.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(11 * 1024 * 1024))
    return {"photo": d / "portrait.jpg", "text": d / "notes.jpg", "huge": d / "huge.jpg",
            "camera": y4m(portrait(), d / "camera.y4m"), "profile": d / "profile"}


@pytest.fixture(scope="module")
def context(files: dict[str, Path]):
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(files["profile"]), executable_path=CHROMIUM, headless=True,
            args=[*FLAGS, f"--use-file-for-fake-video-capture={files['camera']}"],
            viewport={"width": 1200, "height": 820})
        try:
            yield ctx
        finally:
            ctx.close()


@pytest.fixture
def page(context, live_server: str):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(live_server + "/")
    page.wait_for_selector("body[data-state=ready]", timeout=20_000)
    yield page
    page.close()
    assert not [e for e in errors if "status of 4" not in e], errors  # 4xx answers are expected in some tests


def api_result(url: str, photo: Path) -> dict:
    req = urllib.request.Request(url + "/v1/predict", data=photo.read_bytes(), headers={"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 (loopback)
        return json.load(r)


def pixel(page, canvas: str, x: float, y: float) -> list[int]:
    return page.evaluate("([id, x, y]) => Array.from(document.getElementById(id).getContext('2d')"
                         ".getImageData(Math.round(x), Math.round(y), 1, 1).data)", [canvas, x, y])


def hex_rgb(color: str) -> list[int]:
    return [int(color[i : i + 2], 16) for i in (1, 3, 5)]


def close_to(rgba: list[int], color: str, tol: int = 40) -> bool:
    return max(abs(a - b) for a, b in zip(rgba[:3], hex_rgb(color), strict=True)) <= tol


def until(page, expression: str, timeout: float = 30.0) -> None:
    """Poll ``expression`` in the page until it is truthy (Playwright's wait_for_function evaluates
    strings with eval, which the page's Content-Security-Policy rightly forbids)."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(100)


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_photo_upload_draws_boxes_labels_and_bars(page, files, live_server: str) -> None:
    want = api_result(live_server, files["photo"])
    (face,) = want["faces"]
    page.set_input_files("#file", str(files["photo"]))
    page.wait_for_selector("body[data-state=done]", timeout=30_000)

    items = page.query_selector_all("#faces .face")
    assert len(items) == 1
    assert items[0].get_attribute("data-label") == face["label"]
    assert items[0].get_attribute("data-box") == ",".join(map(str, face["box"]))
    assert page.inner_text("#count") == "(1)"
    assert "1 face" in page.inner_text("#status")

    colors = page.evaluate("window.deepfer.colors")
    color = colors[face["label"]]
    x, y, w, h = face["box"]  # the canvas is the photo's size (640 <= 1280)
    assert page.evaluate("[canvas.width, canvas.height]") == [640, 480]
    assert close_to(pixel(page, "canvas", x, y + h / 2), color)  # the box's left edge
    assert close_to(pixel(page, "canvas", x + w / 2, y + h - 1), color)  # its bottom edge
    assert not close_to(pixel(page, "canvas", x + w / 2, y + h / 2), color, 10)  # the face shows through

    bars = items[0].query_selector("canvas.bars")
    labels = page.evaluate("window.deepfer.labels")
    aria = bars.get_attribute("aria-label")
    assert all(name in aria for name in labels)
    top = labels.index(face["label"])
    ratio = page.evaluate("window.devicePixelRatio")
    bar_px = page.evaluate(
        "([ratio, row]) => { const c = document.querySelector('#faces .face canvas.bars');"
        " return Array.from(c.getContext('2d').getImageData(75 * ratio, (2 + row * 20 + 10) * ratio, 1, 1).data); }",
        [ratio, top])
    assert close_to(bar_px, color)  # the winning class's bar is drawn in its colour
    path = shot(page, "serve_photo.png")
    assert path.stat().st_size > 10_000


def test_explain_toggle_lays_the_heatmap_over_the_face(page, files, live_server: str) -> None:
    (face,) = api_result(live_server, files["photo"])["faces"]
    page.set_input_files("#file", str(files["photo"]))
    page.wait_for_selector("body[data-state=done]", timeout=30_000)
    x, y, w, h = face["box"]

    def region(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        data = page.evaluate("([a, b, c, d]) => Array.from(canvas.getContext('2d')"
                             ".getImageData(a, b, c - a, d - b).data)", [round(x0), round(y0), round(x1), round(y1)])
        return np.array(data, dtype=int).reshape(round(y1) - round(y0), round(x1) - round(x0), 4)

    inside = (x + 4, y + 4, x + w - 4, y + h - 4)
    before_face, before_corner = region(*inside), region(0, 300, 60, 400)
    page.check("#explain")
    until(page, "document.getElementById('status').textContent.startsWith('Heatmap')")
    after_face, after_corner = region(*inside), region(0, 300, 60, 400)
    assert np.abs(after_face - before_face).sum(2).max() > 60  # coloured where the map is
    assert np.array_equal(after_corner, before_corner)  # the photo elsewhere
    shot(page, "serve_explain.png")
    page.uncheck("#explain")
    page.wait_for_timeout(300)
    assert np.array_equal(region(*inside), before_face)


def test_webcam_shows_live_results(page, files) -> None:
    page.click("#webcam")
    page.wait_for_selector("body[data-state=webcam]", timeout=20_000)
    until(page, "window.deepfer.frames >= 2 && document.querySelectorAll('#faces .face').length > 0")
    result = page.evaluate("window.deepfer.result")
    assert result["path"].startswith("frame") and result["faces"]
    happy = [f for f in result["faces"] if f["label"] == "happy"]
    assert happy, result  # the portrait smiles, through the fake camera too
    x, y, w, h = happy[0]["box"]
    assert page.evaluate("[overlay.width, overlay.height]") == [640, 480]
    assert close_to(pixel(page, "overlay", x, y + h / 2), page.evaluate("window.deepfer.colors.happy"))
    assert page.is_visible("#video") and not page.is_visible("#canvas")
    shot(page, "serve_webcam.png")
    page.click("#webcam")
    page.wait_for_selector("body[data-state=ready]")
    assert page.evaluate("window.deepfer.stream") is None


def test_errors_are_shown_not_thrown(page, files) -> None:
    page.set_input_files("#file", str(files["text"]))
    page.wait_for_selector("body[data-state=error]", timeout=20_000)
    assert "415" in page.inner_text("#status") and "not a supported image" in page.inner_text("#status")
    page.set_input_files("#file", str(files["huge"]))
    until(page, "document.getElementById('status').textContent.includes('larger than')")
    assert "10.0 MiB limit" in page.inner_text("#status")


def test_api_docs_render_offline(context, live_server: str) -> None:
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    try:
        page.goto(live_server + "/docs")
        page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
        assert "/v1/predict" in page.inner_text(".swagger-ui")
        assert all(url.startswith(live_server) or url.startswith("data:") for url in requested), requested
    finally:
        page.close()
