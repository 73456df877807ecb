"""Deletion curves: the area, the deletion order, and that on the region fixture every map beats a
random pixel order (the maps point at what the model uses)."""

from __future__ import annotations

import numpy as np
import pytest
from explain_helpers import accuracy

from deepfer.errors import DeepferError
from deepfer.explain import FRACTIONS, area_under, compare_deletion, deletion_curve
from deepfer.explain.faithfulness import deletion_ranks


def test_area_under_is_the_mean_height() -> None:
    assert area_under([0, 0.25, 0.5], [0.8, 0.8, 0.8]) == pytest.approx(0.8)
    assert area_under([0, 0.5], [1.0, 0.0]) == pytest.approx(0.5)
    with pytest.raises(DeepferError, match="two increasing"):
        area_under([0.0], [1.0])


def test_deletion_ranks_most_important_first_and_ties_seeded() -> None:
    maps = np.zeros((1, 4, 4))
    maps[0, 2, 3] = 5.0
    maps[0, 0, 0] = 4.0
    ranks = deletion_ranks(maps, seed=0)
    assert ranks[0, 2, 3] == 0 and ranks[0, 0, 0] == 1
    assert sorted(ranks.ravel()) == list(range(16))
    np.testing.assert_array_equal(ranks, deletion_ranks(maps, seed=0))
    assert not np.array_equal(ranks, deletion_ranks(maps, seed=1))  # ties broken differently


def test_every_method_beats_random_on_the_region_fixture(region_model, region_data) -> None:
    faces, labels = region_data
    fractions = (0.0, 0.05, 0.1, 0.15, 0.2)  # the block is 11% of the face
    curves = compare_deletion(region_model, faces[:24], labels[:24], fractions=fractions, patch=8, stride=8)
    assert set(curves) == {"occlusion", "saliency", "gradcam", "random"}
    intact = accuracy(region_model, faces[:24], labels[:24])
    for c in curves.values():
        assert c.accuracy[0] == pytest.approx(intact) and c.agreement[0] == 1.0
        assert len(c.accuracy) == len(fractions)
    for m in ("occlusion", "saliency", "gradcam"):
        assert curves[m].auc < curves["random"].auc - 0.1, {k: v.auc for k, v in curves.items()}
    assert curves["occlusion"].accuracy[-1] <= 0.75  # blanking the block leaves a coin toss
    assert set(curves["random"].to_dict()) == {"method", "auc", "fractions", "accuracy", "agreement"}


def test_deletion_curve_checks_shapes(region_model, region_data) -> None:
    faces, labels = region_data
    with pytest.raises(DeepferError, match="heatmaps of shape"):
        deletion_curve(region_model, faces[:4], labels[:4], np.zeros((4, 10, 10)))
    assert FRACTIONS[0] == 0.0 and FRACTIONS[-1] == 0.5 and len(FRACTIONS) == 11
