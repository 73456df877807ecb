"""Region attention: split the feature map into regions, score each region, reweight it.

After the region attention networks (RAN) of Wang, Peng, Yang, Meng & Qiao, "Region Attention
Networks for Pose and Occlusion Robust Facial Expression Recognition", IEEE TIP 29 (2020),
https://arxiv.org/abs/1905.04075. RAN crops regions from the image, runs a shared CNN on each and
weights each region's feature by a self-attention score ``alpha_i = sigmoid(fc(f_i))`` and a
relation score ``beta_i = sigmoid(fc([f_i; f_m]))`` against the alpha-weighted mean ``f_m``. Here
the regions are the cells of a conv feature map (a face crop's fixed layout makes cells face
parts), and instead of pooling the weighted region features into one vector the map keeps its
shape: region ``i`` is multiplied by ``alpha_i * beta_i``, so the block drops into any CNN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepfer.layers.pooling import cell_pool

__all__ = ["RegionAttention"]


class RegionAttention(nn.Module):
    r"""One weight per region: ``x_i * alpha_i * beta_i`` for the ``regions x regions`` cells.

    ``f_i`` is region ``i``'s mean feature, ``alpha_i = sigmoid(w_a . f_i + b_a)``,
    ``f_m = sum_i alpha_i f_i / sum_i alpha_i`` and ``beta_i = sigmoid(w_b . [f_i; f_m] + b_b)``.
    Regions are adaptive-average-pooling cells; their weights are upsampled (nearest) back to
    ``(H, W)``, exact when ``H`` and ``W`` are multiples of ``regions``.

    Args:
        channels: channels of the input map.
        regions: regions along each side (``regions * regions`` regions).

    Returns:
        ``forward`` returns the reweighted map; ``gate`` returns the region weights in ``[0, 1]``.

    Shape:
        - input: :math:`(B, C, H, W)`
        - ``forward`` output: :math:`(B, C, H, W)`
        - ``gate`` output: :math:`(B, 1, regions, regions)`

    Example:
        >>> ran = RegionAttention(32, regions=3)
        >>> x = torch.rand(2, 32, 12, 12)
        >>> ran(x).shape, ran.gate(x).shape
        (torch.Size([2, 32, 12, 12]), torch.Size([2, 1, 3, 3]))
    """

    def __init__(self, channels: int, regions: int = 3) -> None:
        super().__init__()
        if channels < 1 or regions < 1:
            raise ValueError(f"RegionAttention: channels and regions must be >= 1, got {channels}, {regions}")
        self.channels = channels
        self.regions = regions
        self.alpha = nn.Conv2d(channels, 1, 1)  # RAN's self-attention FC, shared by all regions
        self.beta = nn.Conv2d(2 * channels, 1, 1)  # RAN's relation-attention FC

    def gate(self, x: Tensor) -> Tensor:
        """Region weights ``alpha * beta`` in ``[0, 1]``, shape (B, 1, regions, regions)."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"RegionAttention: expected input of shape (B, {self.channels}, H, W), got {tuple(x.shape)}"
            )
        f = cell_pool(x, self.regions)  # (B, C, r, r)
        alpha = self.alpha(f).sigmoid()  # (B, 1, r, r)
        f_m = (alpha * f).sum((2, 3), keepdim=True) / alpha.sum((2, 3), keepdim=True)  # (B, C, 1, 1)
        beta = self.beta(torch.cat([f, f_m.expand_as(f)], 1)).sigmoid()  # (B, 1, r, r)
        return alpha * beta

    def forward(self, x: Tensor) -> Tensor:
        return x * F.interpolate(self.gate(x), size=x.shape[2:], mode="nearest")  # (B, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, regions={self.regions}"
