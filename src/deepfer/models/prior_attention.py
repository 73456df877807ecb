"""Prior attention for aligned faces: an eyes-and-brows block and a mouth block are cut from the
face, each goes through its own small CNN, and a small FC head fuses the two (optionally with the
whole face as a third branch).

The FERG prior-attention project found the blocks with dlib's 68 landmarks (mouth = points
48-67, eyes + brows = 17-26 and 36-47, with a margin), resized them to 32x32 and used two
identical branches (conv 32, conv 64, pool, FCs). FER2013, FER+ and CK+48 crops are already
aligned, and ``deepfer predict`` frames detected faces like FER2013's, so here the blocks are
fixed fractions of the face (the landmark-free fallback), cut inside the model: the model takes
the usual ``(B, 1, 48, 48)`` face and keeps the common model surface. On the mean of 8,000
FER2013 training faces the default upper block spans the brows to below the eyes and the lower
block the mouth with its corners. dlib's landmarks confirm it (``benchmarks/PRIOR_BLOCKS.md``,
``deepfer.vision.landmarks``): on FER2013 training faces where dlib finds the face, 93.7% of the
eyes-and-brows landmark box and 97.2% of the mouth box (each grown 10%, the project's margin) lie
inside these blocks on average (CK+48: 99.8% and 98.1%). Faces this model sees
are FER2013-framed crops (``deepfer predict`` frames detected faces that way), so it needs no
landmarks at run time.

What ``forward_features`` returns (and Grad-CAM reads): the branches' maps put back where their
blocks came from on a half-resolution face canvas, each branch in its own channels and zero
outside its block, shape ``(B, 64 * branches, 24, 24)``. A channel's Grad-CAM weight is then that
branch's own, and the map lies on the face like any other model's, with no per-model case in
``explain``. The head reads each block back from the canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfer.errors import ModelError
from deepfer.layers import SpatialTransformer, cell_pool
from deepfer.models.registry import ModelConfig, check_input, complete_config, register_model

__all__ = ["PriorAttentionNet", "block_boxes"]

Box = tuple[int, int, int, int]  # top, bottom, left, right in pixels, bottom/right exclusive


def block_boxes(size: int, regions: Sequence[Sequence[float]]) -> list[Box]:
    """Pixel boxes of face blocks given as ``(top, bottom, left, right)`` fractions of the face.

    Edges are rounded to even pixels, so that each block's map after the branch's 2x2 pool sits
    on whole cells of the half-resolution canvas.

    Example:
        >>> block_boxes(48, [(0.15, 0.55, 0.05, 0.95), (0.55, 0.95, 0.2, 0.8)])
        [(8, 26, 2, 46), (26, 46, 10, 38)]
    """
    boxes = []
    for region in regions:
        vals = [float(v) for v in region]
        if len(vals) != 4:
            raise ModelError(f"prior-attention: a block is (top, bottom, left, right) fractions, got {list(region)}")
        top, bottom, left, right = vals
        if not (0.0 <= top < bottom <= 1.0 and 0.0 <= left < right <= 1.0):
            raise ModelError(
                f"prior-attention: block {vals} must satisfy 0 <= top < bottom <= 1 and 0 <= left < right <= 1"
            )
        edge = size // 2 * 2
        y0, y1, x0, x1 = (min(edge, 2 * round(v * size / 2)) for v in vals)
        if y1 - y0 < 4 or x1 - x0 < 4:
            raise ModelError(f"prior-attention: block {vals} is under 4 pixels on a side at input size {size}")
        boxes.append((y0, y1, x0, x1))
    return boxes


def _branch(in_chans: int, widths: Sequence[int]) -> nn.Sequential:
    # The project's branch (conv 32, conv 64, pool) with BatchNorm after each conv.
    layers: list[nn.Module] = []
    prev = in_chans
    for w in widths:
        layers += [nn.Conv2d(prev, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        prev = w
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class FaceCanvas(nn.Module):
    """Places each branch's map (B, C, h, w) at its block's place on a half-resolution face.

    Branch ``k`` takes channels ``[k C, (k + 1) C)`` and is zero outside its box; a map of another
    size than its box (a resized block) is resampled bilinearly to it. This is ``cam_layer``.
    """

    def __init__(self, boxes: Sequence[Box], canvas: int) -> None:
        super().__init__()
        self.boxes = [(y0 // 2, y1 // 2, x0 // 2, x1 // 2) for y0, y1, x0, x1 in boxes]  # canvas cells
        self.canvas = canvas

    def forward(self, *maps: Tensor) -> Tensor:
        placed = []
        if len(maps) != len(self.boxes):
            raise ValueError(f"FaceCanvas: expected {len(self.boxes)} maps, got {len(maps)}")
        for m, (y0, y1, x0, x1) in zip(maps, self.boxes, strict=True):
            if m.shape[2:] != (y1 - y0, x1 - x0):
                m = F.interpolate(m, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
            placed.append(F.pad(m, (x0, self.canvas - x1, y0, self.canvas - y1)))  # (B, C, S/2, S/2)
        return torch.cat(placed, 1)  # (B, C * branches, S/2, S/2)

    def extra_repr(self) -> str:
        return f"boxes={self.boxes}, canvas={self.canvas}"


@register_model
class PriorAttentionNet(nn.Module):
    """Two-branch (eyes + brows, mouth) CNN, optionally with a whole-face third branch.

    ``config.extra`` options: ``upper`` and ``lower`` (the blocks as ``[top, bottom, left,
    right]`` fractions of the aligned face; the defaults cover brows to lower eyelids and the
    mouth with its corners on FER2013's framing, and are left-right symmetric so that a mirrored
    face's blocks are the mirrored blocks), ``crop_size`` (each block and the whole face are
    resized to this square, 32 as in the project; ``None`` keeps them at their pixel size, which
    avoids resampling), ``face_branch`` (add the whole face as a third branch), ``widths`` (the
    branch's two conv widths), ``head_pool`` (each block's map is average-pooled to this square
    before the head), ``head_hidden`` (the head's hidden FC width), ``use_stn`` (a spatial
    transformer re-aligns the face before the blocks are cut; off by default: the fixed blocks
    are this model's attention).

    About 0.56M parameters (0.85M with the face branch). Training speed at batch 128 on one
    thread of the project's shared CPU (best of 8 steps): ~155 images/s, like DeepFER's ~160;
    ~350 images/s with ``crop_size: null`` (smaller blocks, no resampling); ~115 with the face
    branch.
    """

    default_config: ClassVar[ModelConfig] = ModelConfig(
        name="prior-attention",
        dropout=0.5,
        extra={
            "upper": [0.15, 0.55, 0.05, 0.95],
            "lower": [0.55, 0.95, 0.2, 0.8],
            "crop_size": 32,
            "face_branch": False,
            "widths": [32, 64],
            "head_pool": 4,
            "head_hidden": 256,
            "use_stn": False,
        },
    )

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        config = config or self.default_config
        if config.name != self.default_config.name:
            raise ModelError(f"PriorAttentionNet: got a config for {config.name!r}")
        self.config = config = complete_config(config)
        opts = config.extra
        c, size = config.in_chans, config.input_size
        if size < 16:
            raise ModelError(f"PriorAttentionNet: input_size {size} is too small (needs >= 16)")
        widths = [int(v) for v in opts["widths"]]
        if not widths or min(widths) < 1:
            raise ModelError(f"PriorAttentionNet: widths must be positive ints, got {opts['widths']}")
        crop = opts["crop_size"]
        if crop is not None and (int(crop) < 4 or int(crop) % 2):
            raise ModelError(f"PriorAttentionNet: crop_size must be an even int >= 4 or null, got {crop}")
        self.crop_size = None if crop is None else int(crop)
        pool = int(opts["head_pool"])
        if pool < 1:
            raise ModelError(f"PriorAttentionNet: head_pool must be >= 1, got {pool}")

        regions = [opts["upper"], opts["lower"]] + ([[0.0, 1.0, 0.0, 1.0]] if opts["face_branch"] else [])
        self.boxes = block_boxes(size, regions)
        self.branch_names = ["upper", "lower"] + (["face"] if opts["face_branch"] else [])
        self.stn = (
            SpatialTransformer(c, size, channels=(8, 10), kernel_sizes=(7, 5), hidden=32)
            if opts["use_stn"]
            else None
        )
        # Identical architectures, separate weights (the project's two branches).
        self.branches = nn.ModuleList(_branch(c, widths) for _ in self.boxes)
        self.canvas = FaceCanvas(self.boxes, size // 2)
        self.width = widths[-1]
        self.head_pool = pool
        self.drop = nn.Dropout(config.dropout)
        self.fc1 = nn.Linear(len(self.boxes) * self.width * pool * pool, int(opts["head_hidden"]))
        self.fc2 = nn.Linear(int(opts["head_hidden"]), config.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The face canvas; its output is what ``forward_features`` returns."""
        return self.canvas

    def fc_weights(self) -> list[nn.Parameter]:
        """The head's FC weights, for the ``lambda * ||W_fc||^2`` penalty."""
        return [self.fc1.weight, self.fc2.weight]

    def crops(self, x: Tensor) -> list[Tensor]:
        """The blocks each branch sees, ``(B, C, crop_size, crop_size)`` (or their pixel size)."""
        out = []
        for y0, y1, x0, x1 in self.boxes:
            block = x[:, :, y0:y1, x0:x1]  # (B, 1, h, w)
            if self.crop_size is not None:
                block = F.interpolate(block, size=(self.crop_size, self.crop_size), mode="bilinear",
                                      align_corners=False)  # (B, 1, 32, 32)
            out.append(block)
        return out

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(x, self.config)
        if self.stn is not None:
            x = self.stn(x)  # (B, 1, 48, 48)
        crops = self.crops(x)  # (B, 1, 32, 32) each
        maps = [branch(block) for branch, block in zip(self.branches, crops, strict=True)]  # (B, 64, 16, 16) each
        return self.canvas(*maps)  # (B, 64 * branches, 24, 24)

    def forward_head(self, features: Tensor) -> Tensor:
        pooled = []
        for k, (y0, y1, x0, x1) in enumerate(self.canvas.boxes):
            block = features[:, k * self.width : (k + 1) * self.width, y0:y1, x0:x1]  # (B, 64, h/2, w/2)
            pooled.append(cell_pool(block, self.head_pool).flatten(1))  # (B, 64 * 16)
        x = self.fc1(self.drop(torch.cat(pooled, 1))).relu()  # (B, 256)
        return self.fc2(self.drop(x))  # (B, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
