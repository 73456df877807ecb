"""Where and at which scales a detector looks: a search pyramid with a stated face range.

A detector finds faces from its own smallest size (in pixels of the image it is given) up to the
size of that image. To find every face from ``min_face`` pixels of the original up, the image is
searched at the scale that makes a ``min_face`` face the detector's smallest, and no larger: a
12 Mpx photo is never searched at full size for faces of 100 px. Where that copy is large it is
cut into tiles that overlap by a quarter of a tile, so one call's memory is bounded by the tile
(YuNet: ~50 MB per Mpx searched, ``benchmarks/RESOLUTION.md``); a face wider than the overlap may
be cut by every tile, so a coarser level (the next scale down) finds those, and so on until a
level fits one tile. Detections of all tiles and levels are merged by non-maximum suppression.

The default range: faces from :data:`MIN_FACE_FRACTION` of the image's longer side, or
:data:`MIN_FACE_FLOOR` pixels, whichever is larger (a 4000x3000 photo: from 100 px; 1920x1080:
from 48 px; 640x480: from 32 px); ``small_faces`` searches down to the detector's smallest face at
full size (exhaustive, slower), and an explicit ``min_face`` states its own floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["MIN_FACE_FLOOR", "MIN_FACE_FRACTION", "STREAM_FACE_FRACTION", "TILE", "Level", "default_min_face",
           "stream_min_face", "merge", "plan", "search"]

MIN_FACE_FLOOR = 32
# Faces narrower than 1/40 of the longer side are not searched by default: 100 px on a 4000x3000
# photo, 48 px at 1920x1080, 200 px at 48 Mpx; a fraction of the longer rather than the shorter
# side, so that a 16:9 frame is searched like a 4:3 photo of the same width
# (benchmarks/RESOLUTION.md measures the cost and recall of this choice).
MIN_FACE_FRACTION = 1 / 40
# Between the full searches of a video or webcam (deepfer.inference.tracking.TrackedStream), frames are
# searched for faces from 1/12 of the longer side (107 px at 1280x720, 53 px at 640x480): a 720p frame
# is then searched at 384x216 instead of 1280x720, about a tenth of the work (benchmarks/TRACKING_SPEED.md).
STREAM_FACE_FRACTION = 1 / 12
TILE = 2048  # the side of the largest square one detector call sees (YuNet: ~200 MB at this size)
NMS_IOU = 0.3  # boxes overlapping more than this are one face
NMS_INSIDE = 0.7  # a box this much inside a larger one (a face cut at a tile edge) is the same face


def default_min_face(width: int, height: int) -> int:
    """The narrowest face searched by default in a ``width`` x ``height`` image, in pixels."""
    return max(MIN_FACE_FLOOR, round(max(width, height) * MIN_FACE_FRACTION))


def stream_min_face(width: int, height: int) -> int:
    """The narrowest face of the quick search between a stream's full searches, in pixels."""
    return max(default_min_face(width, height), round(max(width, height) * STREAM_FACE_FRACTION))


@dataclass(frozen=True)
class Level:
    """One scale of the search: the image resized by ``scale``, searched in ``tiles``.

    Attributes:
        scale: the factor from original pixels to this level's pixels (<= 1).
        tiles: (x0, y0, x1, y1) rectangles in this level's pixels that together cover it.
    """

    scale: float
    tiles: tuple[tuple[int, int, int, int], ...]


def _tiles(w: int, h: int, tile: int, overlap: int) -> tuple[tuple[int, int, int, int], ...]:
    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        k = math.ceil((n - overlap) / (tile - overlap))
        step = (n - tile) / (k - 1)
        return [round(i * step) for i in range(k)]

    return tuple((x, y, min(w, x + tile), min(h, y + tile)) for y in starts(h) for x in starts(w))


def plan(width: int, height: int, smallest: int, min_face: int, max_scale: float = 1.0,
         tile: int = TILE) -> list[Level]:
    """The levels that find every face from ``min_face`` pixels up in a ``width`` x ``height`` image.

    Args:
        width, height: the image's size.
        smallest: the detector's smallest reliable face, in pixels of the image it searches.
        min_face: the narrowest face to find, in pixels of the original.
        max_scale: never search larger than this (1: never enlarge).
        tile: the largest side one call sees.

    Example:
        >>> [(round(lv.scale, 2), len(lv.tiles)) for lv in plan(4000, 3000, 32, 100)]
        [(0.32, 1)]
        >>> [(round(lv.scale, 3), len(lv.tiles)) for lv in plan(8000, 6000, 32, 32)]
        [(1.0, 20), (0.062, 1)]
    """
    overlap = tile // 4
    scale = min(max_scale, 1.0, smallest / max(1, min_face))
    levels = []
    while True:
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        if w <= tile and h <= tile:
            levels.append(Level(scale, ((0, 0, w, h),)))
            return levels
        levels.append(Level(scale, _tiles(w, h, tile, overlap)))
        # Faces wider than the overlap may be cut in every tile: the next level makes them `smallest`.
        scale *= smallest / overlap


def _level_images(gray: np.ndarray, levels: list[Level]) -> Iterator[tuple[Level, np.ndarray]]:
    """Each level's image, made from the previous (finer) one where that is cheaper than the original."""
    h, w = gray.shape[:2]
    for lv in levels:
        size = (max(1, round(w * lv.scale)), max(1, round(h * lv.scale)))
        if size == (w, h):
            yield lv, gray
        else:
            yield lv, cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def merge(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices of the boxes kept by non-maximum suppression, best score first.

    A box is dropped where it overlaps a better one by more than :data:`NMS_IOU` (intersection over
    union) or lies :data:`NMS_INSIDE` inside one (intersection over its own area).

    Args:
        boxes: (N, 4) x, y, w, h.
        scores: (N,) higher is better.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    b = np.asarray(boxes, np.float64)
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    area = b[:, 2] * b[:, 3]
    ix = np.clip(np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None]), 0, None)
    iy = np.clip(np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None]), 0, None)
    inter = ix * iy  # (N, N)
    iou = inter / (area[:, None] + area[None] - inter)
    inside = inter / np.minimum(area[:, None], area[None])
    same = (iou > NMS_IOU) | (inside > NMS_INSIDE)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep: list[int] = []
    dropped = np.zeros(len(b), bool)
    for i in order:
        if dropped[i]:
            continue
        keep.append(int(i))
        dropped |= same[i]
    return np.asarray(keep, np.int64)


Raw = tuple[np.ndarray, np.ndarray, list]  # (N, 4) boxes, (N,) scores, per-box extra (landmarks)


def search(gray: np.ndarray, detect: Callable[[np.ndarray], Raw], smallest: int, min_face: int,
           max_scale: float = 1.0, tile: int = TILE) -> Raw:
    """Run ``detect`` over the pyramid of ``gray`` and merge what each call finds.

    Args:
        gray: the uint8 (H, W) image.
        detect: a detector call on one uint8 tile: boxes (N, 4) x, y, w, h and scores (N,) in the
            tile's pixels, and one extra per box (landmarks as an (K, 2) array in the tile's
            pixels, or ``None``).
        smallest: the detector's smallest reliable face, in pixels of what it searches.
        min_face: the narrowest face to find, in pixels of ``gray``.
        max_scale: never search larger than this.
        tile: the largest side one call sees.

    Returns:
        The merged boxes (N, 4), scores (N,) and extras, in ``gray``'s pixels, best first.
    """
    h, w = gray.shape[:2]
    levels = plan(w, h, smallest, min_face, max_scale, tile)
    all_boxes, all_scores, all_extra = [], [], []
    for lv, img in _level_images(gray, levels):
        lh, lw = img.shape[:2]
        for x0, y0, x1, y1 in lv.tiles:
            boxes, scores, extra = detect(img[y0:y1, x0:x1])
            for box, score, ex in zip(np.asarray(boxes, np.float64).reshape(-1, 4), scores, extra, strict=True):
                bx, by, bw, bh = box
                # A face touching an edge shared with another tile is whole in that other tile (or,
                # where wider than the overlap, at the next level): drop the cut piece here.
                m = 2.0
                if ((x0 > 0 and bx <= m) or (y0 > 0 and by <= m) or (x1 < lw and bx + bw >= x1 - x0 - m)
                        or (y1 < lh and by + bh >= y1 - y0 - m)):
                    continue
                f = 1.0 / lv.scale
                all_boxes.append(((bx + x0) * f, (by + y0) * f, bw * f, bh * f))
                all_scores.append(float(score))
                all_extra.append(None if ex is None else (np.asarray(ex, np.float64) + (x0, y0)) * f)
    if not all_boxes:
        return np.zeros((0, 4)), np.zeros(0), []
    boxes_a, scores_a = np.asarray(all_boxes), np.asarray(all_scores)
    keep = merge(boxes_a, scores_a)
    return boxes_a[keep], scores_a[keep], [all_extra[i] for i in keep]
