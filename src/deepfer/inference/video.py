"""Frames from video files and webcams through ``cv2.VideoCapture``, and annotated video out.

Headless OpenCV (``opencv-python-headless``) has no window: a webcam run prints its results and,
with ``--annotate``, writes them to a video file instead of showing them.

OpenCV reports a frame its decoder rejects (a corrupt or truncated stream) as the end of the
stream; :func:`iter_frames` tells the two apart for video files and raises :class:`DataError` for
the former, so that a broken video is reported rather than silently cut short.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from deepfer.vision import MAX_PIXELS
from deepfer.errors import DataError, DeepferError, ParameterError
from deepfer.files import not_a_file

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                              ".flv", ".3gp", ".ts"})
DEFAULT_FPS = 30.0
MIN_FPS = 0.001  # one frame per 1,000 s: a slow timelapse
# Containers written as MPEG-4 files: H.264 where the installed OpenCV's FFmpeg can encode it (what
# browsers play), else MPEG-4 Part 2 (opencv-python's wheels ship FFmpeg without an H.264 encoder).
_MP4 = frozenset({".mp4", ".m4v", ".mov", ".mkv"})
_H264 = ("avc1", "H.264")
_MPEG4 = ("mp4v", "MPEG-4 Part 2: this OpenCV cannot write H.264, so browsers may not play it; "
          "ffmpeg -i IN -c:v libx264 OUT converts it")
# After a failed grab, how many more grabs look for frames behind it: measured with OpenCV's FFmpeg
# backend, a frame the decoder rejects fails one grab and the next frame's grab succeeds, while at
# the real end every grab fails at once (and costs nothing).
_PROBES = 3


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence what FFmpeg and OpenCV's capture backends write straight to file descriptor 2
    ("moov atom not found", "can't open camera by index"): we report the failure ourselves."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # pytest's capture, notebooks
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def open_video(path: str | Path, threads: int | None = None) -> cv2.VideoCapture:
    """An opened capture of a video file; ``threads``: its decoder's threads (``None``: one per core,
    FFmpeg's default).

    Raises:
        DataError: the file is missing, no backend can decode it, or its frames are larger than
            :data:`~deepfer.vision.pictures.MAX_PIXELS` (refused before any is decoded).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {not_a_file(path)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    with _quiet_stderr():
        cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, threads] if threads else [])
    if not cap.isOpened():
        raise DataError(f"{path}: cannot open video (unsupported, truncated or corrupt)")
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if w * h > MAX_PIXELS:  # 0 x 0 when the backend does not say: each frame is checked then
        cap.release()
        raise DataError(f"{path}: video frames of {w}x{h} pixels are too large (limit {MAX_PIXELS:,} pixels)")
    return cap


def open_webcam(index: int) -> cv2.VideoCapture:
    """An opened capture of webcam ``index``.

    Raises:
        DeepferError: ``cannot open webcam N`` (no such device, or no permission).
    """
    with _quiet_stderr():
        cap = cv2.VideoCapture(int(index))
    if not cap.isOpened():
        raise DeepferError(f"cannot open webcam {index}")
    return cap


def frame_count(cap: cv2.VideoCapture) -> int | None:
    """The capture's frame count as its container states it (an estimate; ``None`` if unknown)."""
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return n if n > 0 else None


def fps(cap: cv2.VideoCapture) -> float:
    """Frames per second of a capture (30 when the backend does not say, or says less than
    :data:`MIN_FPS` or 1,000 or more)."""
    value = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    # Below one frame per 1,000 s a container's rate is not believed (1e-9 fps made a 200-frame
    # clip last 6,000 years): taken as unknown, like a rate the backend does not give.
    return value if MIN_FPS * 0.99 <= value < 1000 else DEFAULT_FPS


def iter_frames(cap: cv2.VideoCapture, every: int = 1, max_frames: int | None = None,
                name: str | None = None, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, BGR frame) for frames 0, every, 2 * every, ... until the capture ends.

    Skipped frames are only grabbed, not decoded into images. The capture is released at the end
    (or when the iterator is closed).

    Args:
        cap: an opened capture.
        every: keep one frame in ``every``.
        max_frames: stop after this many kept frames.
        name: the video file's name, for errors. A file's stream is checked for frames that
            cannot be decoded; without a name (a webcam) a failed read just ends the stream.
        start: a video file: seek to this frame first (indexes stay the file's; the frames kept
            are still those whose index is a multiple of ``every``).

    Raises:
        DataError: (video files) a frame cannot be decoded; the frames before it have been
            yielded.
    """
    if every < 1:
        raise ParameterError("every", f"every must be >= 1, got {every}")
    kept, index = 0, -1
    if start > 0:
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        index = start - 1
    try:
        while max_frames is None or kept < max_frames:
            if not cap.grab():
                if name is not None and any(cap.grab() for _ in range(_PROBES)):
                    raise DataError(f"{name}: frame {index + 1} cannot be decoded (corrupt stream); "
                                    "the frames after it are not read")
                return
            index += 1
            if index % every:
                continue
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                if name is not None:
                    raise DataError(f"{name}: frame {index} cannot be decoded")
                return
            kept += 1
            yield index, frame
    finally:
        cap.release()


_mp4_codec: tuple[str, str] | None = None


def mp4_codec() -> tuple[str, str]:
    """The codec MPEG-4 files (``.mp4``, ``.m4v``, ``.mov``, ``.mkv``) are written with: its FourCC and
    what to tell the user, ``("avc1", "H.264")`` where the installed OpenCV can encode H.264, else
    ``("mp4v", "MPEG-4 Part 2: ...")``. Probed once per process by writing a tiny file."""
    global _mp4_codec
    if _mp4_codec is None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="deepfer-codec-") as tmp, _quiet_stderr():
            probe = Path(tmp) / "probe.mp4"
            writer = cv2.VideoWriter(str(probe), cv2.VideoWriter_fourcc(*_H264[0]), 10.0, (64, 48))
            ok = writer.isOpened()
            if ok:
                writer.write(np.zeros((48, 64, 3), np.uint8))
            writer.release()
            _mp4_codec = _H264 if ok and probe.is_file() and probe.stat().st_size > 0 else _MPEG4
    return _mp4_codec


class VideoWriter:
    """Writes BGR frames to a video file, opened on the first frame (whose size it takes).

    The frames go to a temporary file beside ``path``; :meth:`close` reads it back and renames it
    over ``path`` only when it holds every frame written. OpenCV's writer reports no write error (a
    full disk left a truncated, unplayable file and no message), so reading back is the check.

    Args:
        path: the output file; ``.avi`` is written as MJPG, other suffixes as H.264 where the
            installed OpenCV can, else MPEG-4 Part 2 (:func:`mp4_codec`).
        fps: frames per second of the output.

    Attributes:
        codec: what the file is encoded with, in words (for the user).
    """

    def __init__(self, path: str | Path, fps: float = DEFAULT_FPS) -> None:
        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._tmp: Path | None = None
        suffix = self.path.suffix.lower()
        self._fourcc, self.codec = ("MJPG", "Motion JPEG") if suffix == ".avi" else (
            mp4_codec() if suffix in _MP4 else ("mp4v", "MPEG-4 Part 2"))

    def write(self, frame: np.ndarray) -> None:
        """Add one frame.

        Raises:
            DeepferError: the file cannot be created (a folder in the way, no permission, ...).
        """
        if self._writer is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DeepferError(f"{self.path}: cannot write video ({exc.strerror or exc})") from None
            fourcc = cv2.VideoWriter_fourcc(*self._fourcc)
            h, w = frame.shape[:2]
            # The temporary name keeps the suffix: OpenCV picks the container from it.
            self._tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.tmp{self.path.suffix}")
            with _quiet_stderr():
                self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                self._tmp.unlink(missing_ok=True)
                raise DeepferError(f"{self.path}: cannot write video (try an .avi or .mp4 name, in a "
                                   "writable folder)")
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finish the file, check it and move it into place.

        Raises:
            DeepferError: the file does not hold every frame (a full disk, a write error); nothing
                is left at ``path`` or beside it.
        """
        if self._writer is None or self._tmp is None:
            return
        tmp, self._tmp = self._tmp, None
        with _quiet_stderr():
            self._writer.release()
        self._writer = None
        try:
            with _quiet_stderr():
                cap = cv2.VideoCapture(str(tmp))
            complete = cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) >= self.frames
            cap.release()
            if not complete:
                raise DeepferError(f"{self.path}: the annotated video could not be written completely "
                                   "(disk full?); nothing was kept")
            os.replace(tmp, self.path)
        except OSError as exc:
            raise DeepferError(f"{self.path}: cannot write video ({exc.strerror or exc})") from None
        finally:
            tmp.unlink(missing_ok=True)
