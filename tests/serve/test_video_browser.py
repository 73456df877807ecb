"""The page's video features in headless Chromium (skipped, with the reason, where Chromium or
Playwright is missing, as tests/serve/test_serve_browser.py is): a dropped video comes back as its
timeline picture and one summary per tracked face; the webcam shows track ids and a rolling
timeline."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

# The browser, server and page fixtures of the photo tests (this import skips the module where
# they skip).
from test_serve_browser import context, files, live_server, page, shot, until  # noqa: F401
from test_video_api import moving_frames

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "walk.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (480, 320))
    for frame in moving_frames():
        writer.write(frame)
    writer.release()
    return path


def test_dropped_video_shows_timeline_and_tracks(page, clip: Path) -> None:  # noqa: F811
    page.set_input_files("#file", str(clip))
    page.wait_for_selector("body[data-state=done]", timeout=60_000)
    assert page.is_visible("#timeline") and not page.is_visible("#canvas")
    size = page.evaluate("[timeline.naturalWidth, timeline.naturalHeight]")
    assert size[0] > 1000 and size[1] > 150  # the PNG decoded
    items = page.query_selector_all("#faces .track")
    answer = page.evaluate("window.deepfer.video")
    assert len(items) == len(answer["tracks"]) == 1 and answer["frames"] == 24
    assert items[0].get_attribute("data-dominant") == answer["tracks"][0]["dominant"]
    assert page.inner_text("#results-title") == "Tracked faces" and "1 tracked face" in page.inner_text("#status")
    shot(page, "serve_video.png")


def test_webcam_shows_track_ids_and_a_rolling_timeline(page) -> None:  # noqa: F811
    page.click("#webcam")
    page.wait_for_selector("body[data-state=webcam]", timeout=20_000)
    until(page, "window.deepfer.history.length >= 3 && document.querySelectorAll('#faces .face').length > 0")
    result = page.evaluate("window.deepfer.result")
    assert result["faces"][0]["track"] == 1 and "smoothed" in result["faces"][0] and result["time"] >= 0
    assert page.get_attribute("#faces .face", "data-track") == "1"
    assert page.is_visible("#rolling") and page.get_attribute("#rolling", "aria-label").startswith("track 1:")
    # The rolling timeline's row for track 1 is painted in the colour of its smoothed label.
    label = page.get_attribute("#rolling", "aria-label").split(": ")[1].split(",")[0]
    color = page.evaluate(f"window.deepfer.colors[{label!r}]")
    ratio = page.evaluate("window.devicePixelRatio")
    width = page.evaluate("rolling.width")
    rgba = page.evaluate("([x, y]) => Array.from(rolling.getContext('2d').getImageData(x, y, 1, 1).data)",
                         [width - 3 * ratio, 9 * ratio])
    assert max(abs(a - int(color[i : i + 2], 16)) for a, i in zip(rgba[:3], (1, 3, 5))) <= 40
    shot(page, "serve_webcam_tracks.png")
    page.click("#webcam")
    page.wait_for_selector("body[data-state=ready]")
    assert not page.is_visible("#rolling")


def test_an_error_clears_the_previous_videos_results(page, clip: Path, tmp_path: Path) -> None:  # noqa: F811
    page.set_input_files("#file", str(clip))
    page.wait_for_selector("body[data-state=done]", timeout=60_000)
    assert page.query_selector_all("#faces .track") and page.is_visible("#timeline")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    page.set_input_files("#file", str(broken))
    page.wait_for_selector("body[data-state=error]", timeout=60_000)
    assert "broken.mp4" in page.inner_text("#status")
    assert not page.query_selector_all("#faces li") and not page.is_visible("#timeline")
    assert page.evaluate("window.deepfer.video") is None and page.inner_text("#count") == ""
