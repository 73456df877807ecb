"""The server's video routes, added to the app by :func:`add_video_routes`:

* ``POST /v1/video``: a video file as the request body -> each face's track summary and the
  timeline picture (a PNG data URL), as ``deepfer predict --summary --timeline`` makes them.
  The body is streamed to a temporary file with the size cap enforced while it arrives; the file
  is decoded by OpenCV as ``deepfer predict`` decodes videos (pixel cap checked at open), at most
  :data:`MAX_SECONDS` of it are analysed, one video at a time (503 while one runs).
* ``POST /v1/track?session=ID``: one webcam frame (an image, as ``/v1/predict`` takes it) of a
  session -> the ``/v1/predict`` record whose faces carry ``track`` and ``smoothed``, and its
  ``time`` since the session's first frame. The server keeps each session's tracker (the
  :data:`MAX_SESSIONS` most recent, each forgotten after :data:`SESSION_IDLE` s unused).

Videos run on their own thread, not the engine's workers: one video takes seconds to minutes,
and must not hold a worker that photos and webcam frames are waiting for.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
import math
import re
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from deepfer.errors import DataError
from deepfer.serve.errors import HTTPError, too_large
from deepfer.serve.schemas import TrackRecord, VideoRecord
from deepfer.serve.uploads import receive_upload

if TYPE_CHECKING:
    from deepfer.inference.recognizer import Recognizer
    from deepfer.inference.tracking import TrackedStream
    from deepfer.serve.engine import Engine
    from deepfer.serve.settings import ServeSettings

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MAX_VIDEO_BYTES = 64 * MIB  # largest video upload
MAX_SECONDS = 120.0  # of video analysed; the rest of a longer one is skipped (and said so)
VIDEO_TIMEOUT = 300.0  # seconds one video may take, upload excluded
MAX_SESSIONS = 16
# Frames of an uploaded video are shrunk to this side as they are decoded, before they are buffered
# for a batch: 32 colour frames of 4000x4000 held 2.6 GiB (benchmarks/fuzz.py --hostile, FUZZ.md).
MAX_FRAME_SIDE = 1280
MAX_UPLOADS = 8  # videos being received at once (each up to MAX_VIDEO_BYTES on disk)
SESSION_IDLE = 60.0
_SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")  # with match(); "$" would also take a final newline


class _Session:
    def __init__(self, stream: TrackedStream) -> None:
        self.stream = stream
        self.frames = 0
        self.used = time.monotonic()
        self.lock = threading.Lock()  # a session's frames are tracked in order


class VideoService:
    """The state behind the video routes: the webcam sessions and the one-video-at-a-time gate.

    Args:
        engine: the server's engine (its recognizer is copied with a detector of its own, as the
            engine's workers do).
        settings: the server's settings (upload read timeout, image limits of webcam frames).
    """

    def __init__(self, engine: Engine, settings: ServeSettings) -> None:
        self.engine = engine
        self.settings = settings
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._sessions_lock = threading.Lock()
        self._video_busy = threading.Lock()
        self.uploads = 0  # videos being received now (the event loop's count)
        self._local = threading.local()

    def recognizer(self) -> Recognizer:
        """This thread's recognizer: the engine's classifier, a detector of its own (an OpenCV
        cascade is not documented as thread-safe)."""
        rec = getattr(self._local, "recognizer", None)
        if rec is None:
            rec = copy.copy(self.engine.recognizer)
            if rec.detector is not None:
                rec.detector = self.settings.detector_spec.build()
            self._local.recognizer = rec
        return rec

    # -- webcam sessions ------------------------------------------------------------------------

    def session(self, name: str) -> _Session:
        """The session called ``name`` (made on its first frame; the least recently used one is
        dropped beyond :data:`MAX_SESSIONS`)."""
        from deepfer.inference.tracking import TrackedStream

        now = time.monotonic()
        with self._sessions_lock:
            for key in [k for k, s in self._sessions.items() if now - s.used > SESSION_IDLE]:
                del self._sessions[key]
            s = self._sessions.get(name)
            if s is None:
                # Webcam frames come a few times a second: the detector runs on each of them.
                s = self._sessions[name] = _Session(TrackedStream(None, detect_every=1))
                while len(self._sessions) > MAX_SESSIONS:
                    self._sessions.popitem(last=False)
            self._sessions.move_to_end(name)
            s.used = now
            return s

    def track_frame(self, session: _Session, upload: Any) -> dict[str, Any]:
        from deepfer.inference.results import NO_FACE, Result

        pic = self.engine.decode(upload)  # in a decoder process, killed past the deadline
        with session.lock:
            self.engine.check_deadline()  # its client may have been answered 504 while it waited
            frame = session.frames
            session.frames += 1
            t, faces = self.recognizer().predict_frame(pic, session.stream, frame)
        return Result(upload.filename, frame, faces, None if faces else NO_FACE, time=t).to_dict()

    # -- videos ---------------------------------------------------------------------------------

    def analyse(self, path: Path, name: str, deadline: float,
                cancelled: threading.Event | None = None) -> dict[str, Any]:
        """Track, summarise and draw one uploaded video (in a worker thread).

        Args:
            cancelled: set when the client has gone: the analysis stops at the next frame.

        Raises:
            DataError: the video cannot be read at all.
            HTTPError: 504 past ``deadline``, 499 once ``cancelled`` is set.
        """
        from deepfer.inference.inputs import Source
        from deepfer.inference.results import rows
        from deepfer.inference.timeline import TimelineWriter, TrackSummary
        from deepfer.inference.video import fps, frame_count, open_video

        try:
            cap = open_video(path)  # what OpenCV cannot open, or frames too large
        except DataError as exc:
            raise DataError(_public(str(exc), path, name)) from None
        rate, total = fps(cap), frame_count(cap)
        cap.release()
        limit = max(1, math.ceil(MAX_SECONDS * rate))  # a 0.001 fps timelapse still has its first frame
        rec = self.recognizer()
        frames, errors = 0, []
        with tempfile.TemporaryDirectory(prefix="deepfer-timeline-") as out:
            timeline = TimelineWriter(out, rec.labels)
            summary = TrackSummary(rec.labels, name)
            try:
                for r in rec.iter_results([Source("video", str(path), Path(name))], max_frames=limit,
                                          keep_pictures=True, max_side=MAX_FRAME_SIDE):
                    if cancelled is not None and cancelled.is_set():
                        raise HTTPError(499, "the client disconnected; analysis stopped")
                    if time.monotonic() > deadline:
                        raise HTTPError(504, f"video not analysed within the {VIDEO_TIMEOUT:g} s limit")
                    if r.frame is None:
                        errors.append(_public(r.error or "", path, name))
                        continue
                    frames += 1
                    timeline.write(r)
                    for row in rows(r, rec.labels):
                        summary.add(row)
            finally:
                written = timeline.close()
                _release_memory()
            png = next((p for p in written if p.suffix == ".png"), None)
            image = base64.b64encode(png.read_bytes()).decode() if png is not None else None
        if not frames and errors:  # nothing could be read: one error, as deepfer predict reports it
            raise DataError(errors[0])
        return {"path": name, "fps": rate, "frames": frames, "duration": round(frames / rate, 3),
                "truncated": total is not None and total > limit and frames >= limit,
                "tracks": summary.records(), "errors": errors,
                "timeline_png": f"data:image/png;base64,{image}" if image else None}


def _release_memory() -> None:
    """Give the frames' freed memory back to the system: glibc keeps freed blocks of a few MB in
    its heap (its mmap threshold rises as large arrays are freed), so without this a server kept
    ~290 MB more after its first large video (benchmarks/fuzz.py --hostile, FUZZ.md)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _public(message: str, path: Path, name: str) -> str:
    """A message without the server's temporary path (the client's file name instead)."""
    return message.replace(str(path), name)


async def _receive_video(request: Request, settings: ServeSettings, tmp: Path) -> None:
    """Stream the request body into ``tmp``, refusing it past :data:`MAX_VIDEO_BYTES`."""
    from starlette.requests import ClientDisconnect

    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind.startswith("multipart/"):
        raise HTTPError(415, "send the video file itself as the request body (Content-Type: video/...), "
                        "not a form")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_VIDEO_BYTES:
        raise too_large(f"video of {int(declared):,} bytes is larger than the {MAX_VIDEO_BYTES // MIB} MiB limit")
    size = 0
    try:
        async with asyncio.timeout(max(settings.read_timeout, 60.0)):
            with open(tmp, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_VIDEO_BYTES:
                        raise too_large(f"video larger than the {MAX_VIDEO_BYTES // MIB} MiB limit")
                    f.write(chunk)
    except TimeoutError:
        raise HTTPError(408, "video upload not received in time") from None
    except ClientDisconnect:
        raise HTTPError(400, "client disconnected during the upload") from None
    if not size:
        raise HTTPError(400, "empty request: send the video file as the request body")


def add_video_routes(app: FastAPI, engine: Engine, settings: ServeSettings) -> VideoService:
    """Add ``POST /v1/video`` and ``POST /v1/track`` to ``app``.

    Returns:
        The service holding the webcam sessions (``app.state.video``).
    """
    service = VideoService(engine, settings)
    app.state.video = service

    @app.post("/v1/video", tags=["inference"], response_model=VideoRecord,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "video/*": {"schema": {"type": "string", "format": "binary"}},
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
              responses={400: {"description": "unreadable video"}, 408: {"description": "upload too slow"},
                         413: {"description": "video too large"}, 415: {"description": "a form, not a video"},
                         503: {"description": "another video is being analysed"},
                         504: {"description": "timed out"}})
    async def video(request: Request,
                    name: str = Query("video", max_length=200, description="the file's name, as a label")
                    ) -> JSONResponse:
        """Track every face of a video (at most the first 120 s): per track, when it was seen,
        its dominant emotion and its share of each (`tracks`), and the timeline picture
        (`timeline_png`, a PNG data URL). One video at a time."""
        busy = HTTPError(503, "another video is being analysed; retry when it is done", {"Retry-After": "5"})
        if service._video_busy.locked():  # said at once, before the client sends its body
            raise busy
        if service.uploads >= MAX_UPLOADS:
            raise HTTPError(503, f"{MAX_UPLOADS} videos are being uploaded; retry shortly", {"Retry-After": "5"})
        label = Path(name).name or "video"
        with tempfile.TemporaryDirectory(prefix="deepfer-video-") as tmp:
            # Named as the client's file (letters, digits, . - _ only): the timeline's title.
            path = Path(tmp) / (re.sub(r"[^A-Za-z0-9._-]+", "_", label)[-100:].lstrip(".") or "video")
            service.uploads += 1
            try:  # a slow upload holds no lock: the one-video lock is taken once the body is here
                await _receive_video(request, settings, path)
            finally:
                service.uploads -= 1
            if not service._video_busy.acquire(blocking=False):
                raise busy
            try:
                deadline = time.monotonic() + VIDEO_TIMEOUT
                cancelled = threading.Event()
                work = asyncio.ensure_future(asyncio.to_thread(service.analyse, path, label, deadline, cancelled))
                while not work.done():  # the lock is held until the analysis has really ended
                    await asyncio.wait({work}, timeout=0.25)
                    if not work.done() and not cancelled.is_set() and await request.is_disconnected():
                        log.info("video %s: the client disconnected; stopping its analysis", label)
                        cancelled.set()
                return JSONResponse(work.result())
            finally:
                service._video_busy.release()

    @app.post("/v1/track", tags=["inference"], response_model=TrackRecord,
              responses={400: {"description": "bad image or session"}})
    async def track(request: Request,
                    session: str = Query(..., description="the client's stream id: letters, digits, - and _")
                    ) -> JSONResponse:
        """One webcam frame of a stream: the `/v1/predict` record, each face with its `track` id
        and `smoothed` scores, and the frame's `time` in seconds since the stream's first frame."""
        if not _SESSION.match(session):  # \Z: "abc\n" is not "abc"
            raise HTTPError(400, "session must be 1 to 64 letters, digits, '-' or '_'")
        upload = await receive_upload(request, settings)
        s = service.session(session)
        return JSONResponse(await engine.run(service.track_frame, s, upload))

    return service
