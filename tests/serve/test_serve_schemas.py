"""/docs describes what /v1/video and /v1/track answer: each has a response schema (pydantic
models), and real answers validate against it."""

from __future__ import annotations

import cv2
import pytest
from fastapi.testclient import TestClient
from test_video_api import clip, moving_frames  # noqa: F401

from deepfer.serve.schemas import TrackRecord, VideoRecord


def _schema(client: TestClient, path: str) -> dict:
    spec = client.get("/openapi.json").json()
    content = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
    ref = content["schema"]["$ref"].split("/")[-1]
    return spec["components"]["schemas"][ref]


def test_video_answer_has_a_schema(client: TestClient, clip: bytes) -> None:  # noqa: F811
    schema = _schema(client, "/v1/video")
    assert {"path", "fps", "frames", "duration", "truncated", "tracks", "errors", "timeline_png"} <= set(
        schema["properties"])
    res = client.post("/v1/video?name=clip.avi", content=clip, headers={"Content-Type": "video/x-msvideo"})
    assert res.status_code == 200
    answer = VideoRecord.model_validate(res.json(), strict=False)
    assert answer.tracks[0].track == 1 and set(answer.tracks[0].shares) == set(res.json()["tracks"][0]["shares"])


def test_track_answer_has_a_schema(client: TestClient) -> None:
    schema = _schema(client, "/v1/track")
    assert {"path", "frame", "time", "faces", "error"} <= set(schema["properties"])
    ok, jpeg = cv2.imencode(".jpg", moving_frames(1)[0])
    res = client.post("/v1/track?session=s1", files={"image": ("f.jpg", jpeg.tobytes(), "image/jpeg")})
    assert res.status_code == 200, res.text
    record = TrackRecord.model_validate(res.json())
    assert record.frame == 0 and record.faces[0].track == 1 and record.faces[0].smoothed
