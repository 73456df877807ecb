"""Erasing attention consistency: the attention maps, the flip-consistency loss, and one step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepfer.models import create_model
from deepfer.train.eac import ErasingAttentionConsistency, attention_map, flip_consistency


def _features(seed: int = 0) -> torch.Tensor:
    return torch.rand(4, 16, 6, 6, generator=torch.Generator().manual_seed(seed))


def test_attention_map_is_unit_norm_mean_square() -> None:
    f = _features()
    a = attention_map(f)
    assert a.shape == (4, 36)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(4))
    expected = f.pow(2).mean(1).flatten(1)
    torch.testing.assert_close(a, expected / expected.norm(dim=1, keepdim=True))


def test_consistency_is_zero_for_mirrored_maps_and_positive_otherwise() -> None:
    f = _features()
    assert flip_consistency(f, f.flip(3)).item() == pytest.approx(0.0, abs=1e-6)
    assert flip_consistency(f, 3.0 * f.flip(3)).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    other = flip_consistency(f, _features(1))
    assert 0.0 < other.item() <= 4.0
    # Unflipped copies are inconsistent unless the map is itself symmetric.
    assert flip_consistency(f, f).item() > 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        flip_consistency(f, f[:, :, :5])


def test_views_are_the_face_and_its_mirror_before_erasing() -> None:
    eac = ErasingAttentionConsistency(1.0, p=0.0)
    x = torch.randn(3, 1, 48, 48)
    v = eac.views(x)
    assert torch.equal(v[:3], x) and torch.equal(v[3:], x.flip(3))
    erased = ErasingAttentionConsistency(1.0, p=1.0).views(x)
    zeros = (erased == 0).flatten(1).float().mean(1)
    assert ((zeros > 0.015) & (zeros < 0.3)).all()  # every view erased, 2-25% of its area


def test_step_adds_the_weighted_consistency_and_removes_its_hook() -> None:
    torch.manual_seed(0)
    model = create_model("deepfer", use_stn=False).train()
    x, y = torch.randn(4, 1, 48, 48), torch.tensor([0, 1, 2, 3])
    eac = ErasingAttentionConsistency(2.5, p=0.0)
    torch.manual_seed(1)
    logits, loss, consistency = eac(model, x, y, lambda lg, t: F.cross_entropy(lg, t))
    assert logits.shape == (4, 7) and consistency > 0
    torch.testing.assert_close(loss, F.cross_entropy(logits, y) + 2.5 * consistency)
    assert not model.cam_layer._forward_hooks
    loss.backward()
    assert model.stage1[0].weight.grad.abs().sum() > 0


def test_consistency_gradient_pushes_towards_mirrored_maps() -> None:
    # Minimising the term alone on a conv net makes its maps more flip-consistent.
    torch.manual_seed(0)
    model = create_model("deep-emotion", use_stn=False, dropout=0.0).train()
    eac = ErasingAttentionConsistency(1.0, p=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(8, 1, 48, 48), torch.zeros(8, dtype=torch.long)
    values = []
    for _ in range(15):
        opt.zero_grad()
        _, loss, c = eac(model, x, y, lambda lg, t: lg.sum() * 0.0)  # the consistency term alone
        loss.backward()
        opt.step()
        values.append(float(c))
    assert values[-1] < 0.5 * values[0]
