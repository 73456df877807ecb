"""The server's inference engine: the model loaded once, a bounded pool of worker threads that run
the CPU-bound work (detect, crop, classify, explain, PNG encoding) off the event loop, one decoder
process per worker (``deepfer.serve.decoding``: killed when a request's deadline passes, so a 504
frees its worker), an admission limit (503 when full) and a deadline per request (504 after it).

What runs after decoding (detection on a copy at most ``detect_width`` wide, a crop and a forward
pass per face) is bounded by the image's limits and checked against the deadline between steps;
work that outlives its request (answered 504) is still counted by :attr:`Engine.load` until it
ends, so admission and ``/healthz`` see the server as busy as it is.

Why threads, and a process only for decoding: OpenCV, onnxruntime and torch release the GIL while
they compute, so two threads keep two cores busy; each thread runs its own detector (an OpenCV
cascade is not documented as thread-safe) and shares the classifier (an onnxruntime session and a
torch module in eval mode are). Decoding is the one step whose cost a hostile file sets, so it is
the one that runs where it can be stopped; whole requests in processes would need a model per
process. Batching across requests would only batch the classifier, which is ~2% of a request's
time; detection, the other 90%, is per image.
"""

from __future__ import annotations

import concurrent.futures
import copy
import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from torch import nn

from deepfer.errors import DeepferError
from deepfer.inference.recognizer import Recognizer
from deepfer.inference.results import NO_FACE, Result
from deepfer.serve.decoding import DecoderPool
from deepfer.serve.errors import HTTPError
from deepfer.serve.settings import EXPLAIN_METHODS, ServeSettings
from deepfer.serve.uploads import Upload
from deepfer.vision import Picture, uncrop

log = logging.getLogger(__name__)

T = TypeVar("T")
EXPLAIN_MODES = ("blend", "overlay")
ALPHA = 0.6  # the heatmap's opacity where it is 1


class Engine:
    """The model and the workers that run it.

    Args:
        settings: the server's settings (model, backend, detector, workers, limits).

    Raises:
        DeepferError: the model, backend or detector cannot be loaded.
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        model = settings.model
        is_onnx = model is not None and str(model).lower().endswith(".onnx")
        backend = settings.backend or ("onnx" if is_onnx or _has("onnxruntime") else "torch")
        self.recognizer = Recognizer(model, settings.detector_spec, backend, threads=settings.intra_threads)
        self.backend = self.recognizer.classifier.backend
        self.model_name = _model_name(model)
        # Explanations need the torch module (gradients, hooks): loaded beside an ONNX classifier.
        self.net: nn.Module | None = None
        self.architecture: str | None = None
        # The heatmaps /v1/explain draws: a model with branches adds each branch's Grad-CAM.
        self.explain_methods: list[str] = []
        if not is_onnx:
            from deepfer.explain import load_explainable
            from deepfer.explain.methods import branch_methods

            self.net, _ = load_explainable(model)
            self.architecture = getattr(getattr(self.net, "config", None), "name", None)
            self.explain_methods = [*EXPLAIN_METHODS, *branch_methods(self.net)]
        self._explain_lock = threading.Lock()  # Grad-CAM's hooks live on the shared module
        self._local = threading.local()
        self._admitted = 0  # requests admitted and not answered yet (the event loop's count)
        self._orphans = 0  # work still running for requests already answered 504
        self._running = 0  # work running in the worker threads now
        self._counts = threading.Lock()  # _orphans and _running change in the worker threads
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._decoders: DecoderPool | None = None
        self._saved_threads: tuple[int, int] | None = None

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers, and set the process's torch and OpenCV threads to ``intra_threads``
        (restored by :meth:`close`): parallelism comes from the workers, and nested thread pools on
        a small machine only fight over its cores. Called by the app's start-up (or the first
        request); an engine can be started again after :meth:`close`."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.settings.workers,
                                                               thread_name_prefix="deepfer-infer")
        if self._decoders is None:
            self._decoders = DecoderPool(self.settings.workers)
        n = self.settings.intra_threads
        if n is None or self._saved_threads is not None:
            return
        import cv2
        import torch

        self._saved_threads = (torch.get_num_threads(), cv2.getNumThreads())
        torch.set_num_threads(n)
        cv2.setNumThreads(n)

    def close(self) -> None:
        """Stop the workers (queued work is dropped), end the decoder processes and restore the
        thread settings."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._decoders is not None:
            self._decoders.close()
            self._decoders = None
        if self._saved_threads is not None:
            import cv2
            import torch

            torch.set_num_threads(self._saved_threads[0])
            cv2.setNumThreads(self._saved_threads[1])
            self._saved_threads = None

    @property
    def load(self) -> int:
        """Work in the server now: requests admitted (running or waiting for a worker) plus work
        still running for requests that were answered 504. Admission (503) counts it too."""
        return self._admitted + self._orphans

    @property
    def running(self) -> int:
        """Work running in the worker threads now (at most ``workers``)."""
        return self._running

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` reports: the work in progress and running, the workers, and the
        decoder processes (alive, and killed so far for overrunning a deadline or crashing)."""
        decoders = self._decoders
        return {"in_progress": self.load, "running": self.running, "workers": self.settings.workers,
                "decoders": decoders.alive if decoders else 0, "decoders_killed": decoders.kills if decoders else 0}

    # -- what the endpoints call ----------------------------------------------------------------

    async def predict(self, upload: Upload) -> dict[str, Any]:
        """The ``deepfer predict --format json`` record of one uploaded image."""
        return await self._run(self._predict, upload)

    async def explain(self, upload: Upload, method: str = "gradcam", mode: str = "blend") -> tuple[bytes, list[str]]:
        """A heatmap PNG of the uploaded image and the predicted label of each face.

        Args:
            upload: the image.
            method: ``gradcam``, ``occlusion``, ``saliency``, or ``gradcam:<branch>`` for a model
            with branches (:attr:`explain_methods`).
            mode: ``blend``: the photo with the heatmap over its faces (RGB); ``overlay``: only the
                heatmap, on a transparent background (RGBA), to lay over the photo.

        Raises:
            HTTPError: 501 when the model is an ONNX file (no gradients), 400 for an unknown
                method or mode.
        """
        if self.net is None:
            raise HTTPError(501, "explanations need a torch checkpoint; this server runs an ONNX file")
        if method not in self.explain_methods:
            raise HTTPError(400, f"unknown method {method!r}; choose one of {', '.join(self.explain_methods)}")
        if mode not in EXPLAIN_MODES:
            raise HTTPError(400, f"unknown mode {mode!r}; choose one of {', '.join(EXPLAIN_MODES)}")
        return await self._run(self._explain, upload, method, mode)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker, under the admission limit and the request deadline (for
        routes added by other modules, e.g. :mod:`deepfer.serve.video`)."""
        return await self._run(fn, *args)

    def decode(self, upload: Upload, keep_color: bool = False) -> Picture:
        """In a worker (from :meth:`run`): the upload's pixels from a decoder process that is
        killed if it overruns the request's deadline (504)."""
        return self._decode(upload, keep_color)

    def check_deadline(self) -> None:
        """In a worker (from :meth:`run`): raise 504 once the request's deadline has passed, so
        work whose client has been answered stops before its next step."""
        self._check_deadline()

    def describe(self) -> dict[str, Any]:
        """The loaded model: name, architecture, backend, labels, input size, detector."""
        return {"name": self.model_name, "architecture": self.architecture, "backend": self.backend,
                "labels": list(self.recognizer.labels), "input_size": self.recognizer.size,
                "detector": getattr(self.recognizer.detector, "name", None),
                "detector_options": self.settings.detector_spec.options(),
                "explain": self.net is not None, "explain_methods": list(self.explain_methods)}

    # -- admission, deadline, workers -----------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        import asyncio

        s = self.settings
        if self.load >= s.max_queue:
            raise HTTPError(503, f"server busy ({self.load} requests in progress); retry shortly",
                            {"Retry-After": "1"})
        if self._pool is None:
            self.start()
        pool = self._pool
        if pool is None:  # for the type checker: start() made it
            raise HTTPError(503, "server is shutting down")
        self._admitted += 1
        deadline = time.monotonic() + s.request_timeout
        try:
            future = pool.submit(self._guarded, deadline, fn, *args)
            try:
                return await asyncio.wait_for(asyncio.wrap_future(future), s.request_timeout)
            except TimeoutError:
                future.cancel()  # still queued: it never runs
                if not future.done():  # running: counted until it ends (the decoder's kill, a step's check)
                    with self._counts:
                        self._orphans += 1
                    future.add_done_callback(self._orphan_done)
                raise HTTPError(504, f"not done within the {s.request_timeout:g} s request timeout") from None
        finally:
            self._admitted -= 1

    def _orphan_done(self, _: concurrent.futures.Future[Any]) -> None:
        with self._counts:
            self._orphans -= 1

    def _guarded(self, deadline: float, fn: Callable[..., T], *args: Any) -> T:
        if time.monotonic() > deadline:  # its client has been answered 504 already: skip the work
            raise HTTPError(504, "request timed out in the queue")
        with self._counts:
            self._running += 1
        self._local.deadline = deadline
        try:
            return fn(*args)
        finally:
            self._local.deadline = None
            with self._counts:
                self._running -= 1

    def _deadline(self) -> float:
        deadline = getattr(self._local, "deadline", None)
        return deadline if deadline is not None else time.monotonic() + self.settings.request_timeout

    def _check_deadline(self) -> None:
        """Stop work whose client has been answered 504 already."""
        if time.monotonic() > self._deadline():
            raise HTTPError(504, f"not done within the {self.settings.request_timeout:g} s request timeout")

    def _decode(self, upload: Upload, keep_color: bool = False) -> Picture:
        """The upload's pixels, from a decoder process killed if it overruns the deadline."""
        if self._decoders is None:
            self.start()
        decoders = self._decoders
        if decoders is None:  # for the type checker: start() made it
            raise HTTPError(503, "server is shutting down")
        pic = decoders.decode(upload, self.settings, keep_color, self._deadline())
        self._check_deadline()
        return pic

    def _worker_recognizer(self) -> Recognizer:
        rec = getattr(self._local, "recognizer", None)
        if rec is None:
            rec = copy.copy(self.recognizer)  # shares the classifier, gets its own detector
            if rec.detector is not None:
                rec.detector = self.settings.detector_spec.build()
            self._local.recognizer = rec
        return rec

    # -- the work, in a worker thread -----------------------------------------------------------

    def _predict(self, upload: Upload) -> dict[str, Any]:
        pic = self._decode(upload)
        faces = self._worker_recognizer().predict(pic)
        return Result(upload.filename, None, faces, None if faces else NO_FACE).to_dict()

    def _explain(self, upload: Upload, method: str, mode: str) -> tuple[bytes, list[str]]:
        import cv2

        from deepfer.explain import colorize, explain_picture
        from deepfer.explain.overlay import stretch

        pic = self._decode(upload, keep_color=mode == "blend")
        rec = self._worker_recognizer()
        h, w = pic.gray.shape
        scale = min(1.0, self.settings.explain_max_side / max(h, w))
        out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
        heat = np.zeros((out_h, out_w), np.float32)
        labels: list[str] = []
        if self.net is not None:
            faces = explain_picture(self.net, rec.labels, pic, rec.detector, [method], lock=self._explain_lock,
                                    branches=False)
            self._check_deadline()
            labels = [face.label for face in faces]
            for face in faces:
                # face.aligned: the crop was warped onto the landmark template (the model asks for it
                # and the face has five landmarks), so the map goes back by the inverse of that warp.
                placed = uncrop(stretch(face.heatmaps[method]), face.detection, rec.framing, (out_h, out_w), scale,
                                align=face.aligned)
                np.maximum(heat, placed, out=heat)
        rgb = colorize(heat)  # (H, W, 3)
        weight = ALPHA * heat[..., None]
        if mode == "overlay":
            rgba = np.dstack([rgb, (weight[..., 0] * 255 + 0.5).astype(np.uint8)])
            ok, png = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        else:
            base = pic.color()  # BGR
            if scale < 1.0:
                base = cv2.resize(base, (out_w, out_h), interpolation=cv2.INTER_AREA)
            bgr = (1 - weight) * base + weight * rgb[..., ::-1]
            ok, png = cv2.imencode(".png", (bgr + 0.5).clip(0, 255).astype(np.uint8),
                                   [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise DeepferError("PNG encoding failed")
        return png.tobytes(), labels


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _model_name(model: str | None) -> str:
    from deepfer.models.pretrained import DEFAULT

    if model is None:
        return DEFAULT
    # A file given on the command line is named by its file name: never echo server paths.
    p = Path(model)
    return p.name if p.suffix in (".pt", ".onnx") or p.is_file() else str(model)
