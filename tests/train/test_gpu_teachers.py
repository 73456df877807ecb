"""scripts/gpu_teachers.py on the CPU with a tiny budget: two runs side by side on the generated
JAFFE-layout data, float16 checkpoints and probabilities packed within the pack's limits."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from deepfer.models.checkpoint import Checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_plan_trains_side_by_side_and_packs_within_limits(pattern_jaffe: Path, tmp_path: Path) -> None:
    recipe = {"model": "deep-emotion", "dataset": "jaffe", "data": "unused", "protocol": "random", "epochs": 1,
              "batch_size": 16, "lr": 0.003, "augment": "basic", "scheduler": "onecycle"}
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "small-cutmix.yaml").write_text(yaml.safe_dump({**recipe, "cutmix": 1.0, "mix_prob": 0.5}))
    plan = {"minutes": 0.05, "runs": [{"recipe": "small.yaml", "seeds": [0]},
                                      {"recipe": "small-cutmix.yaml", "seeds": [1]}]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    pack = tmp_path / "pack"
    # A part holds one deep-emotion checkpoint (~140 kB in float16) and the pack one part: the
    # second-best run's weights must be left behind, its probabilities kept.
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_teachers.py"), "--plan", str(tmp_path / "plan.yaml"),
           "--pack", str(pack), "--runs", str(tmp_path / "runs"), "--data", f"jaffe={pattern_jaffe}",
           "--max-files", "3", "--part-mib", "0.2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    assert sorted(p.name for p in pack.iterdir()) == ["manifest.json", "teachers.tar.gz", "weights-1.tar"]
    manifest = json.loads((pack / "manifest.json").read_text())
    runs = {r["name"]: r for r in manifest["runs"]}
    assert sorted(runs) == ["small-cutmix-s1", "small-s0"]
    for r in runs.values():
        assert r["exit_status"] == 0 and r["epochs_run"] >= 1 and r["minutes"] == 0.05
        spent, epochs = 60 * r["budget_minutes_spent"], 60 * r["epoch_minutes"]
        assert 3.0 <= spent <= 3.0 + epochs / r["epochs_run"] + 1.0 and epochs <= spent
    kept = max(runs.values(), key=lambda r: r["val_accuracy"])  # chosen on validation, never on test
    left = next(r for r in runs.values() if r is not kept)
    assert kept["weights"] == "weights-1.tar" and left["weights"].startswith("left behind")

    with tarfile.open(pack / "weights-1.tar") as tf:
        assert tf.getnames() == [f"{kept['name']}.pt"]
        tf.extractall(tmp_path / "w", filter="data")
    half = Checkpoint.load(tmp_path / "w" / f"{kept['name']}.pt")
    assert half.info["stored_dtype"] == "float16" and half.training is None
    assert all(v.dtype == torch.float16 for v in half.state_dict.values() if v.is_floating_point())
    full = Checkpoint.load(tmp_path / "runs" / kept["name"] / "best.pt")
    for k, v in full.state_dict.items():
        torch.testing.assert_close(half.state_dict[k].float(), v.float(), rtol=1e-3, atol=1e-3)

    with tarfile.open(pack / "teachers.tar.gz") as tf:
        names = set(tf.getnames())
        for name in runs:
            assert {f"{name}/probs.npz", f"{name}/log.csv", f"{name}/recipe.yaml", f"{name}/train.log"} <= names
        probs = np.load(io.BytesIO(tf.extractfile(f"{left['name']}/probs.npz").read()))
    assert list(probs["classes"]) == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    for part in ("train_tta", "val", "val_tta", "test", "test_tta"):
        p = probs[part]
        assert p.dtype == np.float16 and p.shape[1] == 7
        np.testing.assert_allclose(p.astype(np.float32).sum(1), 1.0, atol=5e-3)
    assert len(probs["train_tta"]) == len(probs["labels_train"]) > len(probs["labels_val"]) > 0
    acc = float((probs["test"].argmax(1) == probs["labels_test"]).mean())
    assert left["test_accuracy"] == acc
