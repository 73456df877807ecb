"""The video routes: POST /v1/video (a video -> track summary and timeline picture) and POST
/v1/track (webcam frames of a session -> track ids and smoothed scores)."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from deepfer.inference import sample_image
from deepfer.vision import read_image


def moving_frames(n: int = 24) -> list[np.ndarray]:
    """480x320 BGR frames: the bundled portrait's head (150 px) moving 6 px a frame."""
    bgr = read_image(sample_image(), keep_color=True).bgr
    head = cv2.resize(bgr[24:204, 134:314], (150, 150), interpolation=cv2.INTER_AREA)
    frames = []
    for f in range(n):
        frame = np.full((320, 480, 3), 90, np.uint8)
        frame[80:230, 20 + 6 * f : 170 + 6 * f] = head
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (480, 320))
    for frame in moving_frames():
        writer.write(frame)
    writer.release()
    return path.read_bytes()


def test_video_gives_tracks_and_a_timeline(client: TestClient, clip: bytes) -> None:
    res = client.post("/v1/video?name=dir/clip.avi", content=clip, headers={"Content-Type": "video/x-msvideo"})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["path"] == "clip.avi" and body["frames"] == 24 and body["fps"] == pytest.approx(12.0)
    assert body["errors"] == [] and not body["truncated"] and body["duration"] == pytest.approx(2.0)
    [track] = body["tracks"]
    assert track["track"] == 1 and track["frames"] == 24 and track["first"] == 0
    assert track["last"] == pytest.approx(23 / 12, abs=1e-3) and sum(track["shares"].values()) == pytest.approx(1, abs=1e-3)
    assert body["timeline_png"].startswith("data:image/png;base64,")
    png = base64.b64decode(body["timeline_png"].split(",", 1)[1])
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] > 1000


def test_unreadable_video_is_a_400_without_server_paths(client: TestClient) -> None:
    res = client.post("/v1/video?name=bad.mp4", content=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200,
                      headers={"Content-Type": "video/mp4"})
    assert res.status_code == 400
    error = res.json()["error"]
    assert error.startswith("bad.mp4: cannot open video") and "/tmp" not in error and "deepfer-video" not in error


@pytest.mark.parametrize("kind, body, status", [("multipart/form-data; boundary=x", b"--x--", 415),
                                                ("video/mp4", b"", 400)])
def test_video_request_shape(client: TestClient, kind: str, body: bytes, status: int) -> None:
    res = client.post("/v1/video", content=body, headers={"Content-Type": kind})
    assert res.status_code == status and res.json()["error"]


def test_video_too_large_and_busy(client: TestClient, clip: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import deepfer.serve.video as video

    monkeypatch.setattr(video, "MAX_VIDEO_BYTES", 1000)
    res = client.post("/v1/video", content=clip, headers={"Content-Type": "video/x-msvideo"})
    assert res.status_code == 413 and "limit" in res.json()["error"]
    monkeypatch.undo()
    service = client.app.state.video
    assert service._video_busy.acquire(blocking=False)
    try:
        res = client.post("/v1/video", content=clip, headers={"Content-Type": "video/x-msvideo"})
        assert res.status_code == 503 and res.headers["retry-after"] == "5"
    finally:
        service._video_busy.release()


def test_webcam_session_tracks_frames(client: TestClient) -> None:
    records = []
    for i, frame in enumerate(moving_frames(6)):
        ok, jpg = cv2.imencode(".jpg", frame)
        res = client.post("/v1/track?session=cam-1", files={"image": (f"f{i}.jpg", jpg.tobytes(), "image/jpeg")})
        assert res.status_code == 200, res.text
        records.append(res.json())
    assert [r["frame"] for r in records] == list(range(6))
    assert all(len(r["faces"]) == 1 and r["faces"][0]["track"] == 1 for r in records)
    times = [r["time"] for r in records]
    assert times[0] == 0 and times == sorted(times)
    assert set(records[-1]["faces"][0]["smoothed"]) == set(records[-1]["faces"][0]["scores"])
    # Another session starts its own tracks and clock.
    ok, jpg = cv2.imencode(".jpg", moving_frames(1)[0])
    other = client.post("/v1/track?session=cam-2", files={"image": ("f.jpg", jpg.tobytes(), "image/jpeg")}).json()
    assert other["frame"] == 0 and other["time"] == 0 and other["faces"][0]["track"] == 1


def test_bad_session_name(client: TestClient, photo: bytes) -> None:
    res = client.post("/v1/track?session=../x", files={"image": ("p.jpg", photo, "image/jpeg")})
    assert res.status_code == 400 and "session" in res.json()["error"]


def test_sessions_are_bounded(client: TestClient, photo: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import deepfer.serve.video as video

    monkeypatch.setattr(video, "MAX_SESSIONS", 2)
    service = client.app.state.video
    for name in ("a", "b", "c"):
        service.session(name)
    assert list(service._sessions) == ["b", "c"]
