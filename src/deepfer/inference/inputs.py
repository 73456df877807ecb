"""What ``deepfer predict PATH...`` reads: the arguments expanded into image files, video files
and webcams, each with the name its annotated copy gets.

Folders are walked recursively in sorted order and yield the files whose suffix Pillow or the
video reader knows; a file named on the command line is always tried (Pillow recognises images by
content, not by name), so an unsupported file becomes an error record rather than being skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from deepfer.files import not_a_file
from deepfer.inference.video import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

Kind = Literal["image", "video", "webcam", "error"]
IMAGE_EXTENSIONS = frozenset(ext.lower() for ext in Image.registered_extensions())


@dataclass(frozen=True)
class Source:
    """One input.

    Attributes:
        kind: ``image``, ``video``, ``webcam`` or ``error`` (a path that could not be listed).
        name: the path as the user gave it (or ``webcam:N``): the ``path`` of its results.
        rel: where its annotated copy goes, relative to the ``--annotate`` folder.
        webcam: the device index of a webcam.
        error: why an ``error`` source cannot be read.
    """

    kind: Kind
    name: str
    rel: Path
    webcam: int | None = None
    error: str | None = None


def _kind(path: Path) -> Kind:
    return "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"


def expand(paths: Sequence[str | Path]) -> list[Source]:
    """The inputs that ``paths`` (files and folders) name, in order.

    Args:
        paths: image files, video files and folders.

    Returns:
        One :class:`Source` per file; a missing path or a folder with nothing readable is an
        ``error`` source, so that it shows up in the results.
    """
    out: list[Source] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            found = 0
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    fp = Path(root) / f
                    suffix = fp.suffix.lower()
                    if f.startswith(".") or (suffix not in IMAGE_EXTENSIONS and suffix not in VIDEO_EXTENSIONS):
                        continue
                    out.append(Source(_kind(fp), str(fp), Path(p.resolve().name or "root") / fp.relative_to(p)))
                    found += 1
            if not found:
                out.append(Source("error", str(p), Path(p.name), error=f"{p}: no images or videos in this folder"))
            log.info("%s: %d files", p, found)
        elif p.exists():
            out.append(Source(_kind(p), str(p), Path(p.name)))
        else:
            out.append(Source("error", str(p), Path(p.name), error=f"{p}: {not_a_file(p)}"))
    return _distinct(out)


def _distinct(sources: list[Source]) -> list[Source]:
    """The same file given twice is read twice, as two inputs with two streams, two annotated copies
    and two timelines: the repeat is named by an equivalent path (``./clip.avi`` after
    ``clip.avi``), since everything downstream tells inputs apart by name."""
    seen: set[str] = set()
    out = []
    for s in sources:
        name = s.name
        while s.kind in ("image", "video") and name in seen:
            head, tail = os.path.split(name)
            name = os.path.join(head or ".", ".", tail) if head else os.path.join(".", tail)
        seen.add(name)
        out.append(s if name == s.name else dataclasses.replace(s, name=name))
    return out


def webcam(index: int) -> Source:
    """The source for webcam ``index``."""
    return Source("webcam", f"webcam:{index}", Path(f"webcam{index}.mp4"), webcam=index)
