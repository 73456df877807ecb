"""DeepFER's conv trunk as reusable pieces: 3x3 conv-BN-ReLU, and the seven such convs grouped
in four stages with a 2x2 max-pool after convs 2, 4 and 6.

``deepfer`` is this trunk on the whole face; ``prior-attention`` runs one on each face block (and
optionally one on the whole face), so the builder lives here, in one place, for both.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from deepfer.errors import ModelError

__all__ = ["NUM_CONVS", "conv_bn_relu", "conv_stages"]

NUM_CONVS = 7


def conv_bn_relu(in_chans: int, out_chans: int) -> list[nn.Module]:
    """A padded 3x3 conv (no bias: the BatchNorm that follows has its own shift), BatchNorm, ReLU."""
    return [
        nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_chans),
        nn.ReLU(inplace=True),
    ]


def conv_stages(in_chans: int, widths: Sequence[int], *, ceil_mode: bool = False) -> list[nn.Sequential]:
    """DeepFER's four stages: convs 1-2 + pool, 3-4 + pool, 5-6 + pool, conv 7.

    Padded convs keep the size, so only the pools shrink it: an ``S`` face gives ``S / 8`` maps.

    Args:
        in_chans: input channels.
        widths: the seven conv widths.
        ceil_mode: pools keep a last odd row or column as a cell of its own (a 20-pixel block
            gives 10, 5, then 3 cells instead of dropping its last 4 pixels); no effect on sizes
            that divide by 8.

    Returns:
        The four stages, for the caller to name (their state-dict keys are ``stageN.i.*``).

    Raises:
        ModelError: unless there are seven widths.
    """
    w = [int(v) for v in widths]
    if len(w) != NUM_CONVS:
        raise ModelError(f"conv_stages: needs {NUM_CONVS} widths, got {w}")

    def pool() -> nn.MaxPool2d:
        return nn.MaxPool2d(2, ceil_mode=ceil_mode)

    return [
        nn.Sequential(*conv_bn_relu(in_chans, w[0]), *conv_bn_relu(w[0], w[1]), pool()),
        nn.Sequential(*conv_bn_relu(w[1], w[2]), *conv_bn_relu(w[2], w[3]), pool()),
        nn.Sequential(*conv_bn_relu(w[3], w[4]), *conv_bn_relu(w[4], w[5]), pool()),
        nn.Sequential(*conv_bn_relu(w[5], w[6])),  # the seventh conv: no pool
    ]
