"""Squeeze-and-excitation (Hu, Shen, Sun, CVPR 2018, https://arxiv.org/abs/1709.01507): one gate
per channel, computed from the globally pooled feature map, rescales the channels.

The attentional-CNN study's final model was an ensemble of CNNs with these blocks.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["SqueezeExcite"]


class SqueezeExcite(nn.Module):
    r"""Channel attention: ``x * sigmoid(W2 relu(W1 avgpool(x)))``.

    The bottleneck has ``max(min_hidden, channels // reduction)`` units (the paper's ``r = 16``
    leaves one unit for a 16-channel map; ``min_hidden`` keeps small maps expressive).

    Args:
        channels: channels of the input map.
        reduction: the bottleneck's reduction ratio ``r``.
        min_hidden: the fewest bottleneck units.

    Returns:
        ``forward`` returns the reweighted map; ``gate`` returns the per-channel gates in ``[0, 1]``.

    Shape:
        - input: :math:`(B, C, H, W)`
        - ``forward`` output: :math:`(B, C, H, W)`
        - ``gate`` output: :math:`(B, C, 1, 1)`

    Example:
        >>> se = SqueezeExcite(32)
        >>> x = torch.rand(2, 32, 12, 12)
        >>> se(x).shape, se.gate(x).shape
        (torch.Size([2, 32, 12, 12]), torch.Size([2, 32, 1, 1]))
    """

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 8) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"SqueezeExcite: channels and reduction must be >= 1, got {channels}, {reduction}")
        hidden = max(min_hidden, channels // reduction)
        self.channels = channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        # 1x1 convs rather than Linear: no reshapes, and channels_last batches stay channels_last.
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def gate(self, x: Tensor) -> Tensor:
        """Per-channel gates in ``[0, 1]``, shape (B, C, 1, 1)."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"SqueezeExcite: expected input of shape (B, {self.channels}, H, W), got {tuple(x.shape)}")
        return self.fc2(self.fc1(self.pool(x)).relu()).sigmoid()  # (B, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.fc1.out_channels}"
