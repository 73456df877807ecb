"""Mapping a dataset's labels onto a model's outputs (the one function training, evaluation,
explanation and distillation share), with its input-size check."""

from __future__ import annotations

import numpy as np
import pytest

from deepfer.errors import DeepferError
from deepfer.labels import EMOTIONS, FER7, map_to_model


def test_indices_and_names_map_to_output_positions() -> None:
    model = ["happy", "contempt", "angry"]
    labels = np.array([3, 7, 0, 6, 3], np.int64)  # happy, contempt, angry, neutral (not predicted), happy
    assert map_to_model(labels, model).tolist() == [0, 1, 2, -1, 0]
    assert map_to_model(["angry", "neutral", "happy"], model).tolist() == [2, -1, 0]
    assert map_to_model(np.array([], np.int64), model).tolist() == []
    assert map_to_model([], model).dtype == np.int64


def test_same_as_the_training_lookup_table() -> None:
    rng = np.random.default_rng(0)
    for classes in ([0, 1, 2, 3, 4, 5, 6], [0, 2, 3, 4, 5, 6, 7], [6, 3]):
        data = rng.choice(classes, 200)
        lut = np.full(len(EMOTIONS), -1, np.int64)  # how train/loop.py built its targets before
        lut[classes] = np.arange(len(classes))
        assert np.array_equal(map_to_model(data, [EMOTIONS[c] for c in classes]), lut[data])


def test_size_check_names_the_model_and_the_fix() -> None:
    assert map_to_model([0], FER7, image_size=(48, 48), input_size=48).tolist() == [0]
    with pytest.raises(DeepferError, match=r"^run/best\.pt expects 64x64 faces, the data is 48x48: pass --size 64$"):
        map_to_model([0], FER7, image_size=(48, 48), input_size=64, where="run/best.pt", hint="pass --size 64")
    with pytest.raises(DeepferError, match=r"^the model expects 48x48 faces, the data is 64x40$"):
        map_to_model([0], FER7, image_size=(64, 40), input_size=48)
