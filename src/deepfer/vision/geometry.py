"""Where a face is in a picture, as a detector reports it: its box, the detector's confidence and,
where the detector gives them, landmark points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LANDMARKS", "Box", "Detection", "Point"]

Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the original image
Point = tuple[float, float]  # x, y in pixels of the original image

# The order of a detection's landmark points: the five points of RetinaFace, MTCNN and YuNet, each
# "left" meaning the image's left (the person's right). A detector gives the first K of them
# (K = 2: the eyes only).
LANDMARKS: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Detection:
    """One face found by a detector.

    Attributes:
        box: (x, y, w, h) in pixels of the image the detector was given.
        score: the detector's confidence, where it has one.
        landmarks: the face's landmark points in image pixels, in the order of :data:`LANDMARKS`
            (the first two, or all five), where the detector gives them; a (K, 2) array or a
            sequence of (x, y) pairs becomes a tuple of points.

    Example:
        >>> d = Detection((10, 20, 50, 50), landmarks=[(25, 40), (45, 38)])
        >>> d.eyes
        ((25.0, 40.0), (45.0, 38.0))
        >>> Detection((0, 0, 8, 8)).eyes is None
        True
    """

    box: Box
    score: float | None = None
    landmarks: tuple[Point, ...] | None = None

    def __post_init__(self) -> None:
        if self.landmarks is None:
            return
        pts = np.asarray(self.landmarks, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or not 2 <= len(pts) <= len(LANDMARKS):
            raise ValueError(f"landmarks must be 2 to {len(LANDMARKS)} (x, y) points in the order "
                            f"{', '.join(LANDMARKS)}, got shape {pts.shape}")
        # Tuples, not an array: a frozen detection stays hashable and comparable with ==.
        object.__setattr__(self, "landmarks", tuple((float(x), float(y)) for x, y in pts))

    @property
    def eyes(self) -> tuple[Point, Point] | None:
        """The centres of the eye on the image's left and of the other eye, or ``None`` without
        landmarks; the face crop is rotated so that they are level."""
        if self.landmarks is None:
            return None
        return self.landmarks[0], self.landmarks[1]

    def point(self, name: str) -> Point | None:
        """The landmark called ``name`` (one of :data:`LANDMARKS`), or ``None`` if the detector
        does not give it."""
        if name not in LANDMARKS:
            raise ValueError(f"unknown landmark {name!r}; choose one of {', '.join(LANDMARKS)}")
        i = LANDMARKS.index(name)
        return self.landmarks[i] if self.landmarks is not None and i < len(self.landmarks) else None

