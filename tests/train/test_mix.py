"""Mixup and CutMix: the mixed images and targets hold the right shares of each face."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepfer.train.mix import BatchMixer, cutmix, cutmix_box, mixup, soft_targets


def _batch(n: int = 6, k: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 48, 48, generator=g), torch.randint(0, k, (n,), generator=g)


def test_soft_targets_match_cross_entropys_label_smoothing() -> None:
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 3, 6, 2, 2])
    t = soft_targets(y, 7, smoothing=0.1)
    torch.testing.assert_close(t.sum(1), torch.ones(5))
    soft_ce = -(t * F.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(soft_ce, F.cross_entropy(logits, y, label_smoothing=0.1))
    dist = torch.full((2, 7), 1 / 7)
    assert soft_targets(dist, 7, smoothing=0.3) is not None and torch.equal(soft_targets(dist, 7, 0.3), dist)


def test_mixup_blends_images_and_targets_with_the_same_weight() -> None:
    x, y = _batch()
    t = soft_targets(y, 7)
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    mixed, mt = mixup(x, t, 0.7, perm)
    torch.testing.assert_close(mixed, 0.7 * x + 0.3 * x[perm])
    torch.testing.assert_close(mt, 0.7 * t + 0.3 * t[perm])
    torch.testing.assert_close(mt.sum(1), torch.ones(6))
    assert mt[0, y[0]] >= 0.7 - 1e-6  # its own class keeps at least its share


def test_cutmix_pastes_the_box_and_weights_targets_by_area() -> None:
    x, y = _batch()
    t = soft_targets(y, 7)
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    box = (10, 34, 6, 18)  # 24 x 12 = 288 of 2304 pixels
    mixed, mt, lam = cutmix(x, t, box, perm)
    assert lam == pytest.approx(1 - 288 / 2304)
    torch.testing.assert_close(mixed[:, :, 10:34, 6:18], x[perm][:, :, 10:34, 6:18])
    outside = torch.ones(48, 48, dtype=torch.bool)
    outside[10:34, 6:18] = False
    torch.testing.assert_close(mixed[:, :, outside], x[:, :, outside])
    torch.testing.assert_close(mt, lam * t + (1 - lam) * t[perm])
    torch.testing.assert_close(mt.sum(1), torch.ones(6))


def test_cutmix_box_covers_one_minus_lambda_when_not_clipped() -> None:
    g = torch.Generator().manual_seed(0)
    areas = []
    for _ in range(200):
        top, bottom, left, right = cutmix_box(48, 48, 0.75, g)
        assert 0 <= top <= bottom <= 48 and 0 <= left <= right <= 48
        areas.append((bottom - top) * (right - left) / 2304)
    assert max(areas) == pytest.approx(0.25, abs=0.01)  # 24 x 24 when the box fits
    assert min(areas) < 0.2  # clipped at the border


def test_mixer_targets_are_distributions_and_reproducible() -> None:
    x, y = _batch(16)
    mixer = BatchMixer(7, mixup_alpha=0.4, cutmix_alpha=1.0, smoothing=0.1)
    modes = set()
    for seed in range(12):
        torch.manual_seed(seed)
        out = mixer(x, y)
        modes.add(out.mode)
        assert out.targets.shape == (16, 7)
        torch.testing.assert_close(out.targets.sum(1), torch.ones(16))
        assert 0.0 <= out.lam <= 1.0
        base = soft_targets(y, 7, 0.1)
        torch.testing.assert_close(out.targets, out.lam * base + (1 - out.lam) * base[out.perm])
        torch.manual_seed(seed)
        again = mixer(x, y)
        assert torch.equal(again.images, out.images) and again.mode == out.mode
    assert modes == {"mixup", "cutmix"}


def test_mixer_prob_zero_or_no_alpha_leaves_the_batch() -> None:
    x, y = _batch()
    for mixer in (BatchMixer(7, mixup_alpha=1.0, prob=0.0), BatchMixer(7)):
        out = mixer(x, y)
        assert out.mode == "none" and torch.equal(out.images, x) and out.lam == 1.0
        torch.testing.assert_close(out.targets, F.one_hot(y, 7).float())
    assert not BatchMixer(7).active and BatchMixer(7, cutmix_alpha=1.0).active


def test_mixer_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="prob"):
        BatchMixer(7, mixup_alpha=0.2, prob=1.5)
    with pytest.raises(ValueError, match="alphas"):
        BatchMixer(7, mixup_alpha=-1.0)
