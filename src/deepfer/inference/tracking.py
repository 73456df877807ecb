"""Faces followed across the frames of a video or webcam: a track id per person, boxes carried
between detections, and per-track smoothed scores.

:class:`FaceTracker` associates each detection with a track by SciPy's assignment solver
(``linear_sum_assignment``) on a box distance, and predicts each track's box with OpenCV's
Kalman filter (constant velocity; the SORT recipe of Bewley et al., 2016). :class:`ScoreSmoother`
keeps an exponential moving average of each track's class probabilities with a time constant in
seconds. :class:`TrackedStream` runs both for one video or webcam: it runs the detector on every
``detect_every``-th frame and carries the tracks' predicted boxes over the frames between, so that
every frame is still classified.

Two more things keep one person on one id. A scene cut (:class:`~deepfer.inference.scenecut.SceneCuts`)
ends every track's motion: no box is carried into the new scene, and the cut frame is detected.
Appearance re-identification (:mod:`deepfer.inference.reid`, the optional ``reid`` extra) gives a
face that comes back after it was lost (hidden, out of view, or across a cut) its earlier id: a
detection that would start a new track (and a new track's next few detections) is compared with
the tracks lost within ``reid_window`` seconds, and takes the nearest one's id when their
embeddings are close enough.

Why not a tracking package: ``norfair`` 2.3.0 pins ``numpy<2`` (this project's OpenCV needs
``numpy>=2``), ``supervision`` removed its ByteTrack in 0.31, and Roboflow's ``trackers`` pulls in
the non-headless ``opencv-python`` next to ours. ``benchmarks/tracking.py`` compares this tracker
with norfair's where norfair is installed; the defaults below (:data:`DETECT_EVERY`,
:data:`SMOOTHING`, :data:`MAX_GAP`) are chosen there, on synthetic videos whose true identities and
expressions are known (``benchmarks/TRACKING.md``).

Example:
    >>> tracker = FaceTracker()
    >>> [t.track for t in tracker.update([Detection((100, 100, 80, 80))], 0.0)]
    [1]
    >>> [(t.track, t.box) for t in tracker.update([Detection((104, 100, 80, 80))], 0.04)]
    [(1, (104, 100, 80, 80))]
"""

from __future__ import annotations

import logging
import math
import time as clock
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from deepfer.errors import DeepferError, ParameterError
from deepfer.inference import reid as _reid
from deepfer.inference.inputs import Source
from deepfer.inference.results import Face
from deepfer.inference.scenecut import SceneCuts
from deepfer.inference.video import DEFAULT_FPS
from deepfer.vision import Detection, Picture, pyramid

log = logging.getLogger(__name__)

__all__ = ["DETECT_EVERY", "MAX_GAP", "REID_WINDOW", "SMOOTHING", "FaceTracker", "ScoreSmoother", "Streams",
           "Tracked", "TrackedStream"]

# Chosen on benchmarks/tracking.py's tuning videos (benchmarks/TRACKING.md): detecting on one frame
# in 4 kept every true face on its track (0 identity switches at 7 crossings, as with every frame)
# at the same raw accuracy, 2.6x as many frames per second (16 vs 6 on the shared test machine).
DETECT_EVERY = 4
# Seconds. On the benchmark's posed expressions the raw labels are wrong in runs, not in flickers,
# so no time constant raised accuracy (0.1 s: -1.4 points on the tuning videos, +0.3 on the
# held-out ones); 0.1 s is the smallest that halves the label flicker (204 -> 84 label changes per
# minute of a held expression) with a median lag of 0.08 s after a true change.
SMOOTHING = 0.1
MAX_GAP = 2.0  # seconds a track survives without a detection (a face hidden while two cross)
# A detection joins a track when its centre lies within this many face widths of the track's
# predicted centre (plus the size mismatch, in log units): faces move less than half their width
# between two detections in the benchmark's videos, and two faces side by side are a width apart.
# The gate widens by this much per second the track has gone unseen (its prediction drifts).
GATE = 0.6
GATE_GROWTH = 0.5
# Seconds between a stream's full searches (the default range of deepfer.vision.pyramid); the
# detections between them search only faces from pyramid.stream_min_face up, which is about a
# tenth of the work on a 720p frame. A new face narrower than that is found within this long; a
# tracked one that narrow, or a frame with fewer faces than the last, gets the full search at once.
FULL_SEARCH_EVERY = 1.0
SMALL_MARGIN = 1.25  # a face this close to the quick search's floor keeps the full search on
TENTATIVE = 3  # detections a track needs before it may wait for a hidden face
REID_WINDOW = _reid.WINDOW  # seconds a lost track can be re-identified (None: the whole video)
_MAX_LOST = 256  # lost tracks kept for re-identification at most (the most recent)


@dataclass(frozen=True)
class Tracked:
    """A face on one frame, as the tracker follows it.

    Attributes:
        track: the track id (1, 2, ... in order of appearance in the stream).
        box: (x, y, w, h): the detection's box on a frame the detector ran on, else the box the
            track's motion predicts.
        detection: the detection (a carried frame's has the predicted box and its landmarks moved
            with it).
        detected: whether the detector saw the face on this frame.
    """

    track: int
    box: tuple[int, int, int, int]
    detection: Detection
    detected: bool


class _Track:
    """One track's Kalman filter: state (cx, cy, w, h, vx, vy) in pixels and pixels per second."""

    def __init__(self, track: int, det: Detection, t: float) -> None:
        self.id = track
        self.kf = cv2.KalmanFilter(6, 4)
        self.kf.measurementMatrix = np.hstack([np.eye(4), np.zeros((4, 2))]).astype(np.float32)
        x, y, w, h = det.box
        self.kf.statePost = np.array([[x + w / 2], [y + h / 2], [w], [h], [0], [0]], np.float32)
        side = float(max(w, h))
        # Uncertain velocity at first: a new face may already be moving.
        self.kf.errorCovPost = np.diag([0.1, 0.1, 0.1, 0.1, 4.0, 4.0]).astype(np.float32) * side ** 2
        self.t = t  # time of the filter's state
        self.seen = t  # time of the last detection
        self.last = det
        self.hits = 1  # detections so far
        self.visible = True  # matched at the latest detection frame
        self.gallery: list[np.ndarray] = []  # embeddings of the face (re-identification)
        self.embedded = -math.inf  # time of the latest embedding
        # A new track is not yet known to be a new person: re-identification tries it again at
        # its next few detections (its first ones may show a face half in the frame or turning).
        self.tries = 0
        self.born = t

    def remember(self, embedding: np.ndarray, t: float) -> None:
        """Add an embedding to the gallery (the first and the latest ones are kept)."""
        self.gallery.append(embedding)
        if len(self.gallery) > _reid.GALLERY:
            del self.gallery[1]
        self.embedded = t

    def restart(self, det: Detection, t: float) -> _Track:
        """The track continued at ``det`` after it was lost: a fresh motion model, the same id,
        gallery and standing."""
        new = _Track(self.id, det, t)
        new.gallery, new.embedded, new.hits = self.gallery, self.embedded, max(self.hits, TENTATIVE)
        new.tries = _reid.RETRIES
        return new

    def adopt(self, old: _Track) -> None:
        """Take the id, gallery and standing of ``old``, the lost track this young one turned out
        to be."""
        self.id = old.id
        self.gallery = (old.gallery + self.gallery)[-_reid.GALLERY :]
        self.hits = max(self.hits, old.hits)
        self.tries = _reid.RETRIES

    def predict(self, t: float) -> np.ndarray:
        """The state at time ``t`` (the filter steps forward; it never steps back)."""
        dt = max(t - self.t, 0.0)
        if dt > 0:
            side = float(max(self.kf.statePost[2, 0], self.kf.statePost[3, 0], 1.0))
            f = np.eye(6, dtype=np.float32)
            f[0, 4] = f[1, 5] = dt
            self.kf.transitionMatrix = f
            # Acceleration noise of ~1 face width per s^2; sizes drift by ~5% per second.
            q = np.diag([dt ** 3 / 3, dt ** 3 / 3, 0.05 * dt, 0.05 * dt, dt, dt]) * side ** 2
            self.kf.processNoiseCov = q.astype(np.float32)
            self.kf.predict()
            # predict() leaves statePost alone: adopt the prior until a detection corrects it.
            self.kf.statePost = self.kf.statePre.copy()
            self.kf.errorCovPost = self.kf.errorCovPre.copy()
            self.t = t
        return self.kf.statePost[:4, 0].copy()

    def correct(self, det: Detection, t: float) -> None:
        x, y, w, h = det.box
        side = float(max(w, h))
        # Haar's boxes jitter by a few percent of the face's side.
        self.kf.measurementNoiseCov = (np.eye(4) * (0.05 * side) ** 2).astype(np.float32)
        self.kf.correct(np.array([[x + w / 2], [y + h / 2], [w], [h]], np.float32))
        self.seen = t
        self.last = det
        self.hits += 1
        self.visible = True

    def carried(self, state: np.ndarray) -> Detection:
        """The last detection moved and scaled to the predicted box (landmarks move with it)."""
        cx, cy, w, h = (float(v) for v in state)
        w, h = max(w, 1.0), max(h, 1.0)
        box = (round(cx - w / 2), round(cy - h / 2), max(1, round(w)), max(1, round(h)))
        det = self.last
        points = None
        if det.landmarks is not None:
            ox, oy, ow, oh = det.box
            sx, sy = w / max(ow, 1), h / max(oh, 1)
            points = [((px - ox - ow / 2) * sx + cx, (py - oy - oh / 2) * sy + cy) for px, py in det.landmarks]
        return Detection(box, det.score, points)


def _assign(cost: np.ndarray, gate: np.ndarray) -> list[tuple[int, int]]:
    """(track, detection) pairs that minimise the total cost, where leaving a track unmatched costs
    its gate and a pair above its track's gate is not allowed. Without the "unmatched" option the
    solver would rather pair every track with something: a stale track could take a face's
    detection and push the face's own track onto a false detection next to it."""
    n_t, n_d = cost.shape
    big = 1e6
    m = np.full((n_t + n_d, n_d + n_t), big)
    m[:n_t, :n_d] = np.where(cost <= gate[:, None], cost, big)
    m[:n_t, n_d:][np.diag_indices(n_t)] = gate
    m[n_t:, :n_d][np.diag_indices(n_d)] = 0.0  # a detection left alone starts a new track
    m[n_t:, n_d:] = 0.0
    rows, cols = linear_sum_assignment(m)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if r < n_t and c < n_d and cost[r, c] <= gate[r]]


def _cost(state: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """How far a detection lies from a track's predicted box: centre distance in face widths plus
    the log size ratio (0 for the same box)."""
    cx, cy, w, h = (float(v) for v in state)
    x, y, bw, bh = box
    side = max((w + h) / 2, (bw + bh) / 2, 1.0)
    d = math.hypot(x + bw / 2 - cx, y + bh / 2 - cy) / side
    return d + abs(math.log(max(bw + bh, 1) / max(w + h, 1.0)))


class FaceTracker:
    """Track ids for the faces of a stream of frames.

    Args:
        max_gap: seconds a track waits for its face to be detected again before it ends (a face
            hidden behind another while two cross, or missed by the detector).
        gate: the largest detection-to-track distance (:func:`_cost`: centre distance in face
            widths plus the log size ratio) that continues a track.
        reid_window: seconds after its face was last seen that a lost track may be re-identified
            (``None``: the whole stream). Re-identification runs where :meth:`update` is given an
            ``embed`` function.
        reid_threshold: the largest embedding distance (:func:`deepfer.inference.reid.distance`)
            at which a face re-attaches to a lost track.

    Example:
        >>> tracker = FaceTracker()
        >>> _ = tracker.update([Detection((0, 0, 50, 50)), Detection((300, 0, 50, 50))], 0.0)
        >>> [t.track for t in tracker.update([Detection((305, 0, 50, 50)), Detection((5, 0, 50, 50))], 0.1)]
        [2, 1]
    """

    def __init__(self, max_gap: float = MAX_GAP, gate: float = GATE, reid_window: float | None = REID_WINDOW,
                 reid_threshold: float = _reid.THRESHOLD) -> None:
        if max_gap < 0 or gate <= 0:
            raise DeepferError(f"max_gap must be >= 0 and gate > 0, got {max_gap} and {gate}")
        if reid_window is not None and not reid_window >= 0:
            raise ParameterError("reid_window", "reid_window must be a number of seconds >= 0 or None (the whole "
                                 f"video), got {reid_window}")
        self.max_gap = max_gap
        self.gate = gate
        self.reid_window = reid_window
        self.reid_threshold = reid_threshold
        self._tracks: list[_Track] = []
        self._lost: list[_Track] = []  # ended tracks with a gallery, most recent last
        self._next = 1
        self.reattached = 0  # faces given back a lost track's id

    def cut(self) -> None:
        """A scene cut: every track ends (no motion is carried into the new scene); those with a
        gallery may still be re-identified."""
        self._lose(self._tracks)
        self._tracks = []

    def _lose(self, tracks: Sequence[_Track]) -> None:
        self._lost += [tr for tr in tracks if tr.gallery and tr.hits >= TENTATIVE]
        del self._lost[:-_MAX_LOST]

    @property
    def live(self) -> set[int]:
        """Ids of the tracks alive now (visible, or waiting for their face to come back)."""
        return {tr.id for tr in self._tracks}

    def update(self, detections: Sequence[Detection] | None, t: float,
               embed: Callable[[Detection], np.ndarray] | None = None) -> list[Tracked]:
        """Advance to time ``t`` and return the faces on this frame.

        Args:
            detections: the detector's faces on this frame, or ``None`` for a frame the detector
                did not run on (the tracks seen at the last detection are carried to their
                predicted boxes).
            t: the frame's time in seconds (non-decreasing).
            embed: a detection of this frame -> its face embedding, or ``None`` where the face
                cannot be judged (cut by the frame's edge); called only while a lost or hidden
                track could be the face's (for a detection no track continues, and for a new
                track's first :data:`~deepfer.inference.reid.RETRIES` detections), and for a
                face seen alone every :data:`~deepfer.inference.reid.REFRESH` s.

        Returns:
            One :class:`Tracked` per face on the frame: for a detection frame, the detections in
            their order; for a carried frame, the visible tracks in order of id.
        """
        states = [tr.predict(t) for tr in self._tracks]
        if detections is None:
            return [Tracked(tr.id, (d := tr.carried(s)).box, d, False)
                    for tr, s in zip(self._tracks, states) if tr.visible]
        owner: dict[int, _Track] = {}
        if self._tracks and detections:
            cost = np.array([[_cost(s, d.box) for d in detections] for s in states])
            gate = np.array([self.gate * (1 + GATE_GROWTH * (t - tr.seen)) for tr in self._tracks])
            # Tracks seen at the last detection choose first; those waiting for a hidden face
            # take what is left (DeepSORT's matching cascade, in two steps).
            for stage in (True, False):
                rows = [i for i, tr in enumerate(self._tracks) if tr.visible == stage]
                cols = [j for j in range(len(detections)) if j not in owner]
                if not rows or not cols:
                    continue
                for r, c in _assign(cost[np.ix_(rows, cols)], gate[rows]):
                    owner[cols[c]] = self._tracks[rows[r]]
        embeddings: dict[int, np.ndarray | None] = {}
        fresh = self._reidentify(detections, owner, embeddings, embed, t) if embed is not None else set()
        for tr in self._tracks:
            tr.visible = False
        out = []
        for i, det in enumerate(detections):
            tr = owner.get(i)
            if tr is None:
                tr = _Track(self._next, det, t)
                self._next += 1
                self._tracks.append(tr)
            elif i in fresh:  # re-attached by its embedding: its motion starts afresh at the face
                tr.visible = True
            else:
                tr.correct(det, t)
            e = embeddings.get(i)
            if e is None and i not in embeddings and embed is not None and tr.hits >= TENTATIVE \
                    and t - tr.embedded >= _reid.REFRESH and _alone(det, detections):
                e = embed(det)
            if e is not None:
                tr.remember(e, t)
            out.append(Tracked(tr.id, det.box, det, True))
        # A track of fewer than TENTATIVE detections (often a false face) ends at its first miss.
        keep = [tr for tr in self._tracks if tr.visible or (tr.hits >= TENTATIVE and t - tr.seen <= self.max_gap)]
        self._lose([tr for tr in self._tracks if tr not in keep])
        self._tracks = keep
        return out

    def _reidentify(self, detections: Sequence[Detection], owner: dict[int, _Track],
                    embeddings: dict[int, np.ndarray | None], embed: Callable[[Detection], np.ndarray | None],
                    t: float) -> set[int]:
        """Give the detections no track continues, and those of young tracks, the ids of lost or
        hidden tracks whose embeddings are near theirs (one detection per track, the nearest
        pairs first); returns the indices of the detections that continue a lost track afresh."""
        window = math.inf if self.reid_window is None else self.reid_window
        self._lost = [tr for tr in self._lost if t - tr.seen <= window]
        taken = set(map(id, owner.values()))
        hidden = [tr for tr in self._tracks if id(tr) not in taken and tr.gallery and tr.hits >= TENTATIVE]
        candidates = hidden + self._lost
        if not candidates:
            return set()
        check = []
        for i, det in enumerate(detections):
            tr = owner.get(i)
            if tr is None:
                embeddings[i] = embed(det)
            elif tr.tries < _reid.RETRIES and t - tr.born <= _reid.RETRIES * _reid.RETRY_EVERY * 2 \
                    and t - tr.embedded >= _reid.RETRY_EVERY:
                tr.tries += 1
                embeddings[i] = embed(det)
            if embeddings.get(i) is not None:
                check.append(i)
        if not check:
            return set()
        dist = np.array([[_reid.distance(embeddings[i], tr.gallery) for tr in candidates]  # type: ignore[arg-type]
                         for i in check])
        log.debug("t=%.2f: faces %s, nearest lost or hidden tracks at %s", t, [detections[i].box for i in check],
                  dist.min(axis=1).round(3).tolist())
        rows, cols = linear_sum_assignment(np.where(dist <= self.reid_threshold, dist, 1e6))
        fresh = set()
        for r, c in zip(rows, cols):
            if dist[r, c] > self.reid_threshold:
                continue
            old, i = candidates[c], check[r]
            young = owner.get(i)
            if old in self._lost:
                self._lost.remove(old)
            else:
                self._tracks.remove(old)
            if young is not None:  # a young track is the lost one: it takes its id from now on
                young.adopt(old)
            else:
                owner[i] = old.restart(detections[i], t)
                self._tracks.append(owner[i])
                fresh.add(i)
            self._reattach(t, old.id, detections[i], float(dist[r, c]))
        return fresh


    def _reattach(self, t: float, track: int, det: Detection, distance: float) -> None:
        """Count (and log) one re-identification."""
        self.reattached += 1
        log.debug("t=%.2f: face at %s re-identified as track %d (distance %.3f)", t, det.box, track, distance)


def _alone(det: Detection, detections: Sequence[Detection]) -> bool:
    """Whether no other detection overlaps ``det``'s box (its embedding is of one face)."""
    x, y, w, h = det.box
    return not any(o is not det and min(x + w, o.box[0] + o.box[2]) > max(x, o.box[0])
                   and min(y + h, o.box[1] + o.box[3]) > max(y, o.box[1]) for o in detections)


class ScoreSmoother:
    """Each track's class probabilities, averaged over time: an exponential moving average whose
    weight on a frame ``dt`` seconds after the previous one is ``1 - exp(-dt / time_constant)``
    (so it does not depend on the frame rate).

    Args:
        time_constant: seconds; 0 turns smoothing off (the smoothed scores are the raw ones).

    Example:
        >>> s = ScoreSmoother(1.0)
        >>> s.update(1, 0.0, np.array([1.0, 0.0])).tolist()
        [1.0, 0.0]
        >>> [round(float(v), 3) for v in s.update(1, 1.0, np.array([0.0, 1.0]))]
        [0.368, 0.632]
    """

    def __init__(self, time_constant: float = SMOOTHING) -> None:
        if not time_constant >= 0 or math.isinf(time_constant):
            raise DeepferError(f"the smoothing time constant must be a number of seconds >= 0, got {time_constant}")
        self.time_constant = time_constant
        self._state: dict[int, tuple[float, np.ndarray]] = {}

    def update(self, track: int, t: float, scores: np.ndarray) -> np.ndarray:
        """The smoothed scores of ``track`` after its scores at time ``t``."""
        prev = self._state.get(track)
        if prev is None or self.time_constant == 0:
            smoothed = np.asarray(scores, np.float64).copy()
        else:
            t0, s = prev
            a = 1.0 - math.exp(-max(t - t0, 0.0) / self.time_constant)
            smoothed = s + a * (np.asarray(scores, np.float64) - s)
        self._state[track] = (t, smoothed)
        return smoothed

    def __len__(self) -> int:
        return len(self._state)

    def keep(self, tracks: set[int]) -> None:
        """Forget every track not in ``tracks`` (those that ended)."""
        for k in [k for k in self._state if k not in tracks]:
            del self._state[k]


class TrackedStream:
    """Tracking and smoothing for one video or webcam: where the faces are on each frame, then
    their track ids and smoothed scores once classified.

    Frames go through :meth:`locate` in order (a batch of them may be located before any is
    classified), then each through :meth:`finish`.

    Args:
        fps: the video's frame rate (a frame's time is its index / fps); ``None`` for a webcam,
            whose frames are timed by the clock when located.
        detect_every: run the detector on one frame in this many (>= 1); the frames between get
            the tracks' predicted boxes.
        smoothing: the smoothed scores' time constant in seconds (0: none).
        max_gap: seconds a track survives without its face being detected.
        reid_window: seconds a lost track may be re-identified (``None``: the whole stream; 0:
            no re-identification).
        reid: re-identify faces: ``True`` with :func:`deepfer.inference.reid.default_embedder`
            (off, said once, where the ``reid`` extra is not installed), ``False`` never, or the
            :class:`~deepfer.inference.reid.FaceEmbedder` to use. Off when ``reid_window`` is 0.
        scene_cuts: detect scene cuts (a cut ends the tracks' motion).

    Raises:
        DeepferError: ``detect_every`` below 1, a negative ``smoothing`` or ``reid_window``.
    """

    def __init__(self, fps: float | None, detect_every: int = DETECT_EVERY, smoothing: float = SMOOTHING,
                 max_gap: float = MAX_GAP, reid_window: float | None = REID_WINDOW,
                 reid: bool | _reid.FaceEmbedder = True, scene_cuts: bool = True) -> None:
        if detect_every < 1:
            raise ParameterError("detect_every", f"detect_every must be >= 1, got {detect_every}")
        self.fps = fps
        self.detect_every = detect_every
        self.tracker = FaceTracker(max_gap, reid_window=reid_window)
        self.smoother = ScoreSmoother(smoothing)
        if reid is True and reid_window != 0:
            reid = _reid.default_embedder() or False
        self.embedder = reid if isinstance(reid, _reid.FaceEmbedder) and reid_window != 0 else None
        self.cuts = SceneCuts() if scene_cuts else None
        self._located = 0
        self._full_at: float | None = None  # the time of the last full search
        self._small = False  # the last full search found a face the quick search may miss
        self._seen = 0  # faces in the last detection
        self._start: float | None = None
        self._frames: dict[int, tuple[float, list[Tracked]]] = {}  # located, not yet finished

    def locate(self, picture: Picture, frame: int, detect: Callable[[Picture], list[Detection]],
               quick: Callable[[Picture], list[Detection]] | None = None) -> list[Detection]:
        """Where the faces are on ``frame``: the detector's faces on every ``detect_every``-th
        located frame, else the tracks' predicted boxes.

        Args:
            picture: the frame.
            frame: its index in the stream.
            detect: the detector (a picture -> its detections, largest first).
            quick: the detector searching only faces from
                :func:`~deepfer.vision.pyramid.stream_min_face` up, used between full searches
                (:data:`FULL_SEARCH_EVERY`); ``None``: ``detect`` on every detection.

        Returns:
            The detections to crop and classify, in the order :meth:`finish` expects their faces.
        """
        if self.fps:
            t = frame / self.fps
        else:
            now = clock.monotonic()
            self._start = now if self._start is None else self._start
            t = now - self._start
        if self.cuts is not None and self.cuts.update(picture.gray):
            self.tracker.cut()  # nothing is carried into the new scene, which is detected now
            self._located = 0
        dets = self._detect(picture, t, detect, quick) if self._located % self.detect_every == 0 else None
        self._located += 1
        embed = None
        if self.embedder is not None:
            embedder = self.embedder

            def embed(det: Detection) -> np.ndarray:
                return embedder.embed(picture, det)
        tracked = self.tracker.update(dets, t, embed)
        self._frames[frame] = (t, tracked)
        return [x.detection for x in tracked]

    def _detect(self, picture: Picture, t: float, detect: Callable[[Picture], list[Detection]],
                quick: Callable[[Picture], list[Detection]] | None) -> list[Detection]:
        """The quick search where it is enough, else the full one (see :data:`FULL_SEARCH_EVERY`)."""
        full_due = self._full_at is None or t - self._full_at >= FULL_SEARCH_EVERY or self._located == 0
        if quick is not None and not full_due and not self._small:
            dets = quick(picture)
            if len(dets) >= self._seen:
                self._seen = len(dets)
                return dets
        dets = detect(picture)
        floor = pyramid.stream_min_face(*picture.size) * SMALL_MARGIN
        self._full_at, self._small, self._seen = t, any(d.box[2] < floor for d in dets), len(dets)
        return dets

    def finish(self, frame: int, faces: Sequence[Face]) -> tuple[float, list[Face]]:
        """The time of a located frame and its faces with their track ids and smoothed scores.

        Args:
            frame: the frame's index, as given to :meth:`locate`.
            faces: its faces, classified, in the order :meth:`locate` returned their boxes.

        Returns:
            The frame's time in seconds and the faces with ``track``, ``smoothed`` and
            ``detected`` set.
        """
        t, tracked = self._frames.pop(frame)
        out = []
        for x, face in zip(tracked, faces):
            labels = list(face.scores)
            s = self.smoother.update(x.track, t, np.fromiter(face.scores.values(), np.float64, len(labels)))
            out.append(replace(face, track=x.track, smoothed={k: float(v) for k, v in zip(labels, s)},
                               detected=x.detected))
        live = self.tracker.live
        if len(self.smoother) > 2 * len(live) + 16:  # forget ended tracks: memory stays flat
            self.smoother.keep(live)
        return t, out


class Streams:
    """The :class:`TrackedStream` of each video or webcam of a run, made when its first frame
    comes and dropped once a later input has started (so a long list of videos keeps one or two).

    Args:
        detect_every: as in :class:`TrackedStream`.
        smoothing: as in :class:`TrackedStream`.
        reid_window: as in :class:`TrackedStream`.
    """

    def __init__(self, detect_every: int = DETECT_EVERY, smoothing: float = SMOOTHING,
                 reid_window: float | None = REID_WINDOW) -> None:
        TrackedStream(None, detect_every, smoothing, reid_window=reid_window, reid=False)  # check the options
        self.detect_every = detect_every
        self.smoothing = smoothing
        self.reid_window = reid_window
        self.rates: dict[str, float] = {}  # video name -> frame rate, filled by whoever reads the videos
        self._streams: dict[tuple[str, str], TrackedStream] = {}

    def get(self, source: Source) -> TrackedStream:
        """The stream of ``source``: a video's frames are timed by its rate in :attr:`rates`
        (:data:`~deepfer.inference.video.DEFAULT_FPS` where it is missing), a webcam's by the clock."""
        key = (source.kind, source.name)
        stream = self._streams.get(key)
        if stream is None:
            rate = self.rates.get(source.name, DEFAULT_FPS) if source.kind == "video" else None
            stream = self._streams[key] = TrackedStream(rate, self.detect_every, self.smoothing,
                                                        reid_window=self.reid_window)
        return stream

    def retain(self, source: Source) -> None:
        """Drop every stream but ``source``'s (all its earlier frames are finished)."""
        key = (source.kind, source.name)
        for k in [k for k in self._streams if k != key]:
            del self._streams[k]
