"""What recognition gives: a :class:`Face` per face found, a :class:`Result` per image or video
frame, and the one flat results table they make (one row per face, and one row with an empty box for
an image or frame that gave none), with named column groups (:func:`column_groups`: box, scores,
smoothed scores, quality, track, time, as py-feat's ``Fex``). Every table deepfer writes is a view
of it: ``predict --format csv`` and :meth:`~deepfer.inference.Recognizer.predict_table`
(:func:`columns`), the timeline CSV (:func:`timeline_columns`) and the per-track summary
(:class:`~deepfer.inference.timeline.TrackSummary` reads its rows).

Each face carries its :class:`~deepfer.vision.quality.Quality` (detector score, width in pixels,
roll, approximate yaw, blur) and the detector's landmarks where it gives them; the JSON record of
``deepfer predict --format json`` and of the server is documented in the README ("The JSON
record").

Example:
    >>> face = Face((10, 20, 48, 48), {"happy": 0.9, "sad": 0.1}, "happy")
    >>> rows(Result("a.jpg", None, [face]), ["happy", "sad"])[0]["score"]
    0.9
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deepfer.vision.quality import Quality

if TYPE_CHECKING:
    import pandas as pd

    from deepfer.vision import Box, Picture, Point

NO_FACE = "no face found"  # the error of an image or frame that was read but holds no face


@dataclass(frozen=True)
class Face:
    """One recognised face.

    Attributes:
        box: (x, y, w, h) of the detector's box in the image's pixels (the whole image with
            ``detector=None``).
        scores: probability of each class, in the model's label order.
        label: the most probable class.
        quality: the detector's score, the face's width, roll, approximate yaw and blur
            (:class:`~deepfer.vision.quality.Quality`); ``None`` only for faces made by hand.
        landmarks: the detector's landmark points in image pixels (eyes, nose, mouth corners, in
            the order of :data:`~deepfer.vision.geometry.LANDMARKS`), where it gives them.
        track: in a video or webcam stream, the id of the face's track (the same person while
            they stay in view), else ``None``.
        smoothed: in a video or webcam stream, the track's class probabilities averaged over
            time (:class:`~deepfer.inference.tracking.ScoreSmoother`), else ``None``.
        aligned: for a model that takes landmark-aligned faces, whether this face's crop was
            aligned (``False``: no five landmarks, or implausible ones, so the FER2013 framing);
            ``None`` for the other models.
    """

    box: Box
    scores: dict[str, float]
    label: str
    quality: Quality | None = None
    landmarks: tuple[Point, ...] | None = None
    track: int | None = None
    smoothed: dict[str, float] | None = None
    aligned: bool | None = None

    @property
    def score(self) -> float:
        """The probability of :attr:`label`."""
        return self.scores[self.label]

    @property
    def smoothed_label(self) -> str | None:
        """The most probable class of :attr:`smoothed` (``None`` outside a stream)."""
        return max(self.smoothed, key=self.smoothed.__getitem__) if self.smoothed else None

    def to_dict(self, digits: int | None = 6) -> dict[str, Any]:
        """``{"box": [x, y, w, h], "scores": {...}, "label": ..., "quality": {...} | null,
        "landmarks": [[x, y], ...] | null}`` (scores rounded to ``digits``, landmarks to 0.1 px), with
        ``"track"`` and ``"smoothed"`` for a face of a video or webcam frame and ``"aligned"`` for a
        model that takes landmark-aligned faces."""
        def rounded(d: dict[str, float]) -> dict[str, float]:
            return {k: (round(v, digits) if digits is not None else v) for k, v in d.items()}

        points = [[round(x, 1), round(y, 1)] for x, y in self.landmarks] if self.landmarks else None
        out: dict[str, Any] = {"box": list(self.box), "scores": rounded(self.scores), "label": self.label,
                               "quality": self.quality.to_dict() if self.quality is not None else None,
                               "landmarks": points}
        if self.track is not None:
            out["track"] = self.track
        if self.smoothed is not None:
            out["smoothed"] = rounded(self.smoothed)
        if self.aligned is not None:
            out["aligned"] = self.aligned
        return out


@dataclass(frozen=True)
class Result:
    """What one image or video frame gave.

    Attributes:
        path: the input's name (``None`` for in-memory images).
        frame: the frame index in a video or webcam stream, ``None`` for images.
        faces: the faces found, largest first.
        error: why nothing was recognised (unreadable file, ``"no face found"``), else ``None``.
        decoded: whether the input could be read at all (an image without a face was read).
        picture: the decoded image, kept only when annotation asks for it.
        time: a video frame's time in seconds (index / fps), a webcam frame's seconds since the
            stream started; ``None`` for images.
        fps: a video frame's video's frame rate (``None`` for images and webcams).
    """

    path: str | None
    frame: int | None
    faces: list[Face]
    error: str | None = None
    decoded: bool = True
    picture: Picture | None = field(default=None, repr=False, compare=False)
    time: float | None = None
    fps: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines record of ``deepfer predict --format json`` (``"time"`` for frames)."""
        out: dict[str, Any] = {"path": self.path, "frame": self.frame}
        if self.time is not None:
            out["time"] = round(self.time, 6)
        return {**out, "faces": [f.to_dict() for f in self.faces], "error": self.error}


# The quality columns of a row, after the class probabilities (Quality's fields, named apart from
# ``score``, the label's probability).
QUALITY_COLUMNS = ("detector_score", "face_width", "roll", "yaw", "blur")


def column_groups(labels: list[str]) -> dict[str, list[str]]:
    """The flat table's columns by group: ``input`` (``path``, ``frame``, ``face``: index in the
    image), ``time`` (seconds, frames only), ``track`` (frames only), ``box`` (``x``, ``y``, ``w``,
    ``h``), ``label`` (``label``, ``score``), ``scores`` (one column per class), ``smoothed``
    (``smoothed_label`` and ``smoothed_<class>``, frames only), ``quality`` (``detector_score``,
    ``face_width``, ``roll``, ``yaw``, ``blur``) and ``error``."""
    return {"input": ["path", "frame", "face"], "time": ["time"], "track": ["track"], "box": ["x", "y", "w", "h"],
            "label": ["label", "score"], "scores": list(labels),
            "smoothed": ["smoothed_label", *(f"smoothed_{k}" for k in labels)],
            "quality": list(QUALITY_COLUMNS), "error": ["error"]}


def table_columns(labels: list[str]) -> list[str]:
    """Every column of the flat table, in order (see :func:`column_groups`)."""
    g = column_groups(labels)
    return ["path", "frame", *g["time"], "face", *g["track"], *g["box"], *g["label"], *g["scores"], *g["smoothed"],
            *g["quality"], *g["error"]]


def columns(labels: list[str]) -> list[str]:
    """The view of ``deepfer predict --format csv``: the flat table without the smoothed scores."""
    smoothed = set(column_groups(labels)["smoothed"])
    return [c for c in table_columns(labels) if c not in smoothed]


def timeline_columns(labels: list[str]) -> list[str]:
    """The view of the timeline CSV (tracked faces only): ``track``, ``frame``, ``time``, the box,
    ``label``, ``smoothed_label``, the raw probabilities and the smoothed ones (``smoothed_<class>``)."""
    g = column_groups(labels)
    return ["track", "frame", "time", *g["box"], "label", "smoothed_label", *g["scores"], *g["smoothed"][1:]]


def rows(result: Result, labels: list[str]) -> list[dict[str, Any]]:
    """The rows of one result in the flat table (``None`` where a value does not apply).

    Args:
        result: one image's or frame's result.
        labels: the class names, in column order.

    Returns:
        One dict per face (keys: :func:`table_columns`), or one with an empty box if there is none.
    """
    base = {"path": result.path, "frame": result.frame, "time": result.time}
    if not result.faces:
        empty = dict.fromkeys(table_columns(labels))
        return [{**empty, **base, "error": result.error}]
    out = []
    for i, face in enumerate(result.faces):
        x, y, w, h = face.box
        q = face.quality
        quality = dict.fromkeys(QUALITY_COLUMNS) if q is None else dict(zip(
            QUALITY_COLUMNS, (q.score, q.width, q.roll, q.yaw, q.blur)))
        smooth = face.smoothed or {}
        out.append({**base, "face": i, "track": face.track, "x": x, "y": y, "w": w, "h": h, "label": face.label,
                    "score": face.score, **{k: face.scores[k] for k in labels},
                    "smoothed_label": face.smoothed_label, **{f"smoothed_{k}": smooth.get(k) for k in labels},
                    **quality, "error": result.error})
    return out


def to_dataframe(results: Iterable[Result], labels: list[str]) -> pd.DataFrame:
    """The flat table: one row per face (see :func:`rows`); integer columns are pandas' nullable
    ``Int64``; ``table.attrs["labels"]`` holds the class names.

    Args:
        results: the results, in order.
        labels: the class names, in column order.

    Returns:
        A DataFrame with the columns of :func:`table_columns`.
    """
    import pandas as pd  # only the DataFrame API needs pandas

    table = pd.DataFrame([r for res in results for r in rows(res, labels)], columns=table_columns(labels))
    for col in ("frame", "face", "track", "x", "y", "w", "h", "face_width"):
        table[col] = table[col].astype("Int64")
    g = column_groups(labels)
    for col in ("time", "score", *labels, *g["smoothed"][1:], "detector_score", "roll", "yaw", "blur"):
        table[col] = table[col].astype("float64")
    table.attrs["labels"] = list(labels)
    return table
