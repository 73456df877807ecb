"""Non-local block (Wang, Girshick, Gupta, He, CVPR 2018, https://arxiv.org/abs/1711.07971):
self-attention over all positions of a feature map, added back as a residual.

Every position's output mixes the features of every other position, weighted by how similar their
embeddings are, so the mouth's features can read the eyes' (a conv stack needs many layers for
that). The output projection starts at zero, so a freshly inserted block is the identity and
training adds the attention only where it helps (the paper zero-initialises the BatchNorm after
that projection to the same effect).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NonLocalBlock"]


class NonLocalBlock(nn.Module):
    r"""Embedded-Gaussian non-local block: ``x + W_z softmax(theta(x)^T phi(x) / sqrt(d)) g(x)``.

    ``theta``, ``phi`` and ``g`` are 1x1 convolutions to ``inter_channels = d`` channels; the
    ``1 / sqrt(d)`` temperature (the Transformer's; the paper has none) keeps the softmax from
    saturating at initialisation. ``sub_sample`` max-pools ``phi`` and ``g`` by 2 (the paper's
    trick for large maps: a quarter of the keys). ``W_z`` is a zero-initialised 1x1 convolution.

    Args:
        channels: channels of the input map.
        inter_channels: the embedding width ``d`` (default ``channels // 2``, as in the paper).
        sub_sample: pool keys and values by 2.

    Returns:
        ``forward`` returns ``x`` plus the attention's output; ``affinity`` returns the attention
        weights (each row sums to 1).

    Shape:
        - input: :math:`(B, C, H, W)`
        - ``forward`` output: :math:`(B, C, H, W)`
        - ``affinity`` output: :math:`(B, HW, N)` with :math:`N = HW` (``HW / 4`` sub-sampled)

    Example:
        >>> block = NonLocalBlock(32)
        >>> x = torch.rand(2, 32, 6, 6)
        >>> torch.equal(block(x), x)  # the identity until trained
        True
    """

    def __init__(self, channels: int, inter_channels: int | None = None, sub_sample: bool = False) -> None:
        super().__init__()
        inter = inter_channels if inter_channels is not None else max(1, channels // 2)
        if channels < 1 or inter < 1:
            raise ValueError(f"NonLocalBlock: channels and inter_channels must be >= 1, got {channels}, {inter}")
        self.channels = channels
        self.inter_channels = inter
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.pool = nn.MaxPool2d(2) if sub_sample else nn.Identity()
        self.out = nn.Conv2d(inter, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"NonLocalBlock: expected input of shape (B, {self.channels}, H, W), got {tuple(x.shape)}")

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q = self.theta(x).flatten(2).transpose(1, 2)  # (B, HW, d)
        k = self.pool(self.phi(x)).flatten(2).transpose(1, 2)  # (B, N, d)
        v = self.pool(self.g(x)).flatten(2).transpose(1, 2)  # (B, N, d)
        return q, k, v

    def affinity(self, x: Tensor) -> Tensor:
        """The attention weights ``softmax(q k^T / sqrt(d))``, shape (B, HW, N)."""
        self._check(x)
        q, k, _ = self._qkv(x)
        return (q @ k.transpose(1, 2) * self.inter_channels**-0.5).softmax(-1)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        b, _, h, w = x.shape
        q, k, v = self._qkv(x)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, HW, d); fused softmax(q k^T / sqrt(d)) v
        y = y.transpose(1, 2).reshape(b, self.inter_channels, h, w)  # (B, d, H, W)
        return x + self.out(y)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, inter_channels={self.inter_channels}"
