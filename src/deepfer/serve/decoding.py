"""Uploads are decoded in child processes that the server can end: a decoder that is still working
when its request's deadline passes is killed, so a 504 frees its worker at once, whatever the file
made the decoder do.

Why processes: a thread cannot be stopped, and the decoders (libjpeg, zlib, libtiff, libwebp, and
Pillow's own Python decoders) cannot be interrupted. ``deepfer.vision.pictures`` bounds the work a
file can ask for, which keeps ``deepfer predict`` fast; the server also needs the guarantee for
what those limits miss: without it, a decode that times out keeps its worker thread busy, and valid
photos behind it time out too (``benchmarks/fuzz.py``, ``benchmarks/FUZZ.md``).

What it costs: one child per worker, forked from a ``forkserver`` that has imported the decoder
already (a new child after a kill is ready in milliseconds, not the ~1 s of a fresh interpreter),
each ~60 MB resident; and per request the upload's bytes sent to the child and the grayscale (and,
for explanations, colour) pixels sent back over a pipe, ~1 ms for a 640x480 photo. A decoder that
crashes (a segfault in a C library on a hostile file) costs one request a 400, not the server.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import queue
import signal
import threading
import time
from typing import Any

import numpy as np

from deepfer.errors import DataError
from deepfer.serve.errors import HTTPError
from deepfer.serve.settings import ServeSettings
from deepfer.serve.uploads import Upload, decode
from deepfer.vision import Picture

log = logging.getLogger(__name__)

__all__ = ["Decoder", "DecoderPool"]


def _child(conn: multiprocessing.connection.Connection) -> None:
    """The child's loop: a request (settings, format, name, keep_color) and the upload's bytes in;
    ("ok", shape, has colour) and the pixels, or ("error", status, message), out. Ends when the
    server closes its end (or exits)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the server's to handle
    while True:
        try:
            settings, fmt, filename, keep_color = conn.recv()
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            pic = decode(Upload(data, fmt, filename), settings, keep_color)
        except HTTPError as exc:
            conn.send(("error", exc.status, exc.message))
            continue
        except DataError as exc:
            conn.send(("error", 400, " ".join(str(exc).split())))
            continue
        except Exception as exc:  # noqa: BLE001 - whatever a decoder raises, the file is at fault
            conn.send(("error", 400, f"{filename or 'upload'}: cannot decode {fmt} image ({type(exc).__name__})"))
            continue
        del data
        conn.send(("ok", pic.gray.shape, pic.bgr is not None))
        conn.send_bytes(memoryview(pic.gray).cast("B"))
        if pic.bgr is not None:
            conn.send_bytes(memoryview(np.ascontiguousarray(pic.bgr)).cast("B"))


class Decoder:
    """One child process that decodes uploads, one at a time, and is killed when it takes too long.

    Args:
        context: the multiprocessing context that starts the child.
    """

    def __init__(self, context: Any) -> None:
        self._context = context
        self._process: Any = None
        self._conn: multiprocessing.connection.Connection | None = None
        self.kills = 0  # children ended for overrunning their deadline (or crashing)
        self.start()

    def start(self) -> None:
        """Start the child (again, after a kill or a crash)."""
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_child, args=(theirs,), name="deepfer-decode", daemon=True)
        process.start()
        theirs.close()
        self._process, self._conn = process, ours

    @property
    def alive(self) -> bool:
        """Whether the child is running."""
        return self._process is not None and self._process.is_alive()

    def decode(self, upload: Upload, settings: ServeSettings, keep_color: bool, deadline: float) -> Picture:
        """The upload's pixels, decoded in the child by ``deepfer.serve.uploads.decode``.

        Args:
            upload: the image.
            settings: the server's limits.
            keep_color: also return the colour pixels.
            deadline: ``time.monotonic()`` past which the child is killed.

        Raises:
            HTTPError: 504 past the deadline (the child is killed and a new one started), 413 for
                an image over the limits.
            DataError: the bytes are not a valid image, or the decoder crashed on them.
        """
        if not self.alive:
            self.restart("was not running")
        conn = self._conn
        if conn is None:  # for the type checker: start() made it
            raise HTTPError(503, "decoder not running")
        where = upload.filename or "upload"
        try:
            conn.send((settings, upload.format, upload.filename, keep_color))
            conn.send_bytes(upload.data)
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                self.restart("overran its deadline")
                raise HTTPError(504, f"decoding not done within the {settings.request_timeout:g} s request timeout")
            reply = conn.recv()
            if reply[0] == "error":
                _, status, message = reply
                if status == 400:
                    raise DataError(message)
                raise HTTPError(status, message)
            _, (height, width), has_color = reply
            gray = np.empty((height, width), np.uint8)
            conn.recv_bytes_into(memoryview(gray).cast("B"))
            bgr = None
            if has_color:
                bgr = np.empty((height, width, 3), np.uint8)
                conn.recv_bytes_into(memoryview(bgr).cast("B"))
            return Picture(gray, bgr)
        except (EOFError, OSError, multiprocessing.BufferTooShort) as exc:
            self.restart(f"crashed ({type(exc).__name__})")
            raise DataError(f"{where}: cannot decode {upload.format} image (the decoder crashed on it)") from None

    def restart(self, why: str) -> None:
        """Kill the child (SIGKILL: whatever it is doing) and start another."""
        log.warning("decoder process %s %s; starting another", getattr(self._process, "pid", None), why)
        self.kills += 1
        self.close()
        self.start()

    def close(self) -> None:
        """Kill the child and close the pipe."""
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._process.kill()
                self._process.join(5)
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None


class DecoderPool:
    """As many decoders as workers, lent to one worker thread at a time.

    Args:
        size: the number of decoders (the server's workers).
    """

    def __init__(self, size: int) -> None:
        try:
            # The forkserver imports this module once; the children it forks start with the
            # decoders loaded.
            context: Any = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
        except ValueError:  # no forkserver on this platform
            context = multiprocessing.get_context("spawn")
        self._all = [Decoder(context) for _ in range(size)]
        self._idle: queue.SimpleQueue[Decoder] = queue.SimpleQueue()
        for decoder in self._all:
            self._idle.put(decoder)
        self._lock = threading.Lock()

    def decode(self, upload: Upload, settings: ServeSettings, keep_color: bool, deadline: float) -> Picture:
        """Decode with an idle decoder (see :meth:`Decoder.decode`).

        Raises:
            HTTPError: 504 when no decoder is free before the deadline, or the decoding overran it.
        """
        try:
            decoder = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise HTTPError(504, "no decoder free within the request timeout") from None
        try:
            return decoder.decode(upload, settings, keep_color, deadline)
        finally:
            self._idle.put(decoder)

    @property
    def kills(self) -> int:
        """Decoders killed so far (deadlines overrun, crashes)."""
        return sum(d.kills for d in self._all)

    @property
    def alive(self) -> int:
        """Decoder processes running now."""
        return sum(d.alive for d in self._all)

    def close(self) -> None:
        """Kill every decoder."""
        with self._lock:
            for decoder in self._all:
                decoder.close()
