"""Recognise expressions in photos, folders, videos and webcams: face detection -> a crop framed
like a FER2013 face -> class probabilities on torch or onnxruntime.

Never imports :mod:`deepfer.train`.

Example:
    >>> from deepfer.inference import Recognizer
    >>> rec = Recognizer(model="runs/deep-emotion_fer2013/best.pt")  # doctest: +SKIP
    >>> rec.predict(sample_image())  # doctest: +SKIP
    [Face(box=(180, 68, 88, 104), scores={...}, label='happy', quality=Quality(...), landmarks=(...))]
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from deepfer.inference.backends import load_classifier
from deepfer.inference.export import export_onnx, export_onnx_bytes
from deepfer.inference.recognizer import Recognizer
from deepfer.inference.results import Face, Result
from deepfer.inference.timeline import summarize
from deepfer.models.classifier import Classifier, EnsembleClassifier, TorchClassifier

# Pictures, detectors and crops live in deepfer.vision; re-exported here, where users found them.
from deepfer.vision import (
    FRAMINGS,
    Detection,
    DlibDetector,
    FaceDetector,
    Framing,
    HaarDetector,
    Picture,
    Quality,
    YuNetDetector,
    create_detector,
    crop_face,
    crop_faces,
    from_array,
    from_pil,
    list_detectors,
    read_image,
)


def sample_image() -> Path:
    """The bundled public-domain test photo (NASA's portrait of astronaut Eileen Collins)."""
    return Path(str(resources.files("deepfer") / "assets" / "astronaut.png"))


__all__ = [
    "FRAMINGS", "Classifier", "Detection", "DlibDetector", "EnsembleClassifier", "Face", "FaceDetector", "Framing", "HaarDetector",
    "Picture", "Quality", "Recognizer", "Result", "TorchClassifier", "YuNetDetector", "create_detector", "crop_face",
    "crop_faces",
    "export_onnx", "export_onnx_bytes", "from_array", "from_pil", "list_detectors", "load_classifier",
    "read_image", "sample_image", "summarize",
]
