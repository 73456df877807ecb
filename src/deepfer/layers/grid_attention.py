"""Grid-wise attention: the feature map is cut into a grid of cells and every cell gets its own
channel gates, computed from that cell alone by parameters all cells share.

Based on the grid-wise attention (GWA) of Huang, Huang, Wang & Jiang, "Facial expression
recognition with grid-wise attention and visual transformer", Information Sciences 580 (2021),
https://doi.org/10.1016/j.ins.2021.08.043 (the attentional-CNN study's "GWA"): there the face is
cut into a grid of patches, each patch goes through the same small 1x1-conv network, and the
result gives one weight per patch and channel that rescales the patch. Here the same idea acts on
a conv feature map instead of the input image, and the cell's score is a squeeze-excite
bottleneck on the cell's mean feature with a sigmoid (the public GWA code scores a patch by the
average of its features' self-similarity after a softmax across patches; the bottleneck is
cheaper and makes cells independent of how many there are). Unlike :class:`SqueezeExcite` (one gate
per channel for the whole face) an aligned face's eye cells and mouth cells can stress different
channels; unlike :class:`RegionAttention` (one weight per region) the gate is per channel.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from deepfer.layers.pooling import cell_pool

__all__ = ["GridAttention"]


class GridAttention(nn.Module):
    r"""Per-cell channel gates: ``x * up(sigmoid(W2 relu(W1 cellpool(x))))``.

    ``cellpool`` is adaptive average pooling to ``grid x grid`` cells; ``up`` is nearest
    upsampling back to ``(H, W)``, so each cell's gates cover exactly its pixels when ``H`` and
    ``W`` are multiples of ``grid`` (otherwise adaptive pooling's cells overlap by a pixel).
    ``W1``, ``W2`` are 1x1 convolutions shared by all cells.

    Args:
        channels: channels of the input map.
        grid: cells along each side (``grid * grid`` cells).
        reduction: the bottleneck's reduction ratio.
        min_hidden: the fewest bottleneck units.

    Returns:
        ``forward`` returns the reweighted map; ``gate`` returns the per-cell, per-channel gates
        in ``[0, 1]`` at cell resolution.

    Shape:
        - input: :math:`(B, C, H, W)`
        - ``forward`` output: :math:`(B, C, H, W)`
        - ``gate`` output: :math:`(B, C, grid, grid)`

    Example:
        >>> gwa = GridAttention(32, grid=3)
        >>> x = torch.rand(2, 32, 12, 12)
        >>> gwa(x).shape, gwa.gate(x).shape
        (torch.Size([2, 32, 12, 12]), torch.Size([2, 32, 3, 3]))
    """

    def __init__(self, channels: int, grid: int = 3, reduction: int = 4, min_hidden: int = 8) -> None:
        super().__init__()
        if channels < 1 or grid < 1 or reduction < 1:
            raise ValueError(
                f"GridAttention: channels, grid and reduction must be >= 1, got {channels}, {grid}, {reduction}"
            )
        hidden = max(min_hidden, channels // reduction)
        self.channels = channels
        self.grid = grid
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def gate(self, x: Tensor) -> Tensor:
        """Gates in ``[0, 1]`` per cell and channel, shape (B, C, grid, grid)."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"GridAttention: expected input of shape (B, {self.channels}, H, W), got {tuple(x.shape)}")
        cells = cell_pool(x, self.grid)  # (B, C, g, g)
        return self.fc2(self.fc1(cells).relu()).sigmoid()  # (B, C, g, g)

    def forward(self, x: Tensor) -> Tensor:
        gates = F.interpolate(self.gate(x), size=x.shape[2:], mode="nearest")  # (B, C, H, W)
        return x * gates

    def extra_repr(self) -> str:
        return f"channels={self.channels}, grid={self.grid}, hidden={self.fc1.out_channels}"
