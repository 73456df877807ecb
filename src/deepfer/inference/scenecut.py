"""Hard scene cuts in a stream of frames: a frame that shares little with the one before it.

:class:`SceneCuts` compares a 64x36 grey copy of each frame with the previous one: the mean
absolute difference of their pixels (0-255), the statistic of PySceneDetect's ``ContentDetector``
on one channel. A cut is a difference of at least :data:`CUT` that is also :data:`JUMP` times the
median of the last few differences, so that a camera pan or a face filling the frame, which
change every frame a little, are not cuts (PySceneDetect's ``AdaptiveDetector`` test). The
thresholds are measured in ``benchmarks/tracking.py`` (``benchmarks/TRACKING_REID.md``, scene
cuts). At a cut the tracker ends its motion predictions (:meth:`FaceTracker.cut
<deepfer.inference.tracking.FaceTracker.cut>`): no box is carried into the new scene.

Why not PySceneDetect itself: its detectors compute the same statistic on full frames (in HSV)
and bring ``click`` and ``platformdirs``; a cut test on a thumbnail costs ~0.2 ms a 720p frame.

Example:
    >>> import numpy as np
    >>> cuts = SceneCuts()
    >>> [cuts.update(np.full((360, 640), v, np.uint8)) for v in (100, 101, 100, 230, 231)]
    [False, False, False, True, False]
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

__all__ = ["CUT", "JUMP", "SceneCuts"]

# Measured on benchmarks/tracking.py --reid's videos (TRACKING_REID.md, the scene-cut statistic):
# consecutive frames of one shot differ by at most ~10 grey levels on the 64x36 thumbnail (faces
# walking, crossing, leaving; sensor noise), frames across a cut between two rooms with the same
# people by ~30 or more.
CUT = 20.0
JUMP = 4.0
_SIZE = (64, 36)
_HISTORY = 8  # recent differences whose median a cut must exceed JUMP times


class SceneCuts:
    """Tells, frame by frame, whether a frame starts a new scene.

    Args:
        threshold: the smallest mean absolute difference (grey levels, 0-255) of a cut.
        jump: how many times the median of the recent differences a cut's difference must be.
    """

    def __init__(self, threshold: float = CUT, jump: float = JUMP) -> None:
        self.threshold = threshold
        self.jump = jump
        self._last: np.ndarray | None = None
        self._recent: deque[float] = deque(maxlen=_HISTORY)
        self.last_score = 0.0  # the difference of the latest frame with the one before

    def update(self, gray: np.ndarray) -> bool:
        """Whether ``gray`` (uint8 (H, W) or (H, W, 3)) starts a new scene (the first frame does not)."""
        if gray.ndim == 3:
            gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(gray, _SIZE, interpolation=cv2.INTER_AREA).astype(np.int16)
        prev, self._last = self._last, small
        if prev is None:
            return False
        score = float(np.abs(small - prev).mean())
        self.last_score = score
        base = float(np.median(self._recent)) if self._recent else 0.0
        cut = score >= self.threshold and score >= self.jump * base
        # A cut's own difference is not part of either scene's motion.
        if not cut:
            self._recent.append(score)
        else:
            self._recent.clear()
        return cut
