"""The common in-memory form every dataset reader returns.

A :class:`FaceData` is a set of parallel arrays: one uint8 image, label, subject, original split
and source path per sample. Protocols select index arrays from it; nothing copies images until a
training or evaluation loop asks for a subset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepfer.errors import DataError
from deepfer.labels import EMOTIONS
from deepfer.vision.pictures import from_bytes, resize


def pixel_hash(image: np.ndarray) -> int:
    """64-bit hash of an image's shape and pixels: equal pixels give equal hashes (the duplicate
    and leak checks compare these)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(np.asarray(image.shape, np.int32).tobytes())
    h.update(np.ascontiguousarray(image).tobytes())
    return int.from_bytes(h.digest(), "little")


@dataclass(frozen=True)
class FaceData:
    """Faces and their annotations, all arrays of length N.

    Attributes:
        name: dataset name (``fer2013``, ``ferplus``, ``ckplus``, ``jaffe``, ``ferg``).
        images: uint8 array, shape (N, H, W), grayscale.
        labels: int64 array (N,), indices into :data:`deepfer.labels.EMOTIONS`.
        subjects: str array (N,): the person (CK+, JAFFE), the character (FERG) or a unique id
            per image where the dataset has no identities (FER2013, FER+).
        splits: str array (N,): the split the dataset itself assigns (``Training``,
            ``PublicTest``, ``PrivateTest`` for FER2013/FER+; ``all`` where there is none).
        paths: str array (N,): where each sample came from (``file``, ``archive::member`` or
            ``file#row``).
        hashes: uint64 array (N,): a hash of the decoded pixels at their native size, used to
            find exact duplicates.
        soft_labels: optional float32 (N, C) vote distributions (FER+).
        groups: optional str array (N,) of near-duplicate groups finer than subjects (CK+
            sequences: their frames are almost identical).
        meta: free-form provenance (source path, dropped rows, label mode, ...).

    Example:
        >>> data = FaceData.from_lists("demo", [np.zeros((48, 48), np.uint8)], [3], ["s1"],
        ...                            ["all"], ["x.png"])
        >>> data.class_names()[data.labels[0]]
        'happy'
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    splits: np.ndarray
    paths: np.ndarray
    hashes: np.ndarray
    soft_labels: np.ndarray | None = None
    groups: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 (N, H, W), got {self.images.dtype} {self.images.shape}"
            )
        for key in ("labels", "subjects", "splits", "paths", "hashes", "soft_labels", "groups"):
            value = getattr(self, key)
            if value is not None and len(value) != n:
                raise ValueError(f"{key} has {len(value)} entries for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    @staticmethod
    def from_lists(
        name: str,
        images: list[np.ndarray],
        labels: list[int],
        subjects: list[str],
        splits: list[str],
        paths: list[str],
        hashes: list[int] | None = None,
        soft_labels: list[np.ndarray] | None = None,
        groups: list[str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> "FaceData":
        """Build from per-sample lists (readers collect lists, then call this once)."""
        size = images[0].shape if images else (0, 0)
        stacked = np.stack(images).astype(np.uint8) if images else np.zeros((0, *size), np.uint8)
        return FaceData(
            name=name,
            images=stacked,
            labels=np.asarray(labels, dtype=np.int64),
            subjects=np.asarray(subjects, dtype=str),
            splits=np.asarray(splits, dtype=str),
            paths=np.asarray(paths, dtype=str),
            hashes=np.asarray(
                hashes if hashes is not None else [pixel_hash(im) for im in images],
                dtype=np.uint64,
            ),
            soft_labels=None if soft_labels is None else np.asarray(soft_labels, np.float32),
            groups=None if groups is None else np.asarray(groups, dtype=str),
            meta=dict(meta or {}),
        )

    def class_names(self) -> tuple[str, ...]:
        """The emotion names, indexed like ``labels``."""
        return EMOTIONS

    def present_classes(self) -> list[int]:
        """Sorted label indices that occur in this data."""
        return sorted(int(c) for c in np.unique(self.labels))

    def subset(self, index: np.ndarray) -> "FaceData":
        """A new FaceData holding only the samples at ``index`` (a copy of those rows)."""
        index = np.asarray(index)

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return FaceData(
            name=self.name,
            images=self.images[index],
            labels=self.labels[index],
            subjects=self.subjects[index],
            splits=self.splits[index],
            paths=self.paths[index],
            hashes=self.hashes[index],
            soft_labels=pick(self.soft_labels),
            groups=pick(self.groups),
            meta=dict(self.meta),
        )


class FaceCollector:
    """Accumulates decoded samples one by one, then builds a :class:`FaceData` once.

    Every reader goes through ``add``, so hashing (on native-size pixels, for duplicate
    detection) and resizing happen the same way for all datasets.
    """

    def __init__(self, name: str, size: int | None) -> None:
        self.name, self.size = name, size
        self.images: list[np.ndarray] = []
        self.labels: list[int] = []
        self.subjects: list[str] = []
        self.splits: list[str] = []
        self.paths: list[str] = []
        self.hashes: list[int] = []
        self.groups: list[str] = []
        self.soft: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.images)

    def add(
        self,
        pixels: np.ndarray,
        label: int,
        where: str,
        subject: str | None = None,
        split: str = "all",
        group: str | None = None,
        soft: np.ndarray | None = None,
        original: np.ndarray | None = None,
    ) -> None:
        """Add one decoded grayscale image; ``subject`` defaults to the image itself.

        ``original``: the decoded file when ``pixels`` is a crop of it; duplicates are found by
        the hash of the file's pixels, whatever the crop.
        """
        image = resize(pixels, self.size)
        if self.images and image.shape != self.images[0].shape:
            raise DataError(f"{where}: a {image.shape[1]}x{image.shape[0]} image among "
                            f"{self.images[0].shape[1]}x{self.images[0].shape[0]} ones (like {self.paths[0]}): "
                            "give a size to resize them all")
        self.hashes.append(pixel_hash(pixels if original is None else original))
        self.images.append(image)
        self.labels.append(int(label))
        self.subjects.append(where if subject is None else subject)
        self.splits.append(split)
        self.paths.append(where)
        if group is not None:
            self.groups.append(group)
        if soft is not None:
            self.soft.append(soft)

    def add_encoded(self, data: bytes, label: int, where: str, **kwargs: Any) -> None:
        """Decode image bytes (DataError naming ``where`` if they are not an image) and add."""
        self.add(decode_stored(data, where), label, where, **kwargs)

    def build(self, meta: dict[str, Any]) -> FaceData:
        return FaceData.from_lists(
            self.name, self.images, self.labels, self.subjects, self.splits, self.paths,
            hashes=self.hashes, soft_labels=self.soft or None, groups=self.groups or None, meta=meta,
        )


def decode_stored(data: bytes, where: str) -> np.ndarray:
    """A dataset file's grayscale pixels, uint8 (H, W), as the file stores them (no EXIF
    orientation, transparency ignored): what every dataset cache and published accuracy rests on.

    Raises:
        DataError: naming ``where``, for bytes that are empty, truncated or not an image.
    """
    return from_bytes(data, where, as_stored=True).gray
