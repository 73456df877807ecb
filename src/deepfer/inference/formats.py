"""Results as text: JSON Lines, CSV and a readable table (``deepfer predict --format``). The CSV
is a view of the flat results table (:func:`deepfer.inference.results.columns`), whose DataFrame
:meth:`~deepfer.inference.recognizer.Recognizer.predict_table` gives."""

from __future__ import annotations

import csv
import json
import math
from typing import IO, Any, Protocol

from deepfer.errors import DeepferError
from deepfer.inference.results import Result, columns, rows

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


class CsvWriter:
    """One CSV row per face (header first), see :func:`rows`."""

    def __init__(self, stream: IO[str], labels: list[str]) -> None:
        self.labels = labels
        # A view of the flat table: its columns without the smoothed scores.
        self.writer = csv.DictWriter(stream, fieldnames=columns(labels), lineterminator="\n", extrasaction="ignore")
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
    """Aligned text: path, frame, box, label and score, then every class's probability.

    Args:
        stream: where to write.
        labels: the class names (columns, shortened to 7 characters).
        path_width: width of the path column; longer paths keep their end.
    """

    def __init__(self, stream: IO[str], labels: list[str], path_width: int = 32) -> None:
        self.stream = stream
        self.labels = labels
        self.pw = max(8, min(path_width, 60))
        head = (f"{'path':<{self.pw}} {'frame':>6}  {'box (x,y,w,h)':<20} {'label':<9} {'score':>5}  "
                + " ".join(f"{name[:7]:>7}" for name in labels))
        stream.write(head.rstrip() + "\n")

    def _path(self, path: str | None) -> str:
        p = path or "-"
        return p if len(p) <= self.pw else "..." + p[-(self.pw - 3):]

    def write(self, result: Result) -> None:
        lead = f"{self._path(result.path):<{self.pw}} {'-' if result.frame is None else result.frame:>6}  "
        if not result.faces:
            error = result.error or ""
            if result.path and error.startswith(result.path + ": "):  # the path is in its own column
                error = error[len(result.path) + 2 :]
            self.stream.write(f"{lead}{'-':<20} error: {error}\n")
        for face in result.faces:
            box = ",".join(str(v) for v in face.box)
            probs = " ".join(f"{face.scores[k]:>7.3f}" for k in self.labels)
            self.stream.write(f"{lead}{box:<20} {face.label:<9} {face.score:>5.2f}  {probs}\n")
        self.stream.flush()

    def close(self) -> None:
        pass


def make_writer(fmt: str, stream: IO[str], labels: list[str], path_width: int = 32) -> Writer:
    """The writer for ``--format`` ``table``, ``json`` or ``csv``."""
    if fmt == "json":
        return JsonLinesWriter(stream)
    if fmt == "csv":
        return CsvWriter(stream, labels)
    if fmt == "table":
        return TableWriter(stream, labels, path_width)
    raise DeepferError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
