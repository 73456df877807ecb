"""Heatmaps -> pictures: colour a map, blend it over a face, and lay out a row of titled panels as
one PNG (matplotlib's object API, no global pyplot state, so it is safe in threads and servers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CMAP", "Panel", "blend", "colorize", "save_panels", "stretch"]

CMAP = "jet"  # the colour map the FER papers' figures use; red = important


def colorize(heatmap: np.ndarray, cmap: str = CMAP) -> np.ndarray:
    """uint8 (H, W, 3) RGB colours of a (H, W) map with values in [0, 1]."""
    from matplotlib import colormaps

    m = np.clip(np.nan_to_num(np.asarray(heatmap, np.float32)), 0.0, 1.0)
    return (colormaps[cmap](m)[..., :3] * 255.0 + 0.5).astype(np.uint8)


def stretch(heatmap: np.ndarray, q: float = 99.0) -> np.ndarray:
    """A (H, W) map scaled so that its ``q``-th percentile is 1 (clipped): a few extreme pixels, as
    gradient maps have, otherwise leave the rest of the map invisible. For display only."""
    m = np.clip(np.asarray(heatmap, np.float32), 0, None)
    top = float(np.percentile(m, q)) if m.size else 0.0
    top = top if top > 0 else float(m.max(initial=0.0))
    return np.clip(m / top, 0, 1) if top > 0 else m


def blend(face: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, cmap: str = CMAP) -> np.ndarray:
    """uint8 (H, W, 3): the coloured ``heatmap`` (values in [0, 1]) over a grey uint8 ``face``.

    The colour's weight grows with the map's value (``alpha * value``), so unimportant regions show
    the face itself rather than a uniform blue veil.
    """
    face = np.asarray(face)
    if face.shape != np.shape(heatmap):
        raise ValueError(f"blend: face {face.shape} and heatmap {np.shape(heatmap)} differ in shape")
    grey = np.repeat(face.astype(np.float32)[..., None], 3, axis=2)
    weight = alpha * np.clip(np.asarray(heatmap, np.float32), 0, 1)[..., None]
    out = (1 - weight) * grey + weight * colorize(heatmap, cmap).astype(np.float32)
    return (out + 0.5).clip(0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Panel:
    """One picture of a figure row.

    Attributes:
        image: uint8 (H, W) grey or (H, W, 3) RGB.
        title: shown above it.
        draw: optional ``draw(ax)`` that adds lines or contours on top (pixel coordinates).
    """

    image: np.ndarray
    title: str = ""
    draw: Callable[[Any], None] | None = None


def save_panels(panels: Sequence[Panel], path: str | Path, title: str = "", colorbar: bool = False,
                panel_inches: float = 2.2, dpi: int = 110) -> Path:
    """Write ``panels`` side by side as one PNG; returns the path.

    Args:
        panels: the pictures, left to right.
        path: the PNG to write (parent folders are created).
        title: a line above the row.
        colorbar: add a 0..1 colour bar for the heatmaps on the right.
        panel_inches: width (and height) of each panel in inches.
        dpi: dots per inch.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    n = max(1, len(panels))
    extra = 0.5 if colorbar else 0.0
    fig = Figure(figsize=(panel_inches * n + extra, panel_inches + (0.55 if title else 0.35)), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        img = panel.image
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="bicubic")
        if panel.draw is not None:
            panel.draw(ax)
        ax.set_title(panel.title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1 - extra / fig.get_figwidth(), 1))
    if colorbar:
        cax = fig.add_axes((1 - (extra - 0.12) / fig.get_figwidth(), 0.12, 0.12 / fig.get_figwidth(), 0.7))
        fig.colorbar(ScalarMappable(Normalize(0, 1), colormaps[CMAP]), cax=cax)
        cax.tick_params(labelsize=6)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
