"""DeepFER-L: the larger attentional network for 48x48 faces, a spatial transformer in front of a
VGG-style trunk (four stages of two 3x3 conv-BN-ReLU, widths 64-128-256-512, a max-pool after
each), global average pooling, dropout and one linear layer: about 4.7M parameters.

The trunk is a VGG-style network chosen for its FER2013 accuracy on one GPU (recipe:
``configs/deepfer-l_fer2013.yaml``; results: ``benchmarks/RESULTS.md``); the spatial
transformer and the attention blocks are :mod:`deepfer.models.deepfer_net`'s, one option away, so
the two networks compare block for block. The last max-pool sits in the head, so ``cam_layer``
(and Grad-CAM) sees the 6x6 map rather than 3x3 cells of 16 pixels; the computation is the same.
Cost: about 0.47 GMAC per face against 0.07 for ``deepfer`` (most of it in the 64- and
128-channel convs at 48x48 and 24x24); ``benchmarks/bench_models.py`` measures both.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from deepfer.errors import ModelError
from deepfer.layers import SpatialTransformer
from deepfer.layers.conv_stages import conv_bn_relu
from deepfer.models.deepfer_net import ATTENTION_STAGES, attention_block
from deepfer.models.registry import ModelConfig, check_input, complete_config, register_model

__all__ = ["DeepFERLarge"]

_NUM_STAGES = 4


def _stage(in_chans: int, out_chans: int, pool: bool) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU (``deepfer.layers.conv_bn_relu``), then a 2x2 max-pool."""
    layers = [*conv_bn_relu(in_chans, out_chans), *conv_bn_relu(out_chans, out_chans)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


@register_model
class DeepFERLarge(nn.Module):
    """DeepFER-L for ``(B, in_chans, input_size, input_size)`` normalised images.

    ``config.extra`` options: ``widths`` (the four stage widths, two convs each), ``use_stn``
    (``False`` for the trunk alone, as in the calibration run), ``attention`` (``none``, ``se``,
    ``grid``, ``region`` or ``nonlocal``: the :mod:`deepfer.layers` block appended to the end of
    stages 1-4 (``nonlocal``: stages 2 and 3), as in ``deepfer``; see ``ATTENTION_STAGES``).
    Parameters: 4.71M (none; 4.69M of them the trunk's), 4.76M (se), 4.89M (grid), 4.72M
    (region), 4.88M (nonlocal).
    """

    default_config: ClassVar[ModelConfig] = ModelConfig(
        name="deepfer-l",
        dropout=0.3,
        extra={"widths": [64, 128, 256, 512], "use_stn": True, "attention": "none"},
    )

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        config = config or self.default_config
        if config.name != self.default_config.name:
            raise ModelError(f"DeepFERLarge: got a config for {config.name!r}")
        self.config = config = complete_config(config)
        opts = config.extra
        w = [int(v) for v in opts["widths"]]
        if len(w) != _NUM_STAGES or min(w) < 1:
            raise ModelError(f"DeepFERLarge: widths must be {_NUM_STAGES} positive ints, got {w}")
        if config.input_size < 16:
            raise ModelError(f"DeepFERLarge: input_size {config.input_size} is too small (needs >= 16: four pools)")
        kind = opts["attention"]
        if kind not in ATTENTION_STAGES:
            raise ModelError(f"DeepFERLarge: unknown attention {kind!r}; choose one of {', '.join(ATTENTION_STAGES)}")

        c, size = config.in_chans, config.input_size
        # deepfer's (and Deep-Emotion's) localization net: the attention modules stay comparable.
        self.stn = (
            SpatialTransformer(c, size, channels=(8, 10), kernel_sizes=(7, 5), hidden=32)
            if opts["use_stn"]
            else None
        )
        # Padded convs keep the size; the pools take 48 -> 24 -> 12 -> 6 (-> 3 in the head).
        self.stage1 = _stage(c, w[0], pool=True)
        self.stage2 = _stage(w[0], w[1], pool=True)
        self.stage3 = _stage(w[1], w[2], pool=True)
        self.stage4 = _stage(w[2], w[3], pool=False)  # its pool is in the head: cam_layer stays 6x6
        # Appended last, so the conv/BN keys are the same with or without a block.
        for i in ATTENTION_STAGES[kind]:
            getattr(self, f"stage{i}").append(attention_block(kind, w[i - 1]))
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(config.dropout)
        self.fc = nn.Linear(w[3], config.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The last stage (two 512-wide convs and its attention block); ``forward_features`` returns its output."""
        return self.stage4

    def fc_weights(self) -> list[nn.Parameter]:
        """The classifier's weight, for the papers' ``lambda * ||W_fc||^2`` penalty."""
        return [self.fc.weight]

    def forward_features(self, x: Tensor) -> Tensor:
        # The STN's FC layer fixes the input size; without it, pooling accepts any size.
        check_input(x, self.config, fixed_size=self.stn is not None)
        if self.stn is not None:
            x = self.stn(x)  # (B, 1, 48, 48)
        x = self.stage1(x)  # (B, 64, 24, 24)
        x = self.stage2(x)  # (B, 128, 12, 12)
        x = self.stage3(x)  # (B, 256, 6, 6)
        return self.stage4(x)  # (B, 512, 6, 6)

    def forward_head(self, features: Tensor) -> Tensor:
        x = self.gap(self.pool(features)).flatten(1)  # (B, 512, 3, 3) -> (B, 512)
        return self.fc(self.drop(x))  # (B, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
