"""What each Ray actor runs: one :class:`~deepfer.inference.Recognizer`, built once from an
:class:`EngineSpec`, turns batches of manifest items into output rows.

Images go through :meth:`Recognizer.iter_results` (the path ``deepfer predict`` takes: faces of
32 images classified per batch, unreadable files as error records); a video segment is read from
its first frame (a seek), tracked from there, and its frames classified 32 at a time with
:meth:`Recognizer.predict_frames`.

Output rows are the flat results table's (:func:`deepfer.inference.results.columns`: one row per
face, one per image or frame without a face) with two more columns: ``id`` (the manifest item's)
and ``segment`` (a video segment's first frame; a face's track is ``(path, segment, track)``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepfer.distributed.fetch import local_copy
from deepfer.distributed.manifest import Item, from_row, is_uri
from deepfer.errors import DataError, DeepferError
from deepfer.inference.results import NO_FACE, Result, columns, rows
from deepfer.inference.tracking import DETECT_EVERY, SMOOTHING
from deepfer.vision.detector_spec import DetectorSpec

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

__all__ = ["EngineSpec", "RecognizerWorker", "output_schema"]

_CHUNK = 32  # frames classified together (as Recognizer.iter_results does)
_INT_COLUMNS = ("frame", "segment", "face", "track", "x", "y", "w", "h", "face_width")
_STR_COLUMNS = ("id", "path", "label", "error")


@dataclass(frozen=True)
class EngineSpec:
    """How every worker builds its recognizer and reads its items (the arguments of
    :class:`~deepfer.inference.Recognizer` and of ``deepfer predict``'s video options).

    Attributes:
        threads: torch (or onnxruntime) threads per worker: its share of the node's cores.
    """

    model: Any = None
    detector: DetectorSpec | None = field(default_factory=DetectorSpec)  # None: already-cropped faces
    backend: str | None = None
    batch_size: int = 256
    tta: bool | str | None = None
    calibrated: bool = True
    every: int = 1
    detect_every: int = DETECT_EVERY
    smoothing: float = SMOOTHING
    threads: int = 1

    def recognizer(self):  # type: ignore[no-untyped-def]
        from deepfer.inference import Recognizer

        return Recognizer(self.model, self.detector, self.backend, self.batch_size, self.tta,
                          threads=self.threads, calibrated=self.calibrated)


def output_columns(labels: Sequence[str]) -> list[str]:
    """The output's columns: ``id``, then the flat table's with ``segment`` after ``time``."""
    cols = columns(list(labels))
    i = cols.index("time") + 1
    return ["id", *cols[:i], "segment", *cols[i:]]


def output_schema(labels: Sequence[str]) -> pa.Schema:
    """The Arrow schema of the output rows (integers as int64, scores as float64, nullable)."""
    import pyarrow as pa

    def kind(c: str) -> pa.DataType:
        return pa.int64() if c in _INT_COLUMNS else pa.string() if c in _STR_COLUMNS else pa.float64()

    return pa.schema([(c, kind(c)) for c in output_columns(labels)])


class RecognizerWorker:
    """A Ray Data callable class: built once per actor, called on batches of manifest rows.

    Args:
        spec: how to build the recognizer.
        board: a :class:`~deepfer.distributed.progress.ProgressBoard` actor handle told what each
            batch did, or ``None``.
    """

    def __init__(self, spec: EngineSpec, board: Any = None) -> None:
        import cv2
        import torch

        # Each actor keeps to its share: torch's, OpenCV's and FFmpeg's decoding threads all default
        # to every core, and two actors on two cores then fight (video frames: 2 workers made 0.87x
        # the frames/s of one, benchmarks/DISTRIBUTED.md).
        torch.set_num_threads(spec.threads)
        cv2.setNumThreads(spec.threads)
        self.spec = spec
        self.rec = spec.recognizer()
        self.labels = list(self.rec.labels)
        self.schema = output_schema(self.labels)
        self.board = board

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        began, cpu = time.time(), time.process_time()

        items = [from_row(r) for r in batch.to_pylist()]
        out: list[dict[str, Any]] = []
        stats: dict[str, tuple[int, int, int]] = {}
        for item, results in self.process(items):
            recs = faces = errors = 0
            for res in results:
                recs += 1
                faces += len(res.faces)
                errors += res.error is not None and res.error != NO_FACE
                for row in rows(res, self.labels):
                    out.append({**row, "id": item.id, "segment": item.start})
            stats[item.id] = (recs, faces, errors)
        table = pa.Table.from_pylist(out, schema=self.schema)
        if self.board is not None:
            self.board.add.remote(stats, os.getpid(), began, time.time(), time.process_time() - cpu)
        return table

    def process(self, items: Sequence[Item]) -> Iterator[tuple[Item, list[Result]]]:
        """Each item with its results (at least one: an unreadable input is an error record)."""
        images: list[Item] = []
        for item in items:
            if item.kind == "image":
                images.append(item)
                continue
            yield from self._images(images)
            images = []
            if item.kind == "video":
                yield item, list(self._segment(item))
            else:
                yield item, [Result(item.path, None, [], item.error or f"{item.path}: cannot be read", decoded=False)]
        yield from self._images(images)

    def _images(self, items: list[Item]) -> Iterator[tuple[Item, list[Result]]]:
        from deepfer.inference.inputs import Source

        if not items:
            return
        with contextlib.ExitStack() as stack:
            sources, local = [], {}
            for it in items:
                name = it.where
                if is_uri(it.where):
                    try:
                        name = str(stack.enter_context(local_copy(it.where)))
                    except DataError as exc:
                        name, local[it.path] = it.where, str(exc)
                sources.append(Source("image", name, Path(Path(name).name)))
            results = self.rec.iter_results(sources)
            for it, src in zip(items, sources):
                if it.path in local:  # the object could not be fetched
                    yield it, [Result(it.path, None, [], local[it.path], decoded=False)]
                    next(results)
                    continue
                res = next(results)
                if src.name != it.path:  # read from a local copy: name the object, not the copy
                    error = res.error.replace(src.name, it.path) if res.error else None
                    res = Result(it.path, res.frame, res.faces, error, res.decoded, None, res.time)
                yield it, [res]

    def _segment(self, item: Item) -> Iterator[Result]:
        """The results of a video segment's frames (global indexes and times), tracked from its
        first frame; a frame that cannot be decoded ends the segment with an error record."""
        from deepfer.inference.tracking import TrackedStream
        from deepfer.inference.video import iter_frames, open_video
        from deepfer.vision import from_array

        start, every = item.start or 0, self.spec.every
        first = -(-start // every) * every
        limit = None if item.stop is None else max(0, -(-(item.stop - first) // every))
        with contextlib.ExitStack() as stack:
            try:
                local = str(stack.enter_context(local_copy(item.where))) if is_uri(item.where) else item.where
                cap = open_video(local, self.spec.threads)
            except DeepferError as exc:
                yield Result(item.path, None, [], str(exc).replace(item.where, item.path), decoded=False)
                return
            stream = TrackedStream(item.fps, self.spec.detect_every, self.spec.smoothing)
            frames = iter_frames(cap, every, limit, name=item.path, start=first) if limit != 0 else iter([])
            pending: list[tuple[int, Any]] = []
            n, error = 0, None
            with contextlib.closing(frames):
                while True:
                    try:
                        got = next(frames, None)
                        if got is not None:
                            index, bgr = got
                            pending.append((index, from_array(bgr, "bgr", where=f"{item.path}: frame {index}")))
                    except DataError as exc:
                        got, error = None, str(exc)
                    if pending and (got is None or len(pending) >= _CHUNK):
                        for (index, _), (t, faces) in zip(pending, self.rec.predict_frames(
                                [p for _, p in pending], stream, [i for i, _ in pending])):
                            n += 1
                            yield Result(item.path, index, faces, None if faces else NO_FACE, True, None, t)
                        pending = []
                    if got is None:
                        break
            if error is not None:
                yield Result(item.path, None, [], error, decoded=False)
            elif not n:
                yield Result(item.path, None, [], f"{item.path}: no frames from frame {first}", decoded=False)

