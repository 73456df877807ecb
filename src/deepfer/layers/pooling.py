"""Adaptive average pooling that the ONNX exporter accepts for any input and output size.

``F.adaptive_avg_pool2d`` exports (TorchScript exporter, ``deepfer export``) only when the output
is 1x1; the grid, region and prior-attention blocks pool to a few cells. For a fixed input size,
adaptive pooling is a fixed linear map per axis, so it is written as an ``avg_pool2d`` (when the
sizes divide) or as two small matrix products with the same cells as PyTorch's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cell_pool"]


def _pool_matrix(n_in: int, n_out: int, like: Tensor) -> Tensor:
    # PyTorch's adaptive cells: [floor(i n / o), ceil((i + 1) n / o)).
    m = torch.zeros(n_out, n_in, dtype=like.dtype, device=like.device)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def cell_pool(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    r"""Average of each of ``size`` cells, exactly as :func:`torch.nn.functional.adaptive_avg_pool2d`.

    Args:
        x: the feature map.
        size: cells along each side, ``S`` or ``(S_h, S_w)``.

    Returns:
        The pooled map.

    Shape:
        - x: :math:`(B, C, H, W)`
        - output: :math:`(B, C, S_h, S_w)`

    Example:
        >>> x = torch.rand(2, 3, 9, 22)
        >>> torch.allclose(cell_pool(x, 4), F.adaptive_avg_pool2d(x, 4), atol=1e-6)
        True
    """
    oh, ow = (size, size) if isinstance(size, int) else size
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % oh == 0 and w % ow == 0:
        return F.avg_pool2d(x, (h // oh, w // ow))
    return _pool_matrix(h, oh, x) @ x @ _pool_matrix(w, ow, x).T  # (S_h, H) @ (B, C, H, W) @ (W, S_w)
