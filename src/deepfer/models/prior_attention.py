"""Prior attention for landmark-aligned faces: an eyes-and-brows block and a mouth block are cut
from the face, each goes through a DeepFER trunk of its own, optionally with the whole face as a
third branch, and a head fuses the branches (concatenation or an attention-weighted sum).

The FERG prior-attention project found the blocks with dlib's 68 landmarks (mouth = points
48-67, eyes + brows = 17-26 and 36-47, with a margin) and classified them with two branches of
two convs each. Here preprocessing aligns every face on its landmarks first (eye centres and
mouth centre to a fixed template; ``extra["align"]`` tells it to, the model only checks the
value), so the blocks sit at fixed places of the aligned face and are cut inside the model: it
takes the usual ``(B, 1, 48, 48)`` face and keeps the common model surface.

Why this shape: the earlier two-conv branches under-fit FER2013 (48.4% PrivateTest, 42% training
accuracy at the ablation's 15 epochs, against ``deepfer``'s 64.99%, ``benchmarks/ABLATION.md``),
so each block now gets ``deepfer``'s seven-conv trunk (pools after convs 2, 4 and 6), and the
face branch is ``deepfer``'s trunk itself. Blocks are cut at their pixel size: resampling a 48x48
face's block up adds cost and no information.

What ``forward_features`` returns (and Grad-CAM reads): each branch's last map put back where its
block lies on a quarter-resolution face canvas (4-pixel cells, ``(B, sum of widths, 12, 12)``),
each branch in its own channels and zero outside its block. A channel's Grad-CAM weight is then
its branch's own, and the map lies on the face like any other model's, with no per-model case in
``explain``. The head reads each branch back from its channels inside its box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfer.errors import ModelError
from deepfer.layers import SpatialTransformer, conv_stages
from deepfer.layers.conv_stages import NUM_CONVS
from deepfer.models.registry import ModelConfig, check_input, complete_config, register_model

__all__ = ["CELL", "FaceCanvas", "PriorAttentionNet", "block_boxes"]

Box = tuple[int, int, int, int]  # top, bottom, left, right; bottom/right exclusive

CELL = 4  # pixels per canvas cell: the block trunks' maps after two pools
_SNAP = 0.1  # pixels: an edge this close to the 4-px grid is on it (fractions written to 4 decimals)
FUSIONS = ("concat", "attention")
ALIGNS = ("landmarks", "none")


def block_boxes(size: int, regions: Sequence[Sequence[float]]) -> list[Box]:
    """Pixel boxes of face blocks given as ``(top, bottom, left, right)`` fractions of the face.

    Edges move outward to multiples of 4 pixels (within 0.1 px they snap to the nearer one), so
    that each block sits on whole cells of the quarter-resolution canvas and always holds the
    box it was given (a landmark box stays inside its block). Rounding each edge outward keeps
    mirrored fractions mirrored in pixels.

    Args:
        size: the face's side in pixels, a multiple of 4.
        regions: one ``(top, bottom, left, right)`` per block, fractions in ``[0, 1]``.

    Returns:
        One ``(top, bottom, left, right)`` pixel box per block.

    Raises:
        ModelError: a block is not four fractions with ``0 <= top < bottom <= 1`` and
            ``0 <= left < right <= 1``.

    Example:
        >>> block_boxes(48, [(0.125, 0.5, 0.0833, 0.9167), (0.5833, 0.9583, 0.1667, 0.8333)])
        [(4, 24, 4, 44), (28, 48, 8, 40)]
    """
    boxes = []
    for region in regions:
        try:
            vals = [float(v) for v in region]
        except (TypeError, ValueError):
            vals = []
        if len(vals) != 4:
            raise ModelError(f"prior-attention: a block is (top, bottom, left, right) fractions, got {region!r}")
        top, bottom, left, right = vals
        if not (0.0 <= top < bottom <= 1.0 and 0.0 <= left < right <= 1.0):
            raise ModelError(
                f"prior-attention: block {vals} must satisfy 0 <= top < bottom <= 1 and 0 <= left < right <= 1"
            )
        y0, x0 = (min(size - CELL, CELL * math.floor((v * size + _SNAP) / CELL)) for v in (top, left))
        y1, x1 = (min(size, CELL * math.ceil((v * size - _SNAP) / CELL)) for v in (bottom, right))
        boxes.append((y0, max(y1, y0 + CELL), x0, max(x1, x0 + CELL)))  # at least one cell
    return boxes


class FaceCanvas(nn.Module):
    """Places each branch's map at its box on a quarter-resolution face, in its own channels.

    Branch ``k`` takes ``widths[k]`` channels (after those of the branches before it) and is zero
    outside its box. A map exactly half its box (the face branch: 6x6 on 12x12) is repeated
    nearest x2, so its average over the box is exactly the map's (``deepfer``'s global average);
    a map of any other size (a block's, after a pool of an odd size) is resampled bilinearly.
    This is ``cam_layer``.

    Args:
        boxes: each branch's box in canvas cells, ``(top, bottom, left, right)``.
        widths: each branch's channels.
        cells: the canvas side in cells.
    """

    def __init__(self, boxes: Sequence[Box], widths: Sequence[int], cells: int) -> None:
        super().__init__()
        self.boxes = [tuple(b) for b in boxes]
        self.widths = [int(w) for w in widths]
        self.cells = cells

    def forward(self, *maps: Tensor) -> Tensor:
        if len(maps) != len(self.boxes):
            raise ValueError(f"FaceCanvas: expected {len(self.boxes)} maps, got {len(maps)}")
        placed = []
        for m, (y0, y1, x0, x1) in zip(maps, self.boxes, strict=True):
            box = (y1 - y0, x1 - x0)
            if tuple(m.shape[2:]) == (box[0] // 2, box[1] // 2) and box[0] % 2 == box[1] % 2 == 0:
                m = F.interpolate(m, scale_factor=2.0, mode="nearest")  # (B, C, h, w): exact average
            elif tuple(m.shape[2:]) != box:
                m = F.interpolate(m, size=box, mode="bilinear", align_corners=False)  # (B, C, h, w)
            if (y0, y1, x0, x1) != (0, self.cells, 0, self.cells):  # the face branch needs no pad (one copy less)
                m = F.pad(m, (x0, self.cells - x1, y0, self.cells - y1))  # (B, C, S/4, S/4)
            placed.append(m)
        return torch.cat(placed, 1)  # (B, sum of widths, S/4, S/4)

    def extra_repr(self) -> str:
        return f"boxes={self.boxes}, widths={self.widths}, cells={self.cells}"


def _widths(opts: dict, key: str) -> list[int]:
    try:
        w = [int(v) for v in opts[key]]
    except (TypeError, ValueError):
        w = []
    if len(w) != NUM_CONVS or min(w) < 1:
        raise ModelError(f"PriorAttentionNet: {key} must be {NUM_CONVS} positive ints, got {opts[key]!r}")
    return w


@register_model
class PriorAttentionNet(nn.Module):
    """Eyes-and-brows and mouth branches, optionally a whole-face branch, fused by a small head.

    ``config.extra`` options: ``align`` (``landmarks``: preprocessing aligns each face on its
    landmarks before the model sees it; ``none``: FER2013's own framing; the model only checks
    the value), ``upper`` and ``lower`` (the blocks as ``[top, bottom, left, right]`` fractions of
    the aligned face, edges moved out to multiples of 4 px, see :func:`block_boxes`; they must be
    left-right symmetric in pixels, so that a flipped training face's blocks are the flipped
    blocks), ``block_widths`` and ``face_widths`` (the seven conv widths of each block trunk and
    of the face trunk), ``face_branch`` (add the whole face as a third branch), ``fusion``
    (``concat``: dropout, FC ``head_hidden`` + ReLU, dropout, FC; ``attention``: each branch
    vector through its own FC ``head_hidden`` + ReLU, a shared scorer (FC, tanh, FC to one score)
    and a softmax over branches weight their sum, then dropout and an FC), ``head_hidden``,
    ``use_stn`` (a spatial transformer warps the face before the blocks are cut; off by default:
    the aligned blocks are this model's attention).

    Shapes at the defaults (48x48): upper block 20x40 px -> (256, 3, 5) map, lower block 20x32
    -> (256, 3, 4), face -> (512, 6, 6); canvas (1024, 12, 12). Pools round up (``ceil_mode``):
    a 20-px block keeps its last 4 pixels as a cell of its own instead of dropping them.

    Cost (``python benchmarks/bench_prior_attention.py``, ``benchmarks/PRIOR_ATTENTION_SPEED.md``:
    forward + backward + AdamW step, batch 128, channels_last, two CPU threads, back to back with
    ``deepfer``; the ratio is of process CPU time, which the shared machine's other jobs do not
    inflate): 2.19M parameters, 1.63-1.74x ``deepfer``'s (0.99M, with its STN) CPU time per
    image (134 images/s wall against 218 on a loaded machine). Block trunks narrowed to (12, 12,
    24, 48, 96, 96, 256) cost 1.59x (1.82M; 1.57x with attention fusion) and without the face
    branch 0.51x; the default keeps ``deepfer``'s widths because the measured runs
    (``benchmarks/ABLATION.md``, ``benchmarks/PRIOR_ATTENTION.md``) were trained with them. The
    canvas and head cost little once the head sums the canvas instead of slicing it (see
    ``branch_vectors``).
    """

    default_config: ClassVar[ModelConfig] = ModelConfig(
        name="prior-attention",
        dropout=0.3,
        extra={
            "align": "landmarks",
            "upper": [0.125, 0.5, 0.0833, 0.9167],
            "lower": [0.5833, 0.9583, 0.1667, 0.8333],
            "face_branch": True,
            "block_widths": [16, 16, 32, 64, 128, 128, 256],
            "face_widths": [16, 16, 32, 64, 128, 128, 512],
            "fusion": "concat",
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
        if size < 16 or size % 8:
            raise ModelError(f"PriorAttentionNet: input_size must be a multiple of 8 and >= 16, got {size}")
        if opts["align"] not in ALIGNS:
            raise ModelError(f"PriorAttentionNet: align must be one of {', '.join(ALIGNS)}, got {opts['align']!r}")
        if opts["fusion"] not in FUSIONS:
            raise ModelError(f"PriorAttentionNet: fusion must be one of {', '.join(FUSIONS)}, got {opts['fusion']!r}")
        if not isinstance(opts["face_branch"], bool):
            raise ModelError(f"PriorAttentionNet: face_branch must be true or false, got {opts['face_branch']!r}")
        hidden = int(opts["head_hidden"])
        if hidden < 1:
            raise ModelError(f"PriorAttentionNet: head_hidden must be >= 1, got {opts['head_hidden']!r}")
        block_w, face_w = _widths(opts, "block_widths"), _widths(opts, "face_widths")

        names = ["upper", "lower"] + (["face"] if opts["face_branch"] else [])
        self.boxes = block_boxes(size, [opts["upper"], opts["lower"]])  # pixels
        if opts["face_branch"]:
            self.boxes.append((0, size, 0, size))
        for name, (_, _, left, right) in zip(names, self.boxes, strict=True):
            if left != size - right:
                raise ModelError(
                    f"PriorAttentionNet: the {name} block spans pixels {left}-{right} of {size}, not left-right "
                    f"symmetric (a flipped face's block must be the flipped block)"
                )
        widths = [block_w[-1], block_w[-1]] + ([face_w[-1]] if opts["face_branch"] else [])
        self.stn = (
            SpatialTransformer(c, size, channels=(8, 10), kernel_sizes=(7, 5), hidden=32)
            if opts["use_stn"]
            else None
        )
        # Separate weights per branch: the brows and the mouth have different shapes to learn.
        self.branches = nn.ModuleDict(
            {name: nn.Sequential(*conv_stages(c, face_w if name == "face" else block_w, ceil_mode=True))
             for name in names}
        )
        cells = [(y0 // CELL, y1 // CELL, x0 // CELL, x1 // CELL) for y0, y1, x0, x1 in self.boxes]
        self.canvas = FaceCanvas(cells, widths, size // CELL)
        starts = [sum(widths[:k]) for k in range(len(widths))]
        #: (name, channels in the canvas, box in canvas cells (top, bottom, left, right)) per branch.
        self.branches_info: list[tuple[str, slice, Box]] = [
            (name, slice(s, s + w), box) for name, s, w, box in zip(names, starts, widths, cells, strict=True)
        ]
        # The canvas is zero outside each branch's box, so the box's average is the channel's sum
        # over the canvas / the box's area: no slicing (whose backward builds a zero canvas per
        # slice; 12% of a step in the profiler), no mask product, and the gradient of the sum stays
        # a broadcast view that is never written out.
        area = torch.cat([torch.full((w,), float((y1 - y0) * (x1 - x0)))
                          for w, (y0, y1, x0, x1) in zip(widths, cells, strict=True)])
        self.register_buffer("box_area", area, persistent=False)  # (1024,)
        self.fusion = opts["fusion"]
        self.drop = nn.Dropout(config.dropout)
        if self.fusion == "concat":
            self.fc1 = nn.Linear(sum(widths), hidden)
            self.fc2 = nn.Linear(hidden, config.num_classes)
        else:
            self.proj = nn.ModuleList(nn.Linear(w, hidden) for w in widths)
            score_hidden = max(1, hidden // 4)
            self.scorer = nn.Sequential(nn.Linear(hidden, score_hidden), nn.Tanh(), nn.Linear(score_hidden, 1))
            self.fc = nn.Linear(hidden, config.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The face canvas; its output is what ``forward_features`` returns."""
        return self.canvas

    def fc_weights(self) -> list[nn.Parameter]:
        """The head's FC weights, for the ``lambda * ||W_fc||^2`` penalty."""
        if self.fusion == "concat":
            return [self.fc1.weight, self.fc2.weight]
        return [*(p.weight for p in self.proj), self.scorer[0].weight, self.scorer[2].weight, self.fc.weight]

    def crops(self, x: Tensor) -> list[Tensor]:
        """What each branch sees: its block of the (warped) face, ``(B, C, h, w)`` at pixel size."""
        if self.stn is not None:
            x = self.stn(x)  # (B, 1, 48, 48)
        return [x[:, :, y0:y1, x0:x1] for y0, y1, x0, x1 in self.boxes]  # (B, 1, 20, 40), (B, 1, 20, 32), ...

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(x, self.config)
        maps = [trunk(block) for trunk, block in zip(self.branches.values(), self.crops(x), strict=True)]
        # (B, 256, 3, 5) upper, (B, 256, 3, 4) lower, (B, 512, 6, 6) face
        return self.canvas(*maps)  # (B, 1024, 12, 12)

    def branch_vectors(self, features: Tensor) -> list[Tensor]:
        """Each branch's average over its own channels inside its box, ``(B, width)`` each.

        Computed as the sum over the whole canvas / the box's area, which is the box's average
        for what ``forward_features`` returns (zero outside the box). Grad-CAM then weighs a
        channel by ``d logit / d vector / box area``, so a cell's map value is its share of the
        logit (the head's first layer being linear) whatever the size of its branch's box.
        """
        pooled = features.sum((2, 3)) / self.box_area  # (B, 1024)
        return [pooled[:, ch] for _, ch, _ in self.branches_info]

    def _attend(self, vectors: list[Tensor]) -> tuple[Tensor, Tensor]:
        h = torch.stack([p(v).relu() for p, v in zip(self.proj, vectors, strict=True)], 1)  # (B, n, 256)
        weights = self.scorer(h).squeeze(2).softmax(1)  # (B, n)
        return (weights.unsqueeze(2) * h).sum(1), weights  # (B, 256), (B, n)

    def forward_head(self, features: Tensor) -> Tensor:
        vectors = self.branch_vectors(features)  # (B, 256), (B, 256), (B, 512)
        if self.fusion == "concat":
            x = self.fc1(self.drop(torch.cat(vectors, 1))).relu()  # (B, 256)
            return self.fc2(self.drop(x))  # (B, num_classes)
        fused, _ = self._attend(vectors)  # (B, 256)
        return self.fc(self.drop(fused))  # (B, num_classes)

    def branch_weights(self, x: Tensor) -> Tensor:
        """The attention fusion's weight on each branch (order of ``branches_info``), ``(B, n)``.

        Raises:
            ModelError: the model fuses by concatenation, which has no per-branch weights.
        """
        if self.fusion != "attention":
            raise ModelError(
                f"PriorAttentionNet: branch_weights needs fusion 'attention', this model uses {self.fusion!r}"
            )
        return self._attend(self.branch_vectors(self.forward_features(x)))[1]

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
