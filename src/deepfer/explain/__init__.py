"""Which face regions drive a prediction, for every deepfer model through the common model API
(``forward``, ``cam_layer``, ``stn``, ``config``): occlusion maps, vanilla saliency, Grad-CAM, the
spatial transformer's view, per-emotion region maps and deletion curves that measure how faithful
each map is. Never imports :mod:`deepfer.train`.

Example:
    >>> import numpy as np
    >>> from deepfer.models import create_model
    >>> from deepfer.explain import gradcam, occlusion_map
    >>> model = create_model("deep-emotion")
    >>> faces = np.random.default_rng(0).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    >>> occlusion_map(model, faces, patch=8, stride=4).heatmaps.shape
    (2, 48, 48)
    >>> gradcam(model, faces).info["resolution"]
    [9, 9]
"""

from __future__ import annotations

from deepfer.explain.base import Explanation, blank_value, load_explainable, normalize_maps
from deepfer.explain.faithfulness import FRACTIONS, DeletionCurve, area_under, compare_deletion, deletion_curve
from deepfer.explain.gradients import gradcam, saliency
from deepfer.explain.figures import ImageReport, explain_faces
from deepfer.explain.methods import HEATMAP_METHODS, METHODS, explain
from deepfer.explain.occlusion import occlusion_map
from deepfer.explain.overlay import blend, colorize, save_panels
from deepfer.explain.per_emotion import EmotionMaps, per_emotion_maps, per_emotion_report, plot_per_emotion
from deepfer.explain.face_maps import FaceMaps, explain_picture
from deepfer.explain.stn_view import StnView, stn_view

__all__ = [
    "FRACTIONS", "HEATMAP_METHODS", "METHODS", "DeletionCurve", "EmotionMaps", "Explanation", "FaceMaps",
    "ImageReport", "StnView", "area_under", "blank_value", "blend", "colorize", "compare_deletion",
    "deletion_curve", "explain", "explain_faces", "explain_picture", "gradcam", "load_explainable",
    "normalize_maps",
    "occlusion_map", "per_emotion_maps", "per_emotion_report", "plot_per_emotion", "saliency", "save_panels",
    "stn_view",
]
