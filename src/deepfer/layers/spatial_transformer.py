"""Spatial transformer (Jaderberg et al., 2015, https://arxiv.org/abs/1506.02025): a small
localization net predicts one affine transform per image and the input is resampled with it.

Deep-Emotion and DeepFER use it as their "attention" module; ``stn_warp`` is the stateless warp,
``SpatialTransformer`` owns the localization net.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SpatialTransformer", "stn_warp"]

# The affine identity, row-major (2, 3): the transform the localization net starts from.
_IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def stn_warp(x: Tensor, theta: Tensor) -> Tensor:
    r"""Resample a batch of images with one affine transform per image.

    ``theta`` maps output coordinates to input coordinates in the normalised ``[-1, 1]`` space of
    :func:`torch.nn.functional.affine_grid` (``align_corners=False``); samples that fall outside
    the input read zeros.

    Args:
        x: the images to warp.
        theta: the affine transforms, output -> input, in normalised coordinates.

    Returns:
        The warped images, same shape, dtype and device as ``x``.

    Shape:
        - x: :math:`(B, C, H, W)`
        - theta: :math:`(B, 2, 3)`
        - output: :math:`(B, C, H, W)`

    Example:
        >>> x = torch.rand(2, 1, 48, 48)
        >>> theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
        >>> torch.allclose(stn_warp(x, theta), x, atol=1e-5)
        True
    """
    if x.ndim != 4:
        raise ValueError(f"stn_warp: expected x of shape (B, C, H, W), got {tuple(x.shape)}")
    if theta.ndim != 3 or theta.shape[1:] != (2, 3) or theta.shape[0] != x.shape[0]:
        raise ValueError(
            f"stn_warp: expected theta of shape ({x.shape[0]}, 2, 3) for x of shape "
            f"{tuple(x.shape)}, got {tuple(theta.shape)}"
        )
    # affine_grid refuses mixed dtypes, and a half-precision x with a float32 theta is common.
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class SpatialTransformer(nn.Module):
    r"""A localization net followed by :func:`stn_warp`.

    The localization net is ``len(channels)`` blocks of conv (no padding) -> max-pool 2 -> ReLU,
    then FC -> ``hidden`` -> ReLU -> FC -> 6. The flatten size is measured with a dummy pass, so
    any ``input_size`` the conv stack does not shrink to nothing works. The last FC starts at the
    identity transform (zero weight, identity bias): at initialisation the module returns its
    input unchanged and training moves it away only where that lowers the loss.

    Args:
        in_chans: channels of the input images.
        input_size: the input's spatial size, ``H`` (square) or ``(H, W)``; the localization net's
            first FC layer is sized for it, so other sizes are rejected at run time.
        channels: output channels of each localization conv block.
        kernel_sizes: kernel size of each localization conv block, one per entry of ``channels``.
        hidden: width of the localization net's hidden FC layer.

    Returns:
        ``forward`` returns the warped input; ``theta`` returns the predicted transforms.

    Shape:
        - input: :math:`(B, C_{in}, H, W)`
        - ``forward`` output: :math:`(B, C_{in}, H, W)`
        - ``theta`` output: :math:`(B, 2, 3)`

    Example:
        >>> stn = SpatialTransformer(in_chans=1, input_size=48)
        >>> x = torch.rand(4, 1, 48, 48)
        >>> stn(x).shape, stn.theta(x).shape
        (torch.Size([4, 1, 48, 48]), torch.Size([4, 2, 3]))
    """

    def __init__(
        self,
        in_chans: int = 1,
        input_size: int | tuple[int, int] = 48,
        channels: Sequence[int] = (8, 10),
        kernel_sizes: Sequence[int] = (7, 5),
        hidden: int = 32,
    ) -> None:
        super().__init__()
        if len(channels) != len(kernel_sizes) or not channels:
            raise ValueError(
                f"SpatialTransformer: expected one kernel size per localization conv, got "
                f"channels={tuple(channels)} and kernel_sizes={tuple(kernel_sizes)}"
            )
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.in_chans = in_chans
        self.input_size: tuple[int, int] = (int(size[0]), int(size[1]))

        layers: list[nn.Module] = []
        prev = in_chans
        for out, k in zip(channels, kernel_sizes):
            layers += [nn.Conv2d(prev, out, kernel_size=k), nn.MaxPool2d(2), nn.ReLU(inplace=True)]
            prev = out
        self.localization = nn.Sequential(*layers)

        # Measure rather than compute the flatten size: the paper's own figure (90) was wrong.
        try:
            with torch.no_grad():
                dummy = torch.zeros(1, in_chans, *self.input_size)
                flat = self.localization(dummy).flatten(1).shape[1]  # e.g. 10 * 8 * 8 = 640
        except RuntimeError as err:
            raise ValueError(
                f"SpatialTransformer: input_size {self.input_size} is too small for a "
                f"localization net with kernel sizes {tuple(kernel_sizes)}"
            ) from err

        self.fc_loc = nn.Sequential(
            nn.Linear(flat, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 6),
        )
        self.reset_identity()

    def reset_identity(self) -> None:
        """Set the last FC layer so that the predicted transform is the identity for any input."""
        last = self.fc_loc[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor(_IDENTITY_THETA))

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_chans or tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f"SpatialTransformer: expected input of shape (B, {self.in_chans}, "
                f"{self.input_size[0]}, {self.input_size[1]}), got {tuple(x.shape)}"
            )

    def theta(self, x: Tensor) -> Tensor:
        """The affine transform predicted for each image, output -> input, shape (B, 2, 3)."""
        self._check_input(x)
        xs = self.localization(x).flatten(1)  # (B, 640) for the default 48x48 net
        return self.fc_loc(xs).view(-1, 2, 3)  # (B, 2, 3)

    def forward(self, x: Tensor) -> Tensor:
        return stn_warp(x, self.theta(x))

    def extra_repr(self) -> str:
        return f"in_chans={self.in_chans}, input_size={self.input_size}"
