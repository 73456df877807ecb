"""Draw boxes, labels and scores on images and videos (``deepfer predict --annotate OUT``).

``OUT`` is a folder (annotated copies keep the inputs' relative paths; videos and webcams become
``.mp4`` files) or, for a single input, the file to write (``out/demo.jpg``). A folder ``x/`` annotated
into ``out/x/`` fills ``out/x/`` itself, not ``out/x/x/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Self

import cv2
import numpy as np

from deepfer.errors import DeepferError, ParameterError
from deepfer.files import atomic_open
from deepfer.inference.inputs import IMAGE_EXTENSIONS, Source
from deepfer.inference.results import Face, Result
from deepfer.inference.video import DEFAULT_FPS, VIDEO_EXTENSIONS, VideoWriter

log = logging.getLogger(__name__)

# BGR colours per emotion; anything else is drawn in white.
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 230), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (0, 210, 255),
    "sad": (200, 120, 40), "surprise": (0, 140, 255), "neutral": (200, 200, 200), "contempt": (120, 120, 0),
}
_WRITABLE = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


def _dashed_rectangle(image: np.ndarray, p0: tuple[int, int], p1: tuple[int, int], color: tuple[int, int, int],
                      thick: int) -> None:
    """A rectangle of dashes (a box the tracker carried, not one the detector found)."""
    (x0, y0), (x1, y1) = p0, p1
    dash = max(4, 4 * thick)
    for a, b, fixed, horizontal in ((x0, x1, y0, True), (x0, x1, y1, True), (y0, y1, x0, False), (y0, y1, x1, False)):
        for s in range(a, b, 2 * dash):
            e = min(s + dash, b)
            q0, q1 = ((s, fixed), (e, fixed)) if horizontal else ((fixed, s), (fixed, e))
            cv2.line(image, q0, q1, color, thick)


def draw(image: np.ndarray, faces: list[Face], top: int = 2) -> np.ndarray:
    """Draw each face's box, label and its ``top`` scores on a BGR image, in place; a tracked
    face (video, webcam) shows its track id and smoothed label, then its raw label. A box the
    tracker carried (``detected`` false) is dashed and thin; the detector's boxes are solid.

    Args:
        image: uint8 (H, W, 3) BGR.
        faces: the faces to draw.
        top: how many class scores to print under the label.

    Returns:
        ``image``.
    """
    h, w = image.shape[:2]
    scale = max(0.4, min(w, h) / 900)
    thick = max(1, round(scale * 2))
    for face in faces:
        x, y, bw, bh = face.box
        color = COLORS.get(face.smoothed_label or face.label, (255, 255, 255))
        if face.detected is False:
            _dashed_rectangle(image, (x, y), (x + bw, y + bh), color, max(1, thick // 2))
        else:
            cv2.rectangle(image, (x, y), (x + bw, y + bh), color, thick)
        ranked = sorted(face.scores.items(), key=lambda kv: -kv[1])[:top]
        lines = [f"{face.label} {face.score:.2f}"] + [f"{k} {v:.2f}" for k, v in ranked[1:]]
        if face.track is not None and face.smoothed:  # a tracked face: its id and smoothed label first
            sl = face.smoothed_label or face.label
            lines = [f"#{face.track} {sl} {face.smoothed[sl]:.2f}", f"raw {face.label} {face.score:.2f}"]
        (_, th), base = cv2.getTextSize(lines[0], cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        step = th + base + 4
        # The text block sits above the box, or inside its top when the box touches the top edge.
        top_y = y - step * len(lines) if y >= step * len(lines) else y
        for i, text in enumerate(lines):
            (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
            y0 = top_y + i * step
            cv2.rectangle(image, (x, y0), (x + tw + 4, y0 + step), color, cv2.FILLED)
            cv2.putText(image, text, (x + 2, y0 + step - base - 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (0, 0, 0), thick, cv2.LINE_AA)
    return image


class Annotator:
    """Writes annotated copies of the results of ``sources``.

    Args:
        out: a folder, or a single file (an image suffix for one image input, a video suffix for
            one video or webcam input).
        sources: the inputs, as :meth:`Recognizer.iter_results` reads them.
        every: the ``every`` of the run (annotated videos play at the source's fps / every).

    Raises:
        DeepferError: ``out`` names a file that does not suit the inputs.
    """

    def __init__(self, out: str | Path, sources: list[Source], every: int = 1) -> None:
        out = Path(out)
        suffix = out.suffix.lower()
        self.every = every
        self.targets: dict[str, Path] = {}
        self.sources = {s.name: s for s in sources}
        self._videos: dict[str, VideoWriter] = {}
        self._written: dict[Path, str | None] = {}  # files complete on disk -> video codec (None: an image)
        self.out = out
        readable = [s for s in sources if s.kind != "error"]
        if suffix in _WRITABLE or suffix in VIDEO_EXTENSIONS:
            want = "image" if suffix in _WRITABLE else "video"
            if len(readable) != 1 or (readable[0].kind == "image") != (want == "image"):
                raise ParameterError("out", f"out {out}: a {want} file name needs exactly one {want} input; "
                                     "give a folder for several inputs")
            self.targets[readable[0].name] = out
            return
        if suffix and suffix in IMAGE_EXTENSIONS:
            raise ParameterError("out", f"out {out}: cannot write {suffix} images; use .jpg or .png")
        taken: set[Path] = set()
        # One folder annotated into a folder of its own name: its files go straight in.
        tops = {s.rel.parts[0] if len(s.rel.parts) > 1 else None for s in readable}
        strip = tops == {out.name}
        for s in readable:
            rel = Path(*s.rel.parts[1:]) if strip else s.rel
            if s.kind != "image":
                rel = rel.with_suffix(".mp4")
            elif rel.suffix.lower() not in _WRITABLE:
                rel = rel.with_suffix(rel.suffix + ".png")
            target, n = out / rel, 1
            while target in taken:  # two inputs with the same file name
                target = out / rel.with_name(f"{rel.stem}-{n}{rel.suffix}")
                n += 1
            taken.add(target)
            self.targets[s.name] = target

    def write(self, result: Result) -> Path | None:
        """Draw one result and write it; returns the file written to (``None``: nothing to draw)."""
        target = self.targets.get(result.path or "")
        if target is None or result.picture is None:
            return None
        image = draw(result.picture.color(), result.faces)
        if result.frame is None:
            ok, data = cv2.imencode(target.suffix, image)
            if not ok:
                raise DeepferError(f"{target}: cannot encode the annotated image")
            try:
                with atomic_open(target) as f:  # a full disk leaves no truncated image behind
                    f.write(data.tobytes())
            except OSError as exc:
                raise DeepferError(f"{target}: cannot write the annotated image ({exc.strerror or exc})") from None
            self._written[target] = None
            return target
        writer = self._videos.get(result.path or "")
        if writer is None:
            rate = max(1.0, (result.fps or DEFAULT_FPS) / self.every)  # the frames kept, at their pace
            writer = self._videos[result.path or ""] = VideoWriter(target, rate)
        writer.write(image)
        return target

    def close(self) -> None:
        """Finish every video.

        Raises:
            DeepferError: a video could not be written completely (the others are still finished).
        """
        failed: DeepferError | None = None
        for writer in self._videos.values():
            try:
                writer.close()
                if writer.frames:  # a writer whose file could not be created wrote nothing
                    self._written[writer.path] = writer.codec
            except DeepferError as exc:
                failed = failed or exc
        self._videos.clear()
        if failed is not None:
            raise failed

    @property
    def written(self) -> list[Path]:
        """The files complete on disk (a video once :meth:`close` has checked it)."""
        return list(self._written)

    def report(self) -> list[str]:
        """What was written, as lines for the user: ``wrote out/demo.jpg``, ``wrote N annotated images
        to OUT`` for a folder, and each video with its codec (``wrote out/clip.mp4 (H.264)``)."""
        images = [p for p, codec in self._written.items() if codec is None]
        lines = []
        if len(images) == 1 and images[0] == self.out:
            lines.append(f"wrote {images[0]}")
        elif images:
            lines.append(f"wrote {len(images)} annotated image{'s' if len(images) > 1 else ''} to {self.out}")
        lines += [f"wrote {p} ({codec})" for p, codec in self._written.items() if codec is not None]
        return lines

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
