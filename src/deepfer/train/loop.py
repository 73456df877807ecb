"""The training loop: batched in-memory data, kornia augmentation, optional mixup / CutMix
(``mix.py``) and erasing attention consistency (``eac.py``), CE + lambda * ||W_fc||^2, model
selection and early stopping on validation only, atomic per-epoch checkpoints, exact
``--resume``, and data-parallel training under ``torchrun`` (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from deepfer.data import FaceData, Fold, load_dataset, split
from deepfer.errors import DeepferError, ModelError
from deepfer.files import atomic_open
from deepfer.labels import EMOTIONS, map_to_model
from deepfer.models import create_model
from deepfer.models.checkpoint import Checkpoint, TrainingState
from deepfer.models.predict import predict_proba
from deepfer.train.augment import Augment
from deepfer.train.config import TrainConfig
from deepfer.train.distill import cached_teacher_probs, distill_targets
from deepfer.train.eac import ErasingAttentionConsistency
from deepfer.train.mix import BatchMixer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """Join the process group when launched by torchrun; use the GPU when there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return Dist(rank, world, torch.device("cuda", local))
    return Dist(rank, world, torch.device("cpu"))


def dataset_classes(data: FaceData) -> list[int]:
    """Global emotion indices the model will predict, in output order."""
    return data.present_classes()


def fit(cfg: TrainConfig, resume: bool = False) -> list[dict[str, Any]]:
    """Train every fold the config asks for; returns one summary per fold."""
    if not cfg.data:
        raise DeepferError("no data path: pass --data PATH (or set `data:` in the config)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    env = setup_distributed()
    data = load_dataset(cfg.dataset, cfg.data, **cfg.dataset_options)
    sp = split(data, cfg.protocol, cfg.seed)
    for w in sp.warnings:
        log.warning("%s/%s: %s", cfg.dataset, cfg.protocol, w)
    if cfg.fold is not None:
        if not 0 <= cfg.fold < len(sp.folds):
            raise DeepferError(f"fold {cfg.fold} does not exist: {cfg.protocol} has {len(sp.folds)} folds")
        folds = [(cfg.fold, sp.folds[cfg.fold])]
    else:
        folds = list(enumerate(sp.folds))
    summaries = []
    for i, fold in folds:
        out = Path(cfg.out) if not sp.is_kfold else Path(cfg.out) / f"fold{i}"
        summaries.append(train_fold(cfg, data, fold, out, env, resume, sp.warnings))
    if env.world > 1:
        dist.destroy_process_group()
    return summaries


def _targets(data: FaceData, index: np.ndarray, classes: list[int], soft: bool, input_size: int, model: str) -> Tensor:
    labels = [EMOTIONS[c] for c in classes]
    hard = map_to_model(data.labels[index], labels, image_size=data.image_size, input_size=input_size,
                        where=model, hint="set dataset_options.size")
    if soft and data.soft_labels is not None:
        s = data.soft_labels[index][:, classes]
        return torch.from_numpy(s / np.maximum(s.sum(1, keepdims=True), 1e-8)).float()
    return torch.from_numpy(hard)


def _build(cfg: TrainConfig, n_classes: int, labels: list[str]) -> nn.Module:
    model = create_model(cfg.model, num_classes=n_classes, **cfg.model_options)
    if cfg.init:
        ckpt = Checkpoint.load(cfg.init)
        state = dict(ckpt.state_dict)
        head = _head_prefix(model)
        own = model.state_dict()
        # The classifier's rows follow label names, not positions: copy the rows of the classes
        # both label spaces share and leave the others freshly initialised.
        for key in (f"{head}.weight", f"{head}.bias"):
            if key in state:
                rows = own[key].clone()
                for i, name in enumerate(labels):
                    if name in ckpt.labels:
                        rows[i] = state[key][ckpt.labels.index(name)]
                state[key] = rows
        kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(kept, strict=False)
        log.info("initialised from %s (%d/%d tensors; labels %s -> %s)", cfg.init, len(kept),
                 len(own), list(ckpt.labels), labels)
    return model


def improves(score: float, loss: float, state: dict[str, Any]) -> bool:
    """Whether an epoch's validation (accuracy, loss) beats the best so far: higher accuracy, or the
    same accuracy with a lower loss. Ties are common on small validation splits (CK+, JAFFE: a few
    dozen faces), where the earliest tied epoch is often not yet converged."""
    best = state["best_val"]
    return score > best or (score == best and loss < state.get("best_loss", math.inf))


def _head_prefix(model: nn.Module) -> str:
    """State-dict prefix of the final classifier: the last Linear with num_classes outputs."""
    name = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == model.config.num_classes]
    if not name:
        raise DeepferError(f"{model.config.name}: cannot find its classifier layer")
    return name[-1]


def _optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _lr_factor(cfg: TrainConfig, step: int, total: int, per_epoch: int) -> float:
    """Linear warm-up, then cosine (or one-cycle-like cosine) decay, per optimisation step."""
    warm = int(cfg.warmup_epochs * per_epoch)
    if cfg.scheduler == "onecycle" and warm == 0:
        warm = int(0.1 * total)
    if step < warm:
        return (step + 1) / warm
    if cfg.scheduler == "none":
        return 1.0
    t = (step - warm) / max(1, total - warm)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def prepare_batch(images: Tensor, augment: nn.Module, config: Any, device: torch.device) -> Tensor:
    """uint8 faces (B, 1, H, W) -> augmented, normalised, channels-last float batch on ``device``."""
    x = images.to(device).float().div_(255.0)
    x = augment(x).sub_(config.mean).div_(config.std)
    return x.contiguous(memory_format=torch.channels_last)


def _loss(logits: Tensor, target: Tensor, cfg: TrainConfig, model: nn.Module) -> Tensor:
    if target.ndim == 2:  # vote distribution (FER+): soft-target cross-entropy
        loss = -(target * F.log_softmax(logits, 1)).sum(1).mean()
    else:
        loss = F.cross_entropy(logits, target, label_smoothing=cfg.label_smoothing)
    if cfg.fc_l2:
        base = getattr(model, "module", model)
        loss = loss + cfg.fc_l2 * sum((w * w).sum() for w in base.fc_weights())
    return loss


def train_fold(
    cfg: TrainConfig, data: FaceData, fold: Fold, out: Path, env: Dist, resume: bool, warnings: list[str]
) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    classes = dataset_classes(data)
    labels = [EMOTIONS[c] for c in classes]
    model = _build(cfg, len(classes), labels).to(env.device).to(memory_format=torch.channels_last)
    config = model.config
    y_train = _targets(data, fold.train, classes, cfg.soft_labels, config.input_size, cfg.model)
    x_train = torch.from_numpy(data.images[fold.train]).unsqueeze(1)  # (N, 1, H, W) uint8
    teacher_seconds = 0.0
    if cfg.distill:
        probs, teacher_seconds = cached_teacher_probs(cfg.teacher, data.images[fold.train], labels, out / "teacher.npz",
                                                      cfg.eval_batch_size)
        y_train = distill_targets(y_train, probs, cfg.distill, cfg.label_smoothing)
    val_index = fold.val if len(fold.val) else fold.train[:0]
    y_val = _targets(data, val_index, classes, False, config.input_size, cfg.model).numpy()
    augment = Augment(cfg.augment, config.input_size).to(env.device)
    mixer = BatchMixer(len(classes), cfg.mixup, cfg.cutmix, cfg.mix_prob, cfg.label_smoothing)
    eac = ErasingAttentionConsistency(cfg.eac) if cfg.eac else None
    opt = _optimizer(cfg, model)
    ddp = nn.parallel.DistributedDataParallel(model) if env.world > 1 else model
    per_rank = max(1, cfg.batch_size // env.world)
    n_local = len(x_train) // env.world
    steps_per_epoch = max(1, n_local // per_rank)  # drop the ragged last batch (batch-norm)
    total_steps = steps_per_epoch * cfg.epochs

    state = {"epoch": 0, "best_val": -1.0, "best_epoch": -1, "history": [], "bad_epochs": 0}
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume and last_path.is_file():
        last = Checkpoint.load(last_path)
        if last.training is None:
            raise ModelError(f"{last_path}: no training state to resume from")
        model.load_state_dict(last.state_dict)
        opt.load_state_dict(last.training.optimizer)
        torch.set_rng_state(last.training.rng)
        state = last.training.loop
        log.info("resumed %s at epoch %d", last_path, state["epoch"])
    elif resume:
        log.info("--resume: no checkpoint at %s, starting fresh", last_path)
    state.setdefault("teacher_seconds", teacher_seconds)
    tb = None
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        tb = _tensorboard(out)

    for epoch in range(state["epoch"], cfg.epochs):
        if cfg.patience and state["bad_epochs"] >= cfg.patience:
            log.info("early stop: no validation gain for %d epochs", cfg.patience)
            break
        t0 = time.time()
        ddp.train()
        augment.train()
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        perm = torch.randperm(len(x_train), generator=g)[env.rank :: env.world]
        run_loss, run_correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=None if env.main else True, leave=False)
        for b in bar:
            idx = perm[b * per_rank : (b + 1) * per_rank]
            step = epoch * steps_per_epoch + b
            for group in opt.param_groups:
                group["lr"] = cfg.lr * _lr_factor(cfg, step, total_steps, steps_per_epoch)
            x = prepare_batch(x_train[idx], augment, config, env.device)
            y = y_train[idx].to(env.device)
            if mixer.active:  # soft (B, K) targets from here on
                mixed = mixer(x, y)
                x, y = mixed.images.contiguous(memory_format=torch.channels_last), mixed.targets
            if eac is not None:
                logits, loss, _ = eac(ddp, x, y, lambda lg, t: _loss(lg, t, cfg, ddp))
            else:
                logits = ddp(x)
                loss = _loss(logits, y, cfg, ddp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hard = y.argmax(1) if y.ndim == 2 else y
            run_loss += loss.item() * len(idx)
            run_correct += int((logits.argmax(1) == hard).sum())
            seen += len(idx)
            if b % 20 == 0:
                bar.set_postfix(loss=f"{run_loss / seen:.3f}", acc=f"{run_correct / seen:.3f}")
        train_time = time.time() - t0
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": opt.param_groups[0]["lr"],
            "train_loss": run_loss / max(seen, 1),
            "train_acc": run_correct / max(seen, 1),
            "images_per_s": seen * env.world / max(train_time, 1e-9),
        }
        if len(val_index):
            probs = predict_proba(model, data.images[val_index], cfg.eval_batch_size)
            row["val_loss"] = float(-np.log(np.maximum(probs[np.arange(len(y_val)), y_val], 1e-12)).mean())
            row["val_acc"] = float((probs.argmax(1) == y_val).mean())
        row["seconds"] = time.time() - t0
        score = row.get("val_acc", -row["train_loss"])
        sel_loss = row.get("val_loss", row["train_loss"])
        improved = improves(score, sel_loss, state)
        state["history"].append(row)
        state["epoch"] = epoch + 1
        if improved:
            state.update(best_val=score, best_loss=sel_loss, best_epoch=epoch + 1, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        if env.main:
            info = _info(cfg, state, data, fold, warnings)
            if improved:
                Checkpoint.from_model(model, labels, **info).save(best_path)
            training = TrainingState(opt.state_dict(), torch.get_rng_state(), state)
            Checkpoint.from_model(model, labels, training=training, **info).save(last_path)
            _write_log(out / "log.csv", state["history"])
            if tb is not None:
                for key, value in row.items():
                    if key != "epoch":
                        tb.add_scalar(key, value, epoch + 1)
                tb.flush()
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
    summary = {"out": str(out), "best_epoch": state["best_epoch"], "best_val": state["best_val"],
               "epochs_run": state["epoch"]}
    if env.main and best_path.is_file() and len(fold.test):
        best = Checkpoint.load(best_path).build()
        y_test = _targets(data, fold.test, classes, False, config.input_size, cfg.model).numpy()
        p = predict_proba(best, data.images[fold.test], cfg.eval_batch_size)
        summary["test_acc"] = float((p.argmax(1) == y_test).mean())
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _info(cfg: TrainConfig, state: dict[str, Any], data: FaceData, fold: Fold, warnings: list[str]) -> dict[str, Any]:
    seconds = sum(r["seconds"] for r in state["history"]) + state.get("teacher_seconds", 0.0)
    return {
        "dataset": cfg.dataset,
        "protocol": cfg.protocol,
        "fold": fold.name,
        "train_config": cfg.to_dict(),
        "epoch": state["epoch"],
        "best_epoch": state["best_epoch"],
        "val_accuracy": state["best_val"],
        "train_images": int(len(fold.train)),
        "train_seconds": seconds,
        "teacher_seconds": state.get("teacher_seconds", 0.0),  # labelling the faces (distillation), counted above
        "protocol_warnings": list(warnings),
        "torch": str(torch.__version__),
        "device": _device_name(),
    }


def _device_name() -> str:
    """What trained the model: the GPU's name, else ``cpu`` (timings depend on it)."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def _tensorboard(out: Path) -> Any:
    """A TensorBoard writer when the tensorboard package is installed (optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _write_log(path: Path, history: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    with atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
