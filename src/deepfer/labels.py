"""The one emotion label space of deepfer and the mapping from each dataset's own names.

Indices 0-6 follow FER2013's ``emotion`` codes so that FER2013 labels need no translation;
contempt (7) exists only in CK+ and FER+.
"""

from __future__ import annotations

from typing import Final

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
