"""deepfer: facial expression recognition with attentional convolutional networks."""

from __future__ import annotations

from deepfer.errors import DataError, DeepferError, ModelError, ParameterError, ProtocolError
from deepfer.labels import EMOTIONS, FER7
from deepfer.version import __version__

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
