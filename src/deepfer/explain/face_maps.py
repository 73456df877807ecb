"""Explain one picture: find and crop its faces with :mod:`deepfer.vision` exactly as inference
does (landmark-aligned for a model whose ``extra["align"]`` is ``"landmarks"``), run the requested
methods on the crops, and give one :class:`FaceMaps` per face. Both ``deepfer explain``
(:func:`~deepfer.explain.figures.explain_faces`) and the server's ``/v1/explain`` call
:func:`explain_picture`; :func:`deepfer.vision.crop.uncrop` (with ``align=face.aligned``) lays a
face's map back onto the photo. A model with branches (``branches_info``) gets each branch's Grad-CAM
(``gradcam:<branch>``) beside the whole one.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from deepfer.explain.base import Explanation
from deepfer.explain.methods import branch_methods, explain, is_heatmap, with_branches
from deepfer.explain.stn_view import StnView, stn_view
from deepfer.models.checkpoint import Preprocess
from deepfer.models.predict import TTA, predict_proba
from deepfer.vision import Box, Detection, FaceDetector, Picture, face_crops, face_transform

__all__ = ["FaceMaps", "aligns", "explain_picture"]


@dataclass(frozen=True)
class FaceMaps:
    """The explanations of one face.

    Attributes:
        detection: the detector's find (box, landmarks); the whole image without detection.
        crop: uint8 (H, W), the face exactly as the model saw it.
        label: the predicted class; ``score`` its probability.
        target: the class the maps explain (the predicted one unless a target was given).
        heatmaps: method -> float32 (H, W) map in [0, 1]; ``gradcam:<branch>`` for each branch of
            a branched model when ``gradcam`` was asked for.
        flips: occlusion's (H, W) fraction of covering patches that changed the prediction, or None.
        stn: the spatial transformer's view of this face (one-face :class:`StnView`), or None.
        png: the figure written for this face, or None.
        aligned: the crop was aligned on the face's landmarks (a model that takes aligned faces,
            a detection with five plausible landmarks); ``False``: framed like FER2013.
    """

    detection: Detection
    crop: np.ndarray
    label: str
    score: float
    target: str
    heatmaps: dict[str, np.ndarray]
    flips: np.ndarray | None = None
    stn: StnView | None = None
    png: Path | None = None
    aligned: bool = False

    @property
    def box(self) -> Box:
        """(x, y, w, h) of the detector's box in the image (the whole image without detection)."""
        return self.detection.box


def aligns(net: nn.Module) -> bool:
    """Whether ``net`` takes landmark-aligned faces (its ``Preprocess.align`` is ``"landmarks"``)."""
    return Preprocess.from_config(net.config).align == "landmarks"


def explain_picture(net: nn.Module, names: Sequence[str], picture: Picture, detector: FaceDetector | None,
                    methods: Sequence[str] = ("occlusion",), target: int | None = None,
                    lock: AbstractContextManager[Any] | None = None, branches: bool = True,
                    **options: Any) -> list[FaceMaps]:
    """Explain every face of one picture.

    Args:
        net: a deepfer model (see :func:`~deepfer.explain.load_explainable`).
        names: its class names.
        picture: the image.
        detector: finds the faces (its framing crops them); ``None``: the whole image is one face
            crop, resized like the datasets' images.
        methods: any of ``occlusion``, ``saliency``, ``gradcam``, ``gradcam:<branch>``, ``stn``
            (checked by the caller).
        target: explain this class index instead of each face's predicted class.
        lock: held while the model runs (the server's guard: Grad-CAM hooks the shared module);
            detection and cropping run outside it.
        branches: with ``gradcam``, also each branch's map for a model with ``branches_info``
            (:func:`~deepfer.explain.methods.with_branches`).
        options: occlusion settings (``patch``, ``stride``, ``fill``).

    Returns:
        One :class:`FaceMaps` per face, largest first; empty when no face is found.
    """
    size, align = net.config.input_size, aligns(net)
    dets, crops = face_crops(picture, detector, size, align=align)
    if not len(crops):
        return []
    if branches:
        methods = with_branches(methods, branch_methods(net))
    with lock if lock is not None else nullcontext():
        faces = _explain_crops(net, names, crops, dets, methods, target, **options)
    if not (align and detector is not None):
        return faces
    return [replace(f, aligned=face_transform(f.detection, detector.framing, size, True)[1]) for f in faces]


def _explain_crops(net: nn.Module, names: Sequence[str], crops: np.ndarray, detections: Sequence[Detection],
                   methods: Sequence[str], target: int | None = None, **options: Any) -> list[FaceMaps]:
    results: dict[str, Explanation] = {m: explain(net, crops, m, target=target, **options)
                                       for m in methods if is_heatmap(m)}
    view = stn_view(net, crops) if "stn" in methods else None
    # The scores reported are predict's for a photo (calibrated by the model's temperature, averaged
    # with the mirror image's where TTA says so); the maps explain the face as it is.
    probs = predict_proba(net, crops)
    if TTA != "none":
        probs = (probs + predict_proba(net, np.ascontiguousarray(crops[:, :, ::-1]))) / 2
    if results:
        targets = next(iter(results.values())).targets
    else:
        targets = probs.argmax(1) if target is None else np.full(len(crops), target)
    faces = []
    occ = results.get("occlusion")
    for i in range(len(crops)):
        pred = int(probs[i].argmax())
        faces.append(FaceMaps(
            detection=detections[i], crop=crops[i], label=names[pred], score=float(probs[i, pred]),
            target=names[int(targets[i])],
            heatmaps={m: r.heatmaps[i] for m, r in results.items()},
            flips=occ.flips[i] if occ is not None and occ.flips is not None else None,
            stn=None if view is None else StnView(view.theta[i : i + 1], view.warped[i : i + 1], view.grid[i : i + 1]),
        ))
    return faces
