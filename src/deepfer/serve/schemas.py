"""The server's answers as pydantic models: what ``/docs`` shows as each route's response schema.

The routes build their answers as plain dicts (:meth:`deepfer.inference.results.Result.to_dict`,
:meth:`deepfer.inference.timeline.TrackSummary.records`); ``tests/serve/test_serve_schemas.py``
validates real answers against these models.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class QualityRecord(BaseModel):
    score: float | None = Field(description="the detector's confidence in [0, 1]; null for haar and dlib")
    width: int = Field(description="the face's box width in pixels")
    roll: float | None = Field(description="in-plane rotation of the eye line in degrees (the crop is "
                               "rotated by it); null without landmarks")
    yaw: float | None = Field(description="approximate left-right head turn in degrees, from the nose's "
                              "offset between the eyes; null without landmarks")
    blur: float = Field(description="variance of the Laplacian of the model's crop: lower is blurrier")


class FaceRecord(BaseModel):
    box: list[int] = Field(description="x, y, width, height in the image's pixels", min_length=4, max_length=4)
    scores: dict[str, float] = Field(description="probability of each class, in the model's label order")
    label: str = Field(description="the most probable class")
    quality: QualityRecord | None = Field(description="how usable the face is")
    landmarks: list[list[float]] | None = Field(
        description="eyes, nose tip and mouth corners as [x, y] in image pixels, the image's left one "
        "first; null for detectors without landmarks (haar, dlib)")
    aligned: bool | None = Field(
        None, description="for a model that takes landmark-aligned faces (prior-attention): whether this "
        "face's crop was aligned (false: no five landmarks, so framed like FER2013); absent for other models")


class PredictRecord(BaseModel):
    """The record ``deepfer predict --format json`` writes for one image."""

    path: str | None = Field(description="the uploaded file's name (no folders), or null")
    frame: int | None = Field(None, description="always null for uploaded images")
    faces: list[FaceRecord] = Field(description="the faces found, largest first; empty when none")
    error: str | None = Field(description="'no face found' when faces is empty, else null")


class ErrorRecord(BaseModel):
    error: str


class TrackedFaceRecord(FaceRecord):
    """A face of a webcam frame (``POST /v1/track``): a :class:`FaceRecord` with its track."""

    track: int = Field(description="the face's track id: the same person while they stay in view")
    smoothed: dict[str, float] = Field(
        description="the track's class probabilities averaged over time (exponential moving average)")


class TrackRecord(BaseModel):
    """The record of one webcam frame of a session (``deepfer predict --webcam N --format json``)."""

    path: str | None = Field(description="the uploaded file's name (no folders), or null")
    frame: int = Field(description="the frame's index in the session, from 0")
    time: float = Field(description="seconds since the session's first frame")
    faces: list[TrackedFaceRecord] = Field(description="the faces found, largest first; empty when none")
    error: str | None = Field(description="'no face found' when faces is empty, else null")


class TrackSummaryRecord(BaseModel):
    """One face's track through a video (a row of ``deepfer predict --summary``)."""

    path: str | None = Field(description="the video's name")
    track: int = Field(description="the track id")
    first: float = Field(description="seconds into the video when the face was first seen")
    last: float = Field(description="seconds into the video when it was last seen")
    duration: float = Field(description="last - first, in seconds")
    frames: int = Field(description="frames the face was seen in")
    dominant: str = Field(description="the emotion with the largest share")
    shares: dict[str, float] = Field(description="each emotion's share of the track's frames (smoothed labels)")


class VideoRecord(BaseModel):
    """What ``POST /v1/video`` answers: each track's summary and the timeline picture."""

    path: str = Field(description="the video's name, as the `name` parameter gave it")
    fps: float = Field(description="the video's frame rate")
    frames: int = Field(description="frames analysed")
    duration: float = Field(description="seconds of video analysed")
    truncated: bool = Field(description="true when the video is longer than what was analysed (its first 120 s)")
    tracks: list[TrackSummaryRecord] = Field(description="one per tracked face, in order of appearance")
    errors: list[str] = Field(description="why the video stopped early (a frame that cannot be decoded), if it did")
    timeline_png: str | None = Field(
        description="each track's emotions over time, a PNG data URL; null when no face was tracked")
