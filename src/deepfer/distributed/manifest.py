"""The work list of a distributed run, made on the driver before any image is read: one row per
image and one per time segment of each video, each with a stable id (the path, and a video
segment's first frame) that is both the resume key and the key of its rows in the output.

Frame indexes and times stay the video's own (global); a segment is the frames
``[start, stop)`` (``stop`` is open, ``None``, on a video's last segment, so a container that
understates its frame count loses nothing). Paths are local files and folders, or URIs of any
filesystem pyarrow opens (``s3://``, ``gs://``, ``hdfs://``, ``file://``).

Example:
    >>> parse_duration("90s"), parse_duration("2m"), parse_duration("1.5")
    (90.0, 120.0, 1.5)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepfer.errors import DeepferError
from deepfer.inference.inputs import IMAGE_EXTENSIONS, expand
from deepfer.inference.video import VIDEO_EXTENSIONS, fps, frame_count, open_video

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

__all__ = ["Item", "build_manifest", "item_id", "is_uri", "manifest_schema", "parse_duration"]

DEFAULT_SEGMENT = 60.0  # seconds of video per work item


@dataclass(frozen=True)
class Item:
    """One unit of work.

    Attributes:
        id: the stable key: the path for an image, ``path#start`` for a video segment.
        path: the input's name, as the user gave it (the ``path`` of its output rows).
        kind: ``image``, ``video`` or ``error`` (a path that cannot be listed or opened).
        start: a segment's first frame (global index), ``None`` for images.
        stop: the frame after a segment's last, ``None`` for images and a video's last segment.
        fps: a video's frame rate (frame times are index / fps).
        frames: the frames the item holds (an estimate for videos, from the container).
        error: why an ``error`` item cannot be read.
        where: what the workers open: the absolute local path, or the URI.
    """

    id: str
    path: str
    kind: str
    start: int | None = None
    stop: int | None = None
    fps: float | None = None
    frames: int = 1
    error: str | None = None
    where: str = ""


def item_id(path: str, start: int | None) -> str:
    """The stable id of an image (``start`` None) or of the video segment starting at ``start``."""
    return path if start is None else f"{path}#{start}"


def is_uri(path: str) -> bool:
    """Whether ``path`` names an object in a pyarrow filesystem (``s3://...``) rather than a local path."""
    return "://" in path


def parse_duration(text: str | float) -> float:
    """Seconds from ``"60s"``, ``"2m"``, ``"1h"`` or a plain number of seconds.

    Raises:
        DeepferError: not a positive duration.
    """
    s = str(text).strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(s[-1:], None)
    try:
        value = float(s[:-1] if scale else s) * (scale or 1.0)
    except ValueError:
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise DeepferError(f"--segment must be a positive duration such as 60s, 2m or 30, got {text!r}")
    return value


def _kept(start: int, stop: int, every: int) -> int:
    """How many of the frames [start, stop) are kept when one in ``every`` is (global indexes)."""
    first = -(-start // every) * every
    return max(0, -(-(stop - first) // every))


def _where(path: str) -> str:
    return path if is_uri(path) else str(Path(path).resolve())


def _video_items(path: str, local: str, segment: float, every: int, detect_every: int) -> list[Item]:
    try:
        cap = open_video(local)
        rate, count = fps(cap), frame_count(cap)
        cap.release()
    except DeepferError as exc:
        return [Item(item_id(path, 0), path, "error", 0, error=str(exc).replace(local, path), where=_where(path))]
    # Frames per segment, a whole number of detector periods: the detector runs on the same frames
    # as in one pass over the whole video (the frames carried between detections may differ just
    # after a boundary, where the tracker starts afresh).
    period = every * detect_every
    length = max(1, round(segment * rate / period)) * period
    if count is None:  # unknown length: one open segment
        return [Item(item_id(path, 0), path, "video", 0, None, rate, 1, where=_where(path))]
    starts = list(range(0, count, length)) or [0]
    out = []
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else None
        out.append(Item(item_id(path, start), path, "video", start, stop, rate,
                        max(1, _kept(start, stop if stop is not None else count, every)), where=_where(path)))
    return out


def _list_uri(uri: str) -> list[str]:
    """The image and video objects under a URI (itself when it names one object), sorted."""
    import pyarrow.fs as pafs

    try:
        fs, root = pafs.FileSystem.from_uri(uri)
        info = fs.get_file_info(root)
    except Exception as exc:  # a bad URI, missing credentials, an unknown scheme
        raise DeepferError(f"{uri}: cannot open ({type(exc).__name__}: {exc})") from exc
    if info.type == pafs.FileType.File:
        return [uri]
    if info.type == pafs.FileType.NotFound:
        return []
    scheme = uri.split("://", 1)[0]
    found = []
    for f in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        suffix = Path(f.path).suffix.lower()
        if f.type == pafs.FileType.File and not Path(f.path).name.startswith(".") and \
                (suffix in IMAGE_EXTENSIONS or suffix in VIDEO_EXTENSIONS):
            found.append(f"{scheme}://{f.path}" if scheme != "file" else f"file://{f.path}")
    return sorted(found)


def build_manifest(paths: Sequence[str | Path], segment: float = DEFAULT_SEGMENT, every: int = 1,
                   detect_every: int = 1) -> list[Item]:
    """The work items of ``paths``, in input order (folders walked as ``deepfer predict`` walks them).

    Args:
        paths: image files, video files, folders, or URIs of a pyarrow filesystem.
        segment: seconds of video per item.
        every: keep one video frame in ``every`` (for the frame estimates).
        detect_every: the detector runs on one kept frame in this many; segments are a multiple
            of ``every * detect_every`` frames long.

    Returns:
        One item per image, one per video segment, one ``error`` item per path that cannot be
        listed or opened (it becomes an error record in the output, as in ``deepfer predict``).

    Raises:
        DeepferError: ``segment`` or ``every`` out of range, or the same id twice (a path given twice).
    """
    if not segment > 0 or every < 1 or detect_every < 1:
        raise DeepferError(f"segment must be > 0 seconds, every and detect_every >= 1, got {segment}, {every} "
                           f"and {detect_every}")
    items: list[Item] = []
    for arg in paths:
        arg = str(arg)
        if is_uri(arg):
            objects = _list_uri(arg)
            if not objects:
                items.append(Item(item_id(arg, None), arg, "error", error=f"{arg}: no images or videos here", where=arg))
            for uri in objects:
                if Path(uri).suffix.lower() in VIDEO_EXTENSIONS:
                    from deepfer.distributed.fetch import local_copy

                    with local_copy(uri) as local:
                        items += _video_items(uri, str(local), segment, every, detect_every)
                else:
                    items.append(Item(item_id(uri, None), uri, "image", where=uri))
            continue
        for src in expand([arg]):
            if src.kind == "video":
                items += _video_items(src.name, src.name, segment, every, detect_every)
            elif src.kind == "image":
                items.append(Item(item_id(src.name, None), src.name, "image", where=_where(src.name)))
            else:
                items.append(Item(item_id(src.name, None), src.name, "error", error=src.error, where=_where(src.name)))
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise DeepferError(f"{it.path}: given twice (each input is processed once; its id is {it.id!r})")
        seen.add(it.id)
    log.info("manifest: %d items (%d video segments)", len(items), sum(it.kind == "video" for it in items))
    return items


def manifest_schema() -> pa.Schema:
    """The Parquet schema of the manifest (the fields of :class:`Item`)."""
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("path", pa.string()), ("kind", pa.string()), ("start", pa.int64()),
                      ("stop", pa.int64()), ("fps", pa.float64()), ("frames", pa.int64()), ("error", pa.string()),
                      ("where", pa.string())])


def to_table(items: Sequence[Item]) -> pa.Table:
    """The manifest as an Arrow table."""
    import pyarrow as pa

    return pa.Table.from_pylist([asdict(it) for it in items], schema=manifest_schema())


def from_row(row: dict[str, Any]) -> Item:
    """An :class:`Item` from a manifest row (as Ray Data hands it over)."""
    def opt(v: Any, cast: type) -> Any:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else cast(v)

    return Item(str(row["id"]), str(row["path"]), str(row["kind"]), opt(row["start"], int), opt(row["stop"], int),
                opt(row["fps"], float), int(row["frames"]), opt(row["error"], str), str(row["where"]))
