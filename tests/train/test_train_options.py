"""Each ablation option trains end to end on the generated JAFFE-layout fixture, writes a
checkpoint that rebuilds the same model, and (mixing and EAC) resumes exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepfer.models.predict import predict_proba
from deepfer.data import load_dataset
from deepfer.data.cache import cache_dir
from deepfer.models.checkpoint import Checkpoint
from deepfer.train import loop
from deepfer.train.config import TrainConfig, load_config
from deepfer.train.loop import fit

SMALL_DEEPFER = {"widths": [8, 8, 8, 16, 16, 16, 32], "head_hidden": 32, "use_stn": False}

VARIANTS = {
    "se": dict(model="deepfer", model_options={**SMALL_DEEPFER, "attention": "se"}),
    "grid": dict(model="deepfer", model_options={**SMALL_DEEPFER, "attention": "grid"}),
    "region": dict(model="deepfer", model_options={**SMALL_DEEPFER, "attention": "region"}),
    "nonlocal": dict(model="deepfer", model_options={**SMALL_DEEPFER, "attention": "nonlocal"}),
    "prior-attention": dict(model="prior-attention", model_options={
        "block_widths": [8, 8, 8, 16, 16, 16, 32], "head_hidden": 32, "face_branch": False}),
    "prior-attention-face": dict(model="prior-attention", model_options={
        "block_widths": [8, 8, 8, 16, 16, 16, 32], "face_widths": SMALL_DEEPFER["widths"], "head_hidden": 32,
        "face_branch": True, "fusion": "attention"}),
    "mixup": dict(mixup=0.4),
    "cutmix": dict(cutmix=1.0, mix_prob=0.5),
    "eac": dict(eac=1.0),
    "all-losses": dict(mixup=0.2, cutmix=1.0, eac=0.5, label_smoothing=0.1, augment="strong"),
}


class FakeLandmarker:
    """Stands in for dlib (not installed where `make test` runs): each face's 68 points are the
    alignment template's eyes and mouth, shifted by up to a pixel, so prior-attention's training
    path (points, cache, alignment) runs for real on the fixture."""

    def __call__(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from deepfer.vision.align import TEMPLATE

        rng = np.random.default_rng(len(faces))
        p = np.zeros((len(faces), 68, 2), np.float32)
        shift = rng.uniform(-1, 1, (len(faces), 1, 2)) / faces.shape[1]
        p[:, 36:42], p[:, 42:48] = TEMPLATE[0], TEMPLATE[1]
        p[:, 48], p[:, 54] = TEMPLATE[2] - [0.1, 0.0], TEMPLATE[2] + [0.1, 0.0]
        return p + shift, np.ones(len(faces), bool)


@pytest.fixture(autouse=True)
def _landmarks_without_dlib(monkeypatch: pytest.MonkeyPatch) -> None:
    import deepfer.vision.landmarks

    monkeypatch.setattr(deepfer.vision.landmarks, "Landmarker", FakeLandmarker)


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(model="deep-emotion", dataset="jaffe", data=str(data), protocol="random", epochs=2,
                batch_size=16, lr=3e-3, augment="basic", out=str(out), seed=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_trains_and_its_checkpoint_reloads(name: str, pattern_jaffe: Path, tmp_path: Path) -> None:
    out = tmp_path / name
    cfg = _cfg(pattern_jaffe, out, **VARIANTS[name])
    (summary,) = fit(cfg)
    assert summary["epochs_run"] == 2 and np.isfinite(summary["best_val"])
    # prior-attention trained on landmark-aligned faces, their points cached with the dataset.
    assert bool(list(cache_dir().glob("landmarks-*.npz"))) == (cfg.model == "prior-attention")
    ckpt = Checkpoint.load(out / "best.pt")
    assert ckpt.info["train_config"] == cfg.to_dict()  # the recipe, new options included
    model = ckpt.build()
    assert model.config.name == cfg.model
    for key, value in cfg.model_options.items():
        assert model.config.extra[key] == value
    faces = load_dataset("jaffe", str(pattern_jaffe)).images[:5]
    probs = predict_proba(model, faces)
    assert probs.shape == (5, 7) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    # The reloaded model is the trained one: same outputs as the weights in the checkpoint.
    state = Checkpoint.load(out / "best.pt").state_dict
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key])


def test_mixing_and_eac_resume_exactly(pattern_jaffe: Path, tmp_path: Path, monkeypatch) -> None:
    opts = dict(epochs=3, mixup=0.4, cutmix=1.0, eac=1.0)
    straight = tmp_path / "straight"
    fit(_cfg(pattern_jaffe, straight, **opts))

    killed = tmp_path / "killed"
    real_write = loop._write_log
    calls = {"n": 0}

    def dies_after_epoch_two(path, history):
        real_write(path, history)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_write_log", dies_after_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(pattern_jaffe, killed, **opts))
    monkeypatch.setattr(loop, "_write_log", real_write)
    fit(_cfg(pattern_jaffe, killed, **opts), resume=True)
    a = Checkpoint.load(straight / "last.pt").state_dict
    b = Checkpoint.load(killed / "last.pt").state_dict
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=1e-6)


def test_new_options_are_validated_and_read_from_files(tmp_path: Path) -> None:
    from deepfer.errors import DeepferError

    for bad in ({"mixup": -0.1}, {"cutmix": -1.0}, {"mix_prob": 1.5}, {"eac": -1.0}):
        with pytest.raises(DeepferError, match=next(iter(bad))):
            TrainConfig(**bad)
    path = tmp_path / "r.yaml"
    path.write_text("mixup: 0.2\ncutmix: 1.0\nmix_prob: 0.5\neac: 2.0\n")
    cfg = load_config(path)
    assert (cfg.mixup, cfg.cutmix, cfg.mix_prob, cfg.eac) == (0.2, 1.0, 0.5, 2.0)
