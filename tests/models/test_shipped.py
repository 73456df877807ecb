"""The weights inside the package: each loads offline with weights_only, has a model card that
names its recipe, and the bare architecture names resolve to the best of their kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import torch

from deepfer.errors import ModelError
from deepfer.models import create_model, list_pretrained
from deepfer.models import pretrained as weights

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {n: p for n, p in weights._shipped().items() if p.is_file()}


def test_default_and_bare_names_are_shipped() -> None:
    assert weights.DEFAULT in SHIPPED
    for arch, name in weights.BEST.items():
        assert name in SHIPPED and weights.resolve(arch) == SHIPPED[name]
        assert weights.load_checkpoint(SHIPPED[name]).config.name == arch
    assert weights.resolve(None) == SHIPPED[weights.DEFAULT]
    with pytest.raises(ModelError, match="no shipped weights named 'nope'; available: .*deepfer_fer2013"):
        weights.resolve("nope")


def test_create_model_takes_a_pretrained_tag() -> None:
    """timm / open_clip style: an architecture and a tag of its shipped weights."""
    tags = [p.tag for p in list_pretrained("deep-emotion")]
    assert "fer2013-kd" in tags and all(p.architecture == "deep-emotion" for p in list_pretrained("deep-emotion"))
    model = create_model("deep-emotion", pretrained="fer2013-kd")
    want = weights.load_checkpoint("deep-emotion_fer2013-kd").build()
    assert not model.training
    for (k, a), (_, b) in zip(model.state_dict().items(), want.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    best = create_model("deepfer", pretrained=True)
    assert best.config == weights.load_checkpoint(weights.DEFAULT).config
    assert create_model("deepfer").training  # no pretrained: fresh weights
    with pytest.raises(ModelError, match="no pretrained weights 'nope' for 'deepfer'; its tags: .*fer2013-kd"):
        create_model("deepfer", pretrained="nope")
    with pytest.raises(ModelError, match="drop num_classes"):
        create_model("deepfer", pretrained="fer2013-kd", num_classes=3)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_checkpoint_has_a_card_naming_its_recipe(name: str) -> None:
    ckpt = weights.load_checkpoint(SHIPPED[name])
    card = SHIPPED[name].with_suffix(".md").read_text()
    assert card.startswith(f"# {name}\n")
    recipe = re.search(r"deepfer train --config (configs/\S+\.yaml)", card)
    assert recipe and (ROOT / recipe.group(1)).is_file(), "the card names a recipe that is in configs/"
    acc = float(re.search(r"test accuracy [^:]*: ([\d.]+)%", card).group(1))
    assert 0 < acc <= 100
    assert ckpt.info["train_config"]["dataset"] in card
    assert "never used for selection" in card
