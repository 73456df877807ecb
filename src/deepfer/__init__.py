"""deepfer: facial expression recognition with attentional convolutional networks."""

from __future__ import annotations

import os

# FFmpeg's own decoder messages ("[h264 @ 0x...] Invalid NAL unit size") go straight to stderr; a
# broken video is reported as one error record instead. OpenCV reads this when it is first imported.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

from deepfer.errors import DataError, DeepferError, ModelError, ParameterError, ProtocolError  # noqa: E402
from deepfer.labels import EMOTIONS, FER7  # noqa: E402
from deepfer.version import __version__  # noqa: E402

__all__ = [
    "EMOTIONS", "FER7", "DataError", "DeepferError", "ModelError", "ParameterError", "ProtocolError", "Recognizer",
    "__version__",
]


def __getattr__(name: str) -> object:
    # Recognizer pulls in torch and OpenCV: import it only when asked for.
    if name == "Recognizer":
        from deepfer.inference import Recognizer

        return Recognizer
    raise AttributeError(f"module 'deepfer' has no attribute {name!r}")
