"""Results as text: JSON Lines, CSV and a readable table (``deepfer predict --format``). The CSV
is a view of the flat results table (:func:`deepfer.inference.results.columns`), whose DataFrame
:meth:`~deepfer.inference.recognizer.Recognizer.predict_table` gives."""

from __future__ import annotations

import csv
import json
import math
from typing import IO, Any, Protocol

from deepfer.errors import DeepferError
from deepfer.inference.results import NO_FACE, Result, columns, rows

FORMATS = ("table", "json", "csv")


class Writer(Protocol):
    def write(self, result: Result) -> None: ...

    def close(self) -> None: ...


class JsonLinesWriter:
    """One JSON object per image or frame: ``{"path", "frame", "faces", "error"}``."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, result: Result) -> None:
        self.stream.write(json.dumps(result.to_dict()) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


# The columns that only frames of videos and webcams fill.
STREAM_COLUMNS = ("time", "track", "detected")


class CsvWriter:
    """One CSV row per face (header first), see :func:`rows`; without ``frames`` (photos only)
    the ``time`` and ``track`` columns, always empty for photos, are left out."""

    def __init__(self, stream: IO[str], labels: list[str], frames: bool = True) -> None:
        self.labels = labels
        # A view of the flat table: its columns without the smoothed scores (and without the stream
        # columns for photos only).
        names = columns(labels) if frames else [c for c in columns(labels) if c not in STREAM_COLUMNS]
        self.writer = csv.DictWriter(stream, fieldnames=names, lineterminator="\n", extrasaction="ignore")
        self.writer.writeheader()
        self.stream = stream

    def write(self, result: Result) -> None:
        for row in rows(result, self.labels):
            self.writer.writerow({k: _csv_value(row[k]) for k in self.writer.fieldnames})
        self.stream.flush()

    def close(self) -> None:
        pass


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6f}" if math.isfinite(v) else ""
    return v


class TableWriter:
    """Aligned text: path, frame, box, label and score, then every class's probability; with
    ``frames`` (videos, webcams) each frame's time in seconds and each face's track id too, and
    frames without a face are left out (an image without one keeps its ``no face found`` line); a
    video face whose box the tracker carried (the detector did not run on, or lost, the frame)
    ends with ``(carried)``.

    Args:
        stream: where to write.
        labels: the class names (columns as wide as the longest name).
        path_width: width of the path column; longer paths keep their end.
        frames: the inputs include videos or webcams.
    """

    def __init__(self, stream: IO[str], labels: list[str], path_width: int = 32, frames: bool = False) -> None:
        self.stream = stream
        self.labels = labels
        self.frames = frames
        self.pw = max(8, min(path_width, 60))
        self.cw = max([7, *(len(name) for name in labels)])
        stream_head = f"{'time':>8} {'track':>5}  " if frames else ""
        head = (f"{'path':<{self.pw}} {'frame':>6}  {stream_head}{'box (x,y,w,h)':<20} {'label':<9} {'score':>5}  "
                + " ".join(f"{name:>{self.cw}}" for name in labels))
        stream.write(head.rstrip() + "\n")

    def _path(self, path: str | None) -> str:
        p = path or "-"
        return p if len(p) <= self.pw else "..." + p[-(self.pw - 3):]

    def write(self, result: Result) -> None:
        lead = f"{self._path(result.path):<{self.pw}} {'-' if result.frame is None else result.frame:>6}  "
        time = "-" if result.time is None else f"{result.time:.2f}"
        if not result.faces:
            if result.frame is not None and result.error == NO_FACE:  # an empty frame: nothing to show
                return
            error = result.error or ""
            if result.path and error.startswith(result.path + ": "):  # the path is in its own column
                error = error[len(result.path) + 2 :]
            stream_cells = f"{time:>8} {'-':>5}  " if self.frames else ""
            self.stream.write(f"{lead}{stream_cells}{'-':<20} error: {error}\n")
        for face in result.faces:
            box = ",".join(str(v) for v in face.box)
            probs = " ".join(f"{face.scores[k]:>{self.cw}.3f}" for k in self.labels)
            track = "-" if face.track is None else str(face.track)
            stream_cells = f"{time:>8} {track:>5}  " if self.frames else ""
            carried = "  (carried)" if face.detected is False else ""
            self.stream.write(f"{lead}{stream_cells}{box:<20} {face.label:<9} {face.score:>5.2f}  {probs}{carried}\n")
        self.stream.flush()

    def close(self) -> None:
        pass


def make_writer(fmt: str, stream: IO[str], labels: list[str], path_width: int = 32,
                frames: bool = True) -> Writer:
    """The writer for ``--format`` ``table``, ``json`` or ``csv``; ``frames``: the inputs include
    videos or webcams (the table and the CSV show each frame's time and each face's track)."""
    if fmt == "json":
        return JsonLinesWriter(stream)
    if fmt == "csv":
        return CsvWriter(stream, labels, frames)
    if fmt == "table":
        return TableWriter(stream, labels, path_width, frames)
    raise DeepferError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
