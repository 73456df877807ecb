"""DeepFER (Mohsin, Rafi, Navil) for 48x48 faces: a spatial transformer, then seven 3x3
conv-BN-ReLU layers with a max-pool after each pair but the last, and a small FC head.

Follows the paper's text rather than its notebooks (256x256 input, 6.2M parameters): the input is
48x48, global average pooling replaces the 18432-wide flatten, and the spatial transformer is
actually called in ``forward`` (the notebooks defined it and never used it). The attentional-CNN
study's other attention blocks (squeeze-excite, grid-wise, non-local, region) are one option away.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from deepfer.errors import ModelError
from deepfer.layers import (
    GridAttention, NonLocalBlock, RegionAttention, SpatialTransformer, SqueezeExcite, conv_stages,
)
from deepfer.layers.conv_stages import NUM_CONVS
from deepfer.models.registry import ModelConfig, check_input, complete_config, register_model

__all__ = ["DeepFERNet"]

# Which stages (1-4) end with the attention block. Gates are cheap everywhere; a non-local block's
# affinity is (HW)^2 per image, so it goes where the map is 12x12 and 6x6 (at 24x24 its 576x576
# affinity would cost more than the rest of the network), like the paper's res3/res4 placement.
ATTENTION_STAGES = {"none": (), "se": (1, 2, 3, 4), "grid": (1, 2, 3, 4), "region": (1, 2, 3, 4),
                    "nonlocal": (2, 3)}


def attention_block(kind: str, channels: int) -> nn.Module:
    """The block ``DeepFERNet`` appends to a stage for ``extra["attention"] = kind``."""
    if kind == "se":
        return SqueezeExcite(channels)
    if kind == "grid":
        return GridAttention(channels, grid=3)  # 24, 12 and 6 px maps: cells of 8, 4 and 2 px
    if kind == "region":
        return RegionAttention(channels, regions=3)
    if kind == "nonlocal":
        return NonLocalBlock(channels)
    raise ModelError(f"DeepFERNet: unknown attention {kind!r}; choose one of {', '.join(ATTENTION_STAGES)}")


@register_model
class DeepFERNet(nn.Module):
    """DeepFER for ``(B, in_chans, input_size, input_size)`` normalised images.

    ``config.extra`` options: ``widths`` (the seven conv widths), ``head_hidden`` (the FC layer
    between pooled features and logits), ``use_stn`` (``False`` for the no-attention ablation),
    ``attention`` (``none``, ``se``, ``grid``, ``region`` or ``nonlocal``: a
    :mod:`deepfer.layers` block appended to the end of stages 1-4, after the pools of stages 1-3;
    ``nonlocal`` to stages 2 and 3 only, see ``ATTENTION_STAGES``). The block at the end of stage
    4 is inside ``cam_layer``, so Grad-CAM reads the reweighted map the head consumes. ``none``
    (the default, and what checkpoints saved before the option existed get) adds no module:
    state-dict keys are unchanged. Parameters: 0.99M (none), 1.03M (se), 1.14M (grid), 1.00M
    (region), 1.04M (nonlocal); training at batch 128 on one thread (best of 8 steps, shared CPU):
    ~160 images/s without a block, ~145-155 with one (nonlocal the slowest).
    The default widths are narrow at full resolution, where convolutions cost the most, and wide
    after the last pool, where parameters are cheap: about 1.0M parameters and ~260-290 training
    images/s (forward + backward, batch 128, channels_last, two CPU threads). The wider
    (64, 64, 128, 128, 256, 256, 256) trains at ~30 images/s there.
    """

    default_config: ClassVar[ModelConfig] = ModelConfig(
        name="deepfer",
        dropout=0.3,
        extra={"widths": [16, 16, 32, 64, 128, 128, 512], "head_hidden": 256, "use_stn": True,
               "attention": "none"},
    )

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        config = config or self.default_config
        if config.name != self.default_config.name:
            raise ModelError(f"DeepFERNet: got a config for {config.name!r}")
        self.config = config = complete_config(config)
        opts = config.extra
        w = [int(v) for v in opts["widths"]]
        if len(w) != NUM_CONVS or min(w) < 1:
            raise ModelError(f"DeepFERNet: widths must be {NUM_CONVS} positive ints, got {w}")
        if config.input_size < 8:
            raise ModelError(
                f"DeepFERNet: input_size {config.input_size} is too small (needs >= 8)"
            )

        # The same localization net as Deep-Emotion's, so the two attention modules compare.
        c, size = config.in_chans, config.input_size
        self.stn = (
            SpatialTransformer(c, size, channels=(8, 10), kernel_sizes=(7, 5), hidden=32)
            if opts["use_stn"]
            else None
        )
        # Padded convs keep the size, so only the pools shrink it: 48 -> 24 -> 12 -> 6.
        self.stage1, self.stage2, self.stage3, self.stage4 = conv_stages(c, w)
        kind = opts["attention"]
        if kind not in ATTENTION_STAGES:
            raise ModelError(f"DeepFERNet: unknown attention {kind!r}; choose one of {', '.join(ATTENTION_STAGES)}")
        # Appended last, so the conv/BN keys of every stage are the same with or without it.
        stage_chans = {1: w[1], 2: w[3], 3: w[5], 4: w[6]}
        for i in ATTENTION_STAGES[kind]:
            getattr(self, f"stage{i}").append(attention_block(kind, stage_chans[i]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(config.dropout)
        self.fc1 = nn.Linear(w[6], opts["head_hidden"])
        self.fc2 = nn.Linear(opts["head_hidden"], config.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The seventh conv block; its output is what ``forward_features`` returns."""
        return self.stage4

    def fc_weights(self) -> list[nn.Parameter]:
        """The head's FC weights, for the paper's ``lambda * ||W_fc||^2`` penalty."""
        return [self.fc1.weight, self.fc2.weight]

    def forward_features(self, x: Tensor) -> Tensor:
        # The STN's FC layer fixes the input size; without it, pooling accepts any size.
        check_input(x, self.config, fixed_size=self.stn is not None)
        if self.stn is not None:
            x = self.stn(x)  # (B, 1, 48, 48)
        x = self.stage1(x)  # (B, 16, 24, 24)
        x = self.stage2(x)  # (B, 64, 12, 12)
        x = self.stage3(x)  # (B, 128, 6, 6)
        return self.stage4(x)  # (B, 512, 6, 6)

    def forward_head(self, features: Tensor) -> Tensor:
        x = self.pool(features).flatten(1)  # (B, 512)
        x = self.fc1(self.drop(x)).relu()  # (B, 256)
        return self.fc2(self.drop(x))  # (B, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
