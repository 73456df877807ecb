"""Pictures and faces, below both the dataset readers and the product: decode any image into a
:class:`Picture`, find faces (boxes, scores, landmarks), crop them framed like FER2013 faces and
lay a crop's map back onto the photo. Never imports :mod:`deepfer.inference`, :mod:`deepfer.explain`,
:mod:`deepfer.serve`, :mod:`deepfer.train` or the CLI.

Example:
    >>> from deepfer.vision import DetectorSpec, face_crops, read_image
    >>> pic = read_image("photo.jpg")  # doctest: +SKIP
    >>> detections, crops = face_crops(pic, DetectorSpec().build(), 48)  # doctest: +SKIP
"""

from __future__ import annotations

from deepfer.vision.crop import (
    FRAMINGS,
    Framing,
    crop_face,
    crop_faces,
    crop_square,
    crop_transform,
    face_transform,
    uncrop,
    whole_image,
)
from deepfer.vision.detect import (
    AUTO,
    DETECTORS,
    DlibDetector,
    FaceDetector,
    HaarDetector,
    YuNetDetector,
    default_detector,
    list_detectors,
)
from deepfer.vision.detector_spec import DetectorSpec, accepted_options, create_detector, resolve_detector
from deepfer.vision.faces import detect_faces, face_crops
from deepfer.vision.geometry import LANDMARKS, Box, Detection, Point
from deepfer.vision.quality import Quality, face_quality
from deepfer.vision.pictures import (
    MAX_PIXELS,
    ColorOrder,
    ImageInput,
    Picture,
    TooLarge,
    from_array,
    from_bytes,
    from_pil,
    read_image,
    resize,
    to_picture,
)

__all__ = [
    "AUTO", "Quality", "YuNetDetector", "accepted_options", "default_detector", "face_quality",
    "DetectorSpec", "resolve_detector",
    "DETECTORS", "FRAMINGS", "LANDMARKS", "MAX_PIXELS", "Box", "ColorOrder", "Detection", "DlibDetector",
    "FaceDetector", "Framing", "HaarDetector", "ImageInput", "Picture", "Point", "TooLarge", "create_detector",
    "crop_face", "crop_faces", "crop_square", "crop_transform", "detect_faces", "face_crops", "face_transform",
    "from_array",
    "from_bytes", "from_pil", "list_detectors", "read_image", "resize", "to_picture", "uncrop", "whole_image",
]
