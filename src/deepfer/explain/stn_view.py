"""The spatial transformer's view: the face as the conv layers see it after the learnt affine warp,
and where on the original face that view samples (the sampling grid and its outline).

Reads only ``model.stn.theta`` and the model's preprocessing, like every explain module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfer.errors import ModelError
from deepfer.explain.base import eval_mode, prepare, unwrap
from deepfer.layers import stn_warp

__all__ = ["StnView", "describe_theta", "draw_grid", "stn_view"]


@dataclass(frozen=True)
class StnView:
    """What the spatial transformer does to each face.

    Attributes:
        theta: float32 (N, 2, 3), the affine transforms (output -> input, ``affine_grid``'s
            normalised coordinates).
        warped: uint8 (N, H, W), the face the conv layers see (outside the face: the model's mean
            grey, the zero of its normalised input, which is what the warp pads with).
        grid: float32 (N, H, W, 2), for every output pixel the (x, y) position on the input face,
            in pixels (0 = left/top edge of the first pixel).
    """

    theta: np.ndarray
    warped: np.ndarray
    grid: np.ndarray

    def __len__(self) -> int:
        return len(self.theta)


def stn_view(model: nn.Module, faces: np.ndarray | Tensor) -> StnView:
    """The spatial transformer's transforms, warped faces and sampling grids.

    Args:
        model: a deepfer model with a spatial transformer (``model.stn``).
        faces: uint8 faces (N, H, W) at the model's input size, or one face (H, W).

    Returns:
        A :class:`StnView`.

    Raises:
        ModelError: the model has no spatial transformer.

    Example:
        >>> from deepfer.models import create_model
        >>> view = stn_view(create_model("deep-emotion"), np.zeros((48, 48), np.uint8))
        >>> view.theta.round(3).tolist()  # a fresh transformer starts at the identity
        [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]
    """
    net = unwrap(model)
    config = net.config
    if net.stn is None:
        raise ModelError(f"model {config.name} has no spatial transformer (built with use_stn=False)")
    x = prepare(faces, config)  # (N, C, H, W)
    n, _, h, w = x.shape
    with eval_mode(net), torch.inference_mode():
        theta = net.stn.theta(x) if n else torch.zeros(0, 2, 3)  # (N, 2, 3)
        warped = stn_warp(x, theta)[:, 0] if n else torch.zeros(0, h, w)  # (N, H, W), normalised
        grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)  # (N, H, W, 2) in [-1, 1]
    pixels = ((warped * config.std + config.mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
    # align_corners=False: -1 and 1 are the outer edges of the border pixels.
    size = torch.tensor([w, h], dtype=grid.dtype)
    grid_px = (grid + 1) * size / 2
    return StnView(theta.numpy().astype(np.float32), pixels.numpy(), grid_px.numpy().astype(np.float32))


def describe_theta(theta: np.ndarray, size: int) -> str:
    """A short human reading of one (2, 3) transform: zoom, rotation and shift in pixels."""
    a = np.asarray(theta, dtype=np.float64)[:, :2]
    t = np.asarray(theta, dtype=np.float64)[:, 2]
    # The view covers |det A| of the face's area; a zoom > 1 means it looks at a smaller region.
    det = abs(np.linalg.det(a))
    zoom = 1.0 / np.sqrt(det) if det > 1e-9 else float("inf")
    angle = np.degrees(np.arctan2(a[1, 0], a[0, 0]))
    dx, dy = t * size / 2
    return f"zoom {zoom:.2f}x, rot {angle:+.0f} deg, shift ({dx:+.1f}, {dy:+.1f}) px"


def draw_grid(ax: Any, grid: np.ndarray, points: int = 8, color: str = "#00e5ff") -> None:
    """Draw a ``points`` x ``points`` subsample of a (H, W, 2) sampling grid and its outline on a
    matplotlib axis that shows the input face with ``imshow`` (pixel centres at integers)."""
    h, w = grid.shape[:2]
    # imshow puts pixel i's centre at i, so edge-based pixel coordinates shift by half a pixel.
    g = grid - 0.5
    rows = np.linspace(0, h - 1, points).round().astype(int)
    cols = np.linspace(0, w - 1, points).round().astype(int)
    sub = g[rows][:, cols]  # (points, points, 2)
    for line in sub:
        ax.plot(line[:, 0], line[:, 1], color=color, lw=0.6, alpha=0.7)
    for line in sub.transpose(1, 0, 2):
        ax.plot(line[:, 0], line[:, 1], color=color, lw=0.6, alpha=0.7)
    ax.scatter(sub[..., 0].ravel(), sub[..., 1].ravel(), s=4, color=color, zorder=3)
    # The outline: where the outer edges of the view's border pixels land on the input.
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], np.float64)
    a, t = _affine_from_grid(grid)
    edge = corners @ a.T + t  # normalised input coordinates
    ax.plot((edge[:, 0] + 1) * w / 2 - 0.5, (edge[:, 1] + 1) * h / 2 - 0.5, color=color, lw=1.6)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)


def _affine_from_grid(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recover (A, b) of the normalised affine map from a pixel grid by least squares (exact for
    grids made by ``affine_grid``); keeps :func:`draw_grid` independent of theta."""
    h, w = grid.shape[:2]
    ys, xs = np.meshgrid((np.arange(h) * 2 + 1) / h - 1, (np.arange(w) * 2 + 1) / w - 1, indexing="ij")
    src = np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)], 1)  # output points, normalised
    dst = grid.reshape(-1, 2) * 2 / np.array([w, h]) - 1  # input points, normalised
    m, *_ = np.linalg.lstsq(src, dst, rcond=None)  # (3, 2)
    return m[:2].T, m[2]
