"""Model architectures, one per file, and their registry (:mod:`deepfer.models.registry`).

Importing this package registers every architecture, so ``create_model(name)`` and
``list_models()`` see them all; ``create_model(name, pretrained=tag)`` loads shipped weights
(:mod:`deepfer.models.pretrained`, listed by ``list_pretrained()``).
"""

from __future__ import annotations

from deepfer.models.deep_emotion import DeepEmotion
from deepfer.models.deepfer_large import DeepFERLarge
from deepfer.models.deepfer_net import DeepFERNet
from deepfer.models.pretrained import Pretrained, create_model, list_pretrained, load_pretrained
from deepfer.models.prior_attention import PriorAttentionNet
from deepfer.models.registry import (
    ModelConfig,
    check_input,
    complete_config,
    list_models,
    model_config,
    register_model,
)

__all__ = [
    "DeepEmotion",
    "DeepFERLarge",
    "DeepFERNet",
    "ModelConfig",
    "Pretrained",
    "PriorAttentionNet",
    "check_input",
    "complete_config",
    "create_model",
    "list_models",
    "list_pretrained",
    "load_pretrained",
    "model_config",
    "register_model",
]
