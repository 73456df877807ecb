"""The one emotion label space of deepfer, the mapping from each dataset's own names, and the
mapping of a dataset's labels onto a model's outputs (:func:`map_to_model`).

Indices 0-6 follow FER2013's ``emotion`` codes so that FER2013 labels need no translation;
contempt (7) exists only in CK+ and FER+.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from deepfer.errors import DeepferError

EMOTIONS: Final[tuple[str, ...]] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
    "contempt",
)
FER7: Final[tuple[str, ...]] = EMOTIONS[:7]
EMOTION_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(EMOTIONS)}

# Each dataset's own class names -> deepfer names. Kept as plain tables so they can be read
# (and tested) at a glance.
FER2013_CODES: Final[dict[int, str]] = dict(enumerate(FER7))
FER2013_FOLDERS: Final[dict[str, str]] = {name: name for name in FER7}
CKPLUS_FOLDERS: Final[dict[str, str]] = {
    "anger": "angry",
    "contempt": "contempt",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "sadness": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
}
# The original CK+ release's Emotion/*.txt codes.
CKPLUS_CODES: Final[dict[int, str]] = {
    0: "neutral",
    1: "angry",
    2: "contempt",
    3: "disgust",
    4: "fear",
    5: "happy",
    6: "sad",
    7: "surprise",
}
JAFFE_CODES: Final[dict[str, str]] = {
    "AN": "angry",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happy",
    "NE": "neutral",
    "SA": "sad",
    "SU": "surprise",
}
# FER+ vote columns in the order of fer2013new.csv; the last two are not emotions.
FERPLUS_COLUMNS: Final[tuple[str, ...]] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
FERPLUS_TO_EMOTION: Final[dict[str, str]] = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": "contempt",
}
FERG_EXPRESSIONS: Final[dict[str, str]] = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "joy": "happy",
    "neutral": "neutral",
    "sadness": "sad",
    "surprise": "surprise",
}


def emotion_index(name: str) -> int:
    """Index of a deepfer emotion name, with an error that lists the valid names."""
    try:
        return EMOTION_INDEX[name]
    except KeyError:
        raise KeyError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}") from None


def map_to_model(
    labels: np.ndarray | Sequence[int] | Sequence[str],
    model_labels: Sequence[str],
    *,
    image_size: tuple[int, int] | None = None,
    input_size: int | None = None,
    where: str = "the model",
    hint: str = "",
) -> np.ndarray:
    """Map labels onto a model's outputs: the one place a dataset's classes meet a model's.

    Args:
        labels: deepfer emotion indices (a dataset's ``labels``, (N,) ints) or class names.
        model_labels: the model's class names, in output order.
        image_size: the faces' (height, width); with ``input_size``, checked first.
        input_size: the side of the faces the model takes.
        where: names the model in the error (a checkpoint path, ``teacher X``).
        hint: how to fix a size mismatch, appended to the error (``pass --size 64``).

    Returns:
        int64 (N,): each label's output index in the model, -1 where the model has no such class.

    Raises:
        DeepferError: the faces are not ``input_size`` x ``input_size``.

    Example:
        >>> map_to_model([3, 7, 0], ["angry", "happy"]).tolist()
        [1, -1, 0]
    """
    if image_size is not None and input_size is not None and tuple(image_size) != (input_size, input_size):
        raise DeepferError(f"{where} expects {input_size}x{input_size} faces, the data is "
                           f"{image_size[0]}x{image_size[1]}" + (f": {hint}" if hint else ""))
    out = {name: i for i, name in enumerate(model_labels)}
    values = np.asarray(labels)
    if values.dtype.kind in "iu":
        lut = np.array([out.get(name, -1) for name in EMOTIONS], np.int64)
        return lut[values.astype(np.int64)]
    return np.array([out.get(str(name), -1) for name in values.tolist()], np.int64)
