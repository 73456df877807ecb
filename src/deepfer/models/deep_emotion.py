"""Deep-Emotion (Minaee & Abdolrashidi, https://arxiv.org/abs/1902.01019): a four-conv network
with a spatial transformer in front, about 67k parameters for 48x48 grayscale faces.

Faithful to the paper and its widely used PyTorch re-implementation (7x7/5x5 localization kernels,
640 -> 32 -> 6), with that re-implementation's evaluation bug fixed: dropout is a module, so
``model.eval()`` turns it off.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from deepfer.errors import ModelError
from deepfer.layers import SpatialTransformer
from deepfer.models.registry import ModelConfig, check_input, complete_config, register_model

__all__ = ["DeepEmotion"]

_WIDTH = 10  # every conv of the feature path has 10 filters (paper, Fig. 2)


@register_model
class DeepEmotion(nn.Module):
    """Deep-Emotion for ``(B, in_chans, input_size, input_size)`` normalised images.

    ``config.extra`` options: ``batch_norm`` (BatchNorm after the fourth conv, as in the public
    re-implementation; the paper does not mention it), ``use_stn`` (``False`` for the no-attention
    ablation), ``hidden`` (the FC layer between the 810 features and the logits, 50 in the paper).
    """

    default_config: ClassVar[ModelConfig] = ModelConfig(
        name="deep-emotion",
        dropout=0.5,
        extra={"batch_norm": True, "use_stn": True, "hidden": 50},
    )

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        config = config or self.default_config
        if config.name != self.default_config.name:
            raise ModelError(f"DeepEmotion: got a config for {config.name!r}")
        self.config = config = complete_config(config)
        opts = config.extra
        c, size = config.in_chans, config.input_size

        # Localization net of the re-implementation: conv7 8 -> pool -> conv5 10 -> pool -> FC.
        self.stn = (
            SpatialTransformer(c, size, channels=(8, 10), kernel_sizes=(7, 5), hidden=32)
            if opts["use_stn"]
            else None
        )
        # ReLU after the first conv of each pair too (as the re-implementation does): without it
        # the two stacked convs would collapse into one linear 5x5 filter.
        self.block1 = nn.Sequential(
            nn.Conv2d(c, _WIDTH, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(_WIDTH, _WIDTH, 3),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(_WIDTH, _WIDTH, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(_WIDTH, _WIDTH, 3),
            nn.BatchNorm2d(_WIDTH) if opts["batch_norm"] else nn.Identity(),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
        )
        # Unpadded convs: 48 -> 46 -> 44 -> 22 -> 20 -> 18 -> 9, i.e. 810 = 10 x 9 x 9 features.
        side = ((size - 4) // 2 - 4) // 2
        if side < 1:
            raise ModelError(f"DeepEmotion: input_size {size} is too small (needs >= 14)")
        self.drop = nn.Dropout(config.dropout)
        self.fc1 = nn.Linear(_WIDTH * side * side, opts["hidden"])
        self.fc2 = nn.Linear(opts["hidden"], config.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The last conv block; its output is what ``forward_features`` returns."""
        return self.block2

    def fc_weights(self) -> list[nn.Parameter]:
        """The classifier's FC weights, for the paper's ``lambda * ||W_fc||^2`` penalty."""
        return [self.fc1.weight, self.fc2.weight]

    def forward_features(self, x: Tensor) -> Tensor:
        check_input(x, self.config)
        if self.stn is not None:
            x = self.stn(x)  # (B, 1, 48, 48)
        x = self.block1(x)  # (B, 10, 22, 22)
        return self.block2(x)  # (B, 10, 9, 9)

    def forward_head(self, features: Tensor) -> Tensor:
        x = self.drop(features.flatten(1))  # (B, 810)
        x = self.fc1(x).relu()  # (B, 50)
        return self.fc2(x)  # (B, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
