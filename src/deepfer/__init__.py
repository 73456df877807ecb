"""deepfer: facial expression recognition with attentional convolutional networks."""

from __future__ import annotations

from deepfer.errors import DataError, DeepferError, ModelError, ProtocolError
from deepfer.labels import EMOTIONS, FER7

__version__ = "0.1.0"

__all__ = ["EMOTIONS", "FER7", "DataError", "DeepferError", "ModelError", "ProtocolError", "__version__"]
