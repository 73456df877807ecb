"""Who felt what when: per-track tables, summaries and timeline pictures of tracked videos.

* :class:`TimelineWriter` (``deepfer predict --timeline OUT``) writes, for each video or webcam,
  ``OUT/<stem>.timeline.csv`` (one row per track and frame, written as the frames come) and, when
  the video ends, ``OUT/<stem>.timeline.png``: per track, its smoothed probabilities over time as
  stacked bands, its thumbnail and its dominant emotion.
* :class:`TrackSummary` keeps, per track, the first and last time seen, the number of frames,
  the number of separate appearances (a person re-identified after leaving keeps one track id:
  :mod:`deepfer.inference.reid`) and the share of frames whose smoothed label is each emotion
  (``deepfer predict --summary``).
* :func:`track_table` and :func:`summarize` are the DataFrames of :meth:`Recognizer.track
  <deepfer.inference.recognizer.Recognizer.track>`.

All of them are views of the flat results table (:mod:`deepfer.inference.results`): they read its
rows, never the :class:`~deepfer.inference.results.Face` objects.

Memory stays flat however long the video: rows go to the CSV as they come; the summary holds a
few numbers and one 96-pixel thumbnail per track; the picture is drawn from the CSV read back in
chunks and averaged into at most :data:`BINS` time bins.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import cv2
import numpy as np

from deepfer.errors import DeepferError, ParameterError
from deepfer.files import atomic_open
from deepfer.inference.results import NO_FACE, Result, rows, timeline_columns, to_dataframe
from deepfer.inference.tracking import MAX_GAP

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["BINS", "COLORS", "MIN_TRACK", "TimelineWriter", "TrackSummary", "draw_timeline", "format_track_summary",
           "summarize", "timeline_columns", "track_table", "write_summary"]

BINS = 600  # time bins of the timeline picture (about one per 2 pixels of its width)
MIN_TRACK = 0.5  # seconds: shorter tracks (a false face for a few frames) are left out of the picture
MAX_ROWS = 12  # tracks drawn at most (the longest)
THUMB = 96  # thumbnail side in pixels
# Seconds unseen that end an appearance: longer than a track waits for a face hidden behind another,
# so a crossing is one appearance and leaving the view and coming back is two.
APPEARANCE_GAP = MAX_GAP
# The web page's colours (serve/static/app.js), so the picture and the page agree.
COLORS: dict[str, str] = {
    "angry": "#e53935", "disgust": "#8e24aa", "fear": "#5e35b1", "happy": "#fdd835",
    "sad": "#1e88e5", "surprise": "#fb8c00", "neutral": "#9e9e9e", "contempt": "#6d4c41",
}
_SPARE = ("#26a69a", "#ec407a", "#8d6e63", "#78909c")


def color_of(label: str, labels: list[str]) -> str:
    """The colour of an emotion in every timeline (a spare colour for unknown class names)."""
    return COLORS.get(label) or _SPARE[max(labels.index(label), 0) % len(_SPARE)]


# -- per-track summary ------------------------------------------------------------------------------

@dataclass
class _Track:
    first: float
    last: float
    frames: int = 0
    appearances: int = 1
    counts: dict[str, int] = field(default_factory=dict)
    thumb: np.ndarray | None = None
    thumb_area: int = -1


class TrackSummary:
    """Per track of one video: first and last time seen, frames, separate appearances (spells in
    view apart by more than :data:`APPEARANCE_GAP` s), and the share of frames whose smoothed
    label is each emotion.

    Args:
        labels: the class names.
        path: the video's name (the ``path`` of the summary's records).

    Example:
        >>> s = TrackSummary(["happy", "sad"], "v.mp4")
        >>> box = {"x": 0, "y": 0, "w": 9, "h": 9}
        >>> s.add({"track": 1, "time": 0.5, "label": "happy", "smoothed_label": "happy", **box})
        >>> s.add({"track": 1, "time": 1.5, "label": "sad", "smoothed_label": "sad", **box})
        >>> r = s.records()[0]
        >>> r["first"], r["last"], r["duration"], r["appearances"], r["dominant"], r["shares"]
        (0.5, 1.5, 1.0, 1, 'happy', {'happy': 0.5, 'sad': 0.5})
    """

    def __init__(self, labels: list[str], path: str | None = None) -> None:
        self.labels = list(labels)
        self.path = path
        self.tracks: dict[int, _Track] = {}

    def add(self, row: Mapping[str, Any], picture: np.ndarray | None = None) -> None:
        """Count one row of the flat results table (:func:`deepfer.inference.results.rows`): a face
        of track ``row["track"]`` seen at ``row["time"]``; rows without a track are skipped.
        ``picture``: the frame, BGR, for a thumbnail."""
        track = row.get("track")
        if not isinstance(track, (int, np.integer)):  # None, or a DataFrame's missing value
            return
        track, time = int(track), float(row["time"])
        tr = self.tracks.get(track)
        if tr is None:
            tr = self.tracks[track] = _Track(time, time)
        if time - tr.last > APPEARANCE_GAP:
            tr.appearances += 1
        tr.first, tr.last = min(tr.first, time), max(tr.last, time)
        tr.frames += 1
        label = _text(row.get("smoothed_label")) or row["label"]
        tr.counts[label] = tr.counts.get(label, 0) + 1
        box = (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"]))
        area = box[2] * box[3]
        if picture is not None and area > tr.thumb_area:  # the largest view of the face
            tr.thumb, tr.thumb_area = _thumbnail(picture, box), area

    def records(self) -> list[dict[str, Any]]:
        """One dict per track, in order of appearance: ``path``, ``track``, ``first``, ``last``,
        ``duration`` (seconds), ``frames``, ``appearances``, ``dominant`` (the emotion with the
        largest share) and ``shares`` (emotion -> share of the track's frames)."""
        out = []
        for track, tr in sorted(self.tracks.items(), key=lambda kv: (kv[1].first, kv[0])):
            shares = {k: tr.counts.get(k, 0) / tr.frames for k in self.labels}
            out.append({"path": self.path, "track": track, "first": round(tr.first, 3), "last": round(tr.last, 3),
                        "duration": round(tr.last - tr.first, 3), "frames": tr.frames,
                        "appearances": tr.appearances,
                        "dominant": max(self.labels, key=lambda k: (shares[k], -self.labels.index(k))),
                        "shares": {k: round(v, 4) for k, v in shares.items()}})
        return out

    def thumbnails(self) -> dict[int, np.ndarray]:
        """Each track's thumbnail (BGR, THUMB x THUMB), where a frame was given."""
        return {k: tr.thumb for k, tr in self.tracks.items() if tr.thumb is not None}


def _text(value: Any) -> str | None:
    """A text cell, or ``None`` for an empty one (``None``, NaN, ``pd.NA``)."""
    return value if isinstance(value, str) else None


def format_track_summary(records: list[dict[str, Any]], labels: list[str]) -> str:
    """The summary records as an aligned text table (``deepfer predict --summary``)."""
    cw = max([7, *(len(k) for k in labels)])
    head = (f"{'video':<24} {'track':>5} {'first':>8} {'last':>8} {'seconds':>8} {'times':>5}  {'dominant':<9} "
            + " ".join(f"{k:>{cw}}" for k in labels))
    lines = [head.rstrip()]
    for r in records:
        name = Path(r["path"] or "-").name
        name = name if len(name) <= 24 else "..." + name[-21:]
        lines.append(f"{name:<24} {r['track']:>5} {_clock(r['first']):>8} {_clock(r['last']):>8} "
                     f"{r['duration']:>8.1f} {r['appearances']:>5}  {r['dominant']:<9} "
                     + " ".join(f"{100 * r['shares'][k]:>{cw - 1}.0f}%" for k in labels))
    if not records:
        lines.append("(no face was tracked)")
    return "\n".join(lines) + "\n"


def write_summary(records: list[dict[str, Any]], fmt: str, stream: IO[str], labels: list[str]) -> None:
    """Write the summary records as ``table`` (:func:`format_track_summary`), ``json`` (one object per
    track) or ``csv`` (one row per track, a ``share_<emotion>`` column per class)."""
    import json

    if fmt == "json":
        for r in records:
            stream.write(json.dumps(r) + "\n")
    elif fmt == "csv":
        base = ["path", "track", "first", "last", "duration", "frames", "appearances", "dominant"]
        out = csv.writer(stream, lineterminator="\n")
        out.writerow(base + [f"share_{k}" for k in labels])
        for r in records:
            out.writerow([r[k] if r[k] is not None else "" for k in base] + [f"{r['shares'][k]:.4f}" for k in labels])
    else:
        stream.write(format_track_summary(records, labels))
    stream.flush()


def _thumbnail(bgr: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A THUMB x THUMB BGR picture of the face with a margin; what lies outside the frame (a carried
    box can reach past its edge) is dark grey."""
    if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    x, y, w, h = box
    side = max(1, int(max(w, h) * 1.2))
    x0, y0 = x + w // 2 - side // 2, y + h // 2 - side // 2
    canvas = np.full((side, side, 3), 40, np.uint8)
    ih, iw = bgr.shape[:2]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + side, iw), min(y0 + side, ih)
    if xa < xb and ya < yb:
        canvas[ya - y0 : yb - y0, xa - x0 : xb - x0] = bgr[ya:yb, xa:xb]
    return cv2.resize(canvas, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


# -- the CSV and the picture ------------------------------------------------------------------------

class TimelineWriter:
    """Writes ``<stem>.timeline.csv`` and ``<stem>.timeline.png`` for each video or webcam of a run.

    Args:
        out: the folder to write to (made if missing).
        labels: the class names.

    Raises:
        ParameterError: ``out`` exists and is not a folder.
    """

    def __init__(self, out: str | Path, labels: list[str]) -> None:
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise ParameterError("out", f"out {out}: not a folder")
        self.labels = list(labels)
        self.written: list[Path] = []
        self._path: str | None = None
        self._file: IO[str] | None = None
        self._csv: Any = None
        self._summary: TrackSummary | None = None
        self._stems: set[str] = set()
        self._csv_path: Path | None = None

    def write(self, result: Result) -> None:
        """Add a frame's tracked faces (images and untracked results are ignored)."""
        if result.frame is None or result.time is None:
            return
        if result.path != self._path or self._file is None:
            self._finish()
            self._start(result.path or "video")
        summary, out, file = self._summary, self._csv, self._file
        if summary is None or out is None or file is None:  # _start made them
            return
        bgr = result.picture.color() if result.picture is not None else None
        for row in rows(result, self.labels):
            if row["track"] is None:
                continue
            summary.add(row, bgr)
            out.writerow(self._cells(row))
        try:
            file.flush()  # an interrupted run keeps every row written so far
        except OSError as exc:
            self._fail(exc)

    def _cells(self, row: dict[str, Any]) -> list[Any]:
        """A flat-table row as the timeline CSV writes it (the raw scores where none are smoothed)."""
        cells = {**row, "time": f"{row['time']:.4f}", "smoothed_label": row["smoothed_label"] or row["label"],
                 "detected": "" if row["detected"] is None else int(row["detected"])}
        for k in self.labels:
            smoothed = row[f"smoothed_{k}"]
            cells[k] = f"{row[k]:.5f}"
            cells[f"smoothed_{k}"] = f"{row[k] if smoothed is None else smoothed:.5f}"
        return [cells[c] for c in timeline_columns(self.labels)]

    def close(self) -> list[Path]:
        """Finish the last video (its picture is drawn now); returns every file written."""
        self._finish()
        return self.written

    def _start(self, path: str) -> None:
        stem = _stem(path)
        n, unique = 1, stem
        while unique in self._stems:  # two inputs with the same file name
            unique, n = f"{stem}-{n}", n + 1
        self._stems.add(unique)
        self._path = path
        self._csv_path = self.out / f"{unique}.timeline.csv"
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._file = open(self._csv_path, "w", newline="", encoding="utf-8")  # noqa: SIM115 -- closed in _finish
        except OSError as exc:
            raise DeepferError(f"--timeline {self._csv_path}: cannot write ({exc.strerror or exc})") from None
        self._csv = csv.writer(self._file, lineterminator="\n")
        self._summary = TrackSummary(self.labels, path)
        self.written.append(self._csv_path)
        try:
            self._csv.writerow(timeline_columns(self.labels))
        except OSError as exc:
            self._fail(exc)

    def _finish(self) -> None:
        if self._file is None or self._csv_path is None or self._summary is None:
            return
        try:
            self._file.close()
        except OSError as exc:
            self._fail(exc)
        self._file = None
        png = self._csv_path.with_suffix(".png")
        try:
            with atomic_open(png) as f:  # a full disk leaves no truncated picture behind
                draw_timeline(self._csv_path, f, self.labels, self._summary, title=Path(self._path or "").name)
        except OSError as exc:
            raise DeepferError(f"--timeline {png}: cannot write ({exc.strerror or exc})") from None
        self.written.append(png)

    def _fail(self, exc: OSError) -> None:
        """A row could not be written (a full disk): the CSV is incomplete, so it is removed."""
        path = self._csv_path
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None
        if path is not None:
            path.unlink(missing_ok=True)
            if path in self.written:
                self.written.remove(path)
        raise DeepferError(f"--timeline {path}: cannot write ({exc.strerror or exc}); the incomplete file "
                           "was removed") from None


def _stem(path: str) -> str:
    name = Path(path).stem if not path.startswith("webcam:") else path.replace(":", "")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "video"


def _binned(csv_path: Path, labels: list[str], tracks: Iterable[int], end: float,
            bins: int) -> dict[int, np.ndarray]:
    """Each track's mean smoothed probabilities per time bin, (bins, classes); 0 where absent."""
    import pandas as pd

    keep = set(tracks)
    sums = {t: np.zeros((bins, len(labels))) for t in keep}
    counts = {t: np.zeros(bins) for t in keep}
    cols = ["track", "time", *(f"smoothed_{k}" for k in labels)]
    for chunk in pd.read_csv(csv_path, usecols=cols, chunksize=100_000):
        chunk = chunk[chunk.track.isin(keep)]
        idx = np.minimum((chunk.time.to_numpy() / max(end, 1e-9) * bins).astype(int), bins - 1)
        probs = chunk[cols[2:]].to_numpy(np.float64)
        for t in np.unique(chunk.track.to_numpy()):
            m = chunk.track.to_numpy() == t
            np.add.at(sums[int(t)], idx[m], probs[m])
            np.add.at(counts[int(t)], idx[m], 1)
    return {t: sums[t] / np.maximum(counts[t], 1)[:, None] for t in keep}


def draw_timeline(csv_path: str | Path, png_path: str | Path | IO[bytes], labels: list[str],
                  summary: TrackSummary, title: str = "") -> Path | IO[bytes]:
    """Draw the timeline picture of one video from its timeline CSV.

    One row per track (the :data:`MAX_ROWS` longest that last at least :data:`MIN_TRACK` s, in
    order of appearance): the track's thumbnail, its id, dominant emotion and when it was seen,
    and its smoothed probabilities over the video's time as stacked bands (blank where the track
    is not in view).

    Args:
        csv_path: the ``.timeline.csv`` written by :class:`TimelineWriter`.
        png_path: the picture to write (a file name, or a file opened for writing bytes).
        labels: the class names.
        summary: the video's track summary (thumbnails, dominant emotions).
        title: a heading (the video's name).

    Returns:
        ``png_path``.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display; set before pyplot is imported
    import matplotlib.pyplot as plt

    records = summary.records()
    end = max((r["last"] for r in records), default=0.0)
    shown = [r for r in records if r["duration"] >= MIN_TRACK]
    shown = sorted(sorted(shown, key=lambda r: -r["duration"])[:MAX_ROWS], key=lambda r: (r["first"], r["track"]))
    left_out = len(records) - len(shown)
    bins = max(1, min(BINS, int(end * 10) + 1))  # no finer than 0.1 s
    series = _binned(Path(csv_path), labels, [r["track"] for r in shown], end, bins) if shown else {}
    thumbs = summary.thumbnails()
    rows = max(len(shown), 1)
    height = 1.2 + 1.15 * rows  # inches: title and legend, then one row per track
    fig = plt.figure(figsize=(12, height), dpi=110)
    grid = fig.add_gridspec(rows, 2, width_ratios=[1, 11], hspace=0.45, wspace=0.02,
                            top=1 - 1.0 / height, bottom=0.5 / height)
    colors = [color_of(k, labels) for k in labels]
    x = (np.arange(bins) + 0.5) * (end / bins) if bins else np.zeros(0)
    axes = []
    for i, r in enumerate(shown):
        ax_img = fig.add_subplot(grid[i, 0])
        ax_img.axis("off")
        if r["track"] in thumbs:
            ax_img.imshow(cv2.cvtColor(thumbs[r["track"]], cv2.COLOR_BGR2RGB))
        ax = fig.add_subplot(grid[i, 1], sharex=axes[0] if axes else None)
        axes.append(ax)
        # Steps, not slopes: a gap where the track is out of view stays a clean gap.
        ax.stackplot(x, series[r["track"]].T, colors=colors, linewidth=0, step="mid")
        ax.set_ylim(0, 1)
        ax.set_xlim(0, max(end, 1e-3))
        ax.set_yticks([])
        dom = r["dominant"]
        times = f", {r['appearances']} appearances" if r["appearances"] > 1 else ""
        ax.set_title(f"track {r['track']}: mostly {dom} ({100 * r['shares'][dom]:.0f}% of its frames), "
                     f"seen {_clock(r['first'])}-{_clock(r['last'])}{times}", loc="left", fontsize=10)
        if i < len(shown) - 1:
            ax.tick_params(labelbottom=False)
    if axes:
        axes[-1].set_xlabel("time (s)")
    else:
        fig.text(0.5, 0.5, "no face was tracked for half a second or more", ha="center", va="center")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors]
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False, fontsize=9,
               bbox_to_anchor=(0.55, 1 - 0.4 / height))
    note = ""
    if left_out:
        note = (f"   ({left_out} track{'s' if left_out != 1 else ''} shorter than {MIN_TRACK:g} s"
                f"{f' or beyond the {MAX_ROWS} longest' if len(records) - left_out >= MAX_ROWS else ''} not drawn)")
    fig.text(0.01, 1 - 0.12 / height, f"{title}: smoothed emotion probabilities per tracked face{note}",
             fontsize=10, va="top")
    if isinstance(png_path, str):
        png_path = Path(png_path)
    try:
        fig.savefig(png_path, format="png")
    finally:
        plt.close(fig)
    return png_path


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:04.1f}"


# -- DataFrames ----------------------------------------------------------------------------------------

def track_table(results: Iterable[Result], labels: list[str]) -> pd.DataFrame:
    """The flat results table's rows of tracked faces (:func:`deepfer.inference.results.to_dataframe`):
    one per face and frame, with the ``track``, ``time`` and ``smoothed`` column groups filled.
    Error records (other than frames without a face) are collected in ``attrs["errors"]``."""
    errors: list[str] = []

    def watched(items: Iterable[Result]) -> Iterable[Result]:
        for r in items:
            if r.error and not r.faces and r.error != NO_FACE:
                errors.append(r.error)
            yield r

    table = to_dataframe(watched(results), labels)
    table = table[table["track"].notna()].reset_index(drop=True)
    table.attrs.update(labels=list(labels), errors=errors)
    return table


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """The per-track summary of a :func:`track_table` (e.g. ``summarize(Recognizer().track("clip.mp4"))``).

    Returns:
        One row per video and track: ``path``, ``track``, ``first``, ``last``, ``duration``
        (seconds), ``frames``, ``appearances``, ``dominant``, and one column per emotion with the share of the
        track's frames whose smoothed label it is.
    """
    import pandas as pd

    labels = list(table.attrs.get("labels") or [c.removeprefix("smoothed_") for c in table.columns
                                                 if c.startswith("smoothed_") and c != "smoothed_label"])
    records: list[dict[str, Any]] = []
    for path, group in table.groupby("path", sort=False, dropna=False):
        summary = TrackSummary(labels, None if isinstance(path, float) and math.isnan(path) else str(path))
        for row in group.to_dict("records"):
            summary.add(row)
        records += summary.records()
    base = ["path", "track", "first", "last", "duration", "frames", "appearances", "dominant"]
    out = pd.DataFrame([{**{k: r[k] for k in base}, **r["shares"]} for r in records], columns=base + labels)
    out["track"] = out["track"].astype("Int64")
    return out
