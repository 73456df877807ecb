"""The training loop: the faces held as uint8 where the model is (GPU memory on a GPU), one
:class:`~deepfer.train.step.TrainStep` per batch (kornia augmentation, mixup / CutMix, erasing
attention consistency, CE + lambda * ||W_fc||^2, bf16 autocast on CUDA), a schedule over epochs or a
time budget (``schedule.py``), a validation pass per epoch, model selection and early stopping on
validation only, atomic per-epoch checkpoints through :class:`~deepfer.models.checkpoint.Checkpoint`,
exact ``--resume``, and data-parallel training under ``torchrun`` (gloo on CPU, nccl on GPU).

On a GPU nothing in an epoch waits for the device: indices, faces and targets are on it, the
step's loss and correct count are added up there and read once at the end of the epoch (a read per
step, as ``loss.item()`` was, empties the GPU's queue every step, so the GPU idles while Python
prepares the next batch). Several runs can share one GPU as separate processes: PyTorch takes GPU
memory as it needs it (a FER2013 run holds its 66 MB of faces plus the network's activations), so
nothing here reserves it; the log's ``gpu_memory_gb`` is each run's peak.
"""

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
from sklearn.metrics import log_loss
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from deepfer.data import FaceData, Fold, load_dataset, split
from deepfer.data.alignment import for_model
from deepfer.errors import DeepferError, ModelError, ParameterError
from deepfer.files import atomic_open
from deepfer.labels import EMOTIONS, map_to_model
from deepfer.models import create_model
from deepfer.models.checkpoint import Checkpoint, Preprocess, TrainingState
from deepfer.models.registry import model_config
from deepfer.models.predict import predict_proba
from deepfer.train.config import TrainConfig
from deepfer.train.distill import cached_teacher_probs, distill_targets
from deepfer.train.schedule import BudgetSchedule, EpochSchedule, Schedule
from deepfer.train.step import TrainStep, set_lr

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
        torch.backends.cudnn.benchmark = True  # fixed input sizes: cuDNN times its kernels once, keeps the fastest
        return Dist(rank, world, torch.device("cuda", local))
    return Dist(rank, world, torch.device("cpu"))


def dataset_classes(data: FaceData) -> list[int]:
    """Global emotion indices the model will predict, in output order."""
    return data.present_classes()


def fit(cfg: TrainConfig, resume: bool = False) -> list[dict[str, Any]]:
    """Train every fold the config asks for; returns one summary per fold."""
    if not cfg.data:
        raise ParameterError("data", "data is missing: the dataset path (or `data:` in the config)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    env = setup_distributed()
    data = load_dataset(cfg.dataset, cfg.data, **cfg.dataset_options)
    # A model that takes landmark-aligned faces (prior-attention) trains, selects and tests on them.
    data = for_model(data, Preprocess.from_config(model_config(cfg.model, **cfg.model_options)).align)
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


def train_fold(
    cfg: TrainConfig, data: FaceData, fold: Fold, out: Path, env: Dist, resume: bool, warnings: list[str]
) -> dict[str, Any]:
    """Train one fold into ``out`` (best.pt, last.pt, log.csv, config.json, summary.json); returns
    the summary (best epoch, its validation score, epochs run, test accuracy of best.pt)."""
    torch.manual_seed(cfg.seed)
    classes = dataset_classes(data)
    labels = [EMOTIONS[c] for c in classes]
    model = _build(cfg, len(classes), labels).to(env.device).to(memory_format=torch.channels_last)
    size = model.config.input_size
    x_train, y_train, teacher_seconds = _training_set(cfg, data, fold, labels, classes, size, out, env.device)
    x_val, y_val = _faces_and_labels(cfg, data, fold.val, classes, size, env.device)
    ddp = nn.parallel.DistributedDataParallel(model) if env.world > 1 else model
    step = TrainStep.build(cfg, model, len(classes), env.device, wrapped=ddp)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
    kept = ema.module if ema is not None else model  # what is validated, selected and saved
    per_rank = max(1, cfg.batch_size // env.world)
    steps_per_epoch = max(1, len(x_train) // env.world // per_rank)  # drop the ragged last batch (batch-norm)

    last_path, best_path = out / "last.pt", out / "best.pt"
    state = {"epoch": 0, "best_val": -1.0, "best_epoch": -1, "history": [], "bad_epochs": 0}
    if resume and last_path.is_file():
        state = load_training_state(last_path, model, step.optimizer)
        if ema is not None and "ema_state" in state:
            ema.load_state_dict(state["ema_state"])
        log.info("resumed %s at epoch %d", last_path, state["epoch"])
    elif resume:
        log.info("--resume: no checkpoint at %s, starting fresh", last_path)
    state.setdefault("teacher_seconds", teacher_seconds)
    tb = None
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        tb = _tensorboard(out)
    schedule: Schedule = (BudgetSchedule(cfg, 60.0 * cfg.minutes, state.get("budget_spent", 0.0)) if cfg.minutes
                          else EpochSchedule(cfg, steps_per_epoch))  # a budget's clock starts here

    while not _over(cfg, schedule, state, steps_per_epoch):
        epoch = state["epoch"]
        if cfg.patience and state["bad_epochs"] >= cfg.patience:
            log.info("early stop: no validation gain for %d epochs", cfg.patience)
            break
        t0 = time.time()
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(x_train), generator=g)[env.rank :: env.world].to(env.device)
        of = f"/{cfg.epochs}" if not cfg.minutes else f" ({cfg.minutes:g} min)"
        stats = train_epoch(step, x_train, y_train, order, per_rank, schedule, epoch * steps_per_epoch,
                            steps_per_epoch, desc=f"epoch {epoch + 1}{of}", show=env.main, ema=ema)
        seen = stats.pop("seen")
        row = {"epoch": epoch + 1, **stats, "images_per_s": seen * env.world / max(time.time() - t0, 1e-9)}
        if len(y_val):
            row.update(validate(kept, x_val, y_val, cfg.eval_batch_size))
        if env.device.type == "cuda":
            row["gpu_memory_gb"] = torch.cuda.max_memory_allocated(env.device) / 1e9
        row["seconds"] = time.time() - t0
        improved = _record(row, state)
        if cfg.minutes:
            state["budget_spent"] = schedule.elapsed()
        if env.main:
            info = _info(cfg, state, data, fold, warnings)
            if improved:
                Checkpoint.from_model(kept, labels, **info).save(best_path)
            if ema is not None:
                state["ema_state"] = ema.state_dict()
            save_training_state(last_path, model, labels, step.optimizer, state, info)
            _write_log(out / "log.csv", state["history"])
            _log_epoch(tb, row)
    if env.main and state["epoch"]:
        # The weights at the end of the schedule beside the best epoch's: a policy that trades clean
        # accuracy for robustness may be chosen on another validation (benchmarks/wild_validation.py).
        final = {**_info(cfg, state, data, fold, warnings), "val_accuracy": state["history"][-1].get("val_acc")}
        Checkpoint.from_model(kept, labels, **final).save(out / "final.pt")
    summary = {"out": str(out), "best_epoch": state["best_epoch"], "best_val": state["best_val"],
               "epochs_run": state["epoch"]}
    if env.main and best_path.is_file() and len(fold.test):
        x_test, y_test = _faces_and_labels(cfg, data, fold.test, classes, size, env.device)
        summary["test_acc"] = _test_accuracy(best_path, x_test, y_test, cfg.eval_batch_size, env.device)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def train_epoch(step: TrainStep, images: Tensor, targets: Tensor, order: Tensor, batch_size: int,
                schedule: Schedule, first_step: int, steps: int, desc: str = "", show: bool = True,
                ema: AveragedModel | None = None) -> dict[str, Any]:
    """One pass of optimisation steps over ``order``, in batches of ``batch_size``.

    Args:
        step: the recipe's step.
        images: uint8 faces (N, 1, H, W), on the step's device for speed.
        targets: class indices (N,) or distributions (N, K), on the same device.
        order: indices into ``images`` in the order to visit them (this rank's share).
        batch_size: faces per step (per rank).
        schedule: sets the learning rate before each step and may end the epoch (time budget).
        first_step: the global index of the epoch's first step.
        steps: steps in a full epoch (the ragged last batch is dropped).
        desc: the progress bar's label.
        show: whether this process may show a progress bar (the main rank).
        ema: a moving average of the weights, updated after each step (None: none kept).

    Returns:
        ``lr`` (the last step's), ``train_loss`` and ``train_acc`` (means over the faces seen) and
        ``seen``, the number of faces.
    """
    step.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=step.device)  # float64: the same sums as the
    correct = torch.zeros((), dtype=torch.int64, device=step.device)     # Python floats of before
    seen = 0
    bar = tqdm(range(steps), desc=desc, disable=None if show else True, leave=False)
    for b in bar:
        if b and schedule.finished(first_step + b):  # an epoch that starts takes at least one step
            break
        idx = order[b * batch_size : (b + 1) * batch_size]
        set_lr(step.optimizer, step.cfg.lr * schedule.factor(first_step + b))
        result = step(images[idx], targets[idx])
        if ema is not None:
            ema.update_parameters(getattr(step.model, "module", step.model))
        loss_sum += result.loss.double() * result.size
        correct += result.correct
        seen += result.size
        if not bar.disable and b % 20 == 0:  # reads the device: only for a bar someone watches
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}", acc=f"{int(correct) / seen:.3f}")
    return {"lr": step.optimizer.param_groups[0]["lr"], "train_loss": float(loss_sum) / max(seen, 1),
            "train_acc": int(correct) / max(seen, 1), "seen": seen}


def validate(model: nn.Module, images: np.ndarray | Tensor, labels: np.ndarray, batch_size: int = 512) -> dict[str, float]:
    """Validation pass: ``val_acc`` and ``val_loss`` (scikit-learn's log-loss: the mean negative log
    of the true class's probability, clipped at float32's eps, 1.2e-7) of ``model`` on uint8 faces
    (N, H, W) or (N, 1, H, W) with class indices ``labels`` (N,) into the model's outputs. The faces
    may be on the model's device (no copy then)."""
    probs = predict_proba(model, images, batch_size)
    return {"val_loss": float(log_loss(labels, probs, labels=np.arange(probs.shape[1]))),
            "val_acc": float((probs.argmax(1) == labels).mean())}


def save_training_state(path: Path, model: nn.Module, labels: list[str], optimizer: torch.optim.Optimizer,
                        state: dict[str, Any], info: dict[str, Any]) -> None:
    """Write ``last.pt``: the weights, the optimiser, torch's random generators and the loop's state
    (``state``), so that :func:`load_training_state` continues exactly where this left off."""
    loop = dict(state)
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout and kornia draw on the GPU there
        loop["cuda_rng"] = torch.cuda.get_rng_state()
    training = TrainingState(optimizer.state_dict(), torch.get_rng_state(), loop)
    Checkpoint.from_model(model, labels, training=training, **info).save(path)


def load_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote into ``model``, ``optimizer`` and torch's
    random generators; returns the loop's state (epoch, history, best score, ...).

    Raises:
        ModelError: ``path`` is not a checkpoint, or one without training state (a ``best.pt``).
    """
    last = Checkpoint.load(path)
    if last.training is None:
        raise ModelError(f"{path}: no training state to resume from")
    model.load_state_dict(last.state_dict)
    optimizer.load_state_dict(last.training.optimizer)
    torch.set_rng_state(last.training.rng)
    state = dict(last.training.loop)
    cuda_rng = state.pop("cuda_rng", None)
    if cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_rng)
    return state


def _training_set(cfg: TrainConfig, data: FaceData, fold: Fold, labels: list[str], classes: list[int], size: int,
                  out: Path, device: torch.device) -> tuple[Tensor, Tensor, float]:
    """The training faces (N, 1, H, W) uint8 and targets on ``device``, and the seconds the teachers
    took to label them (distillation; 0 otherwise)."""
    y = _targets(data, fold.train, classes, cfg.soft_labels, size, cfg.model)
    teacher_seconds = 0.0
    if cfg.distill:
        probs, teacher_seconds = cached_teacher_probs(cfg.teacher, data.images[fold.train], labels, out / "teacher.npz",
                                                      cfg.eval_batch_size)
        y = distill_targets(y, probs, cfg.distill, cfg.label_smoothing)
    x = torch.from_numpy(data.images[fold.train]).unsqueeze(1)  # (N, 1, H, W) uint8
    return x.to(device), y.to(device), teacher_seconds


def _faces_and_labels(cfg: TrainConfig, data: FaceData, index: np.ndarray, classes: list[int], size: int,
                      device: torch.device) -> tuple[Tensor, np.ndarray]:
    """A split's faces (N, H, W) uint8 on ``device`` and its class indices for validation/test."""
    y = _targets(data, index, classes, False, size, cfg.model).numpy()
    return torch.from_numpy(data.images[index]).to(device), y


def _test_accuracy(best_path: Path, faces: Tensor, labels: np.ndarray, batch_size: int, device: torch.device) -> float:
    """The selected checkpoint's accuracy on the test split, measured once, after training."""
    best = Checkpoint.load(best_path).build().to(device).to(memory_format=torch.channels_last)
    return validate(best, faces, labels, batch_size)["val_acc"]


def _over(cfg: TrainConfig, schedule: Schedule, state: dict[str, Any], steps_per_epoch: int) -> bool:
    """Whether training is over: the epochs are done, or the time budget was spent by the end of
    the last epoch (read from the state that last.pt holds, so a resumed run decides alike)."""
    if cfg.minutes:
        return state.get("budget_spent", 0.0) >= 60.0 * cfg.minutes
    return schedule.finished(state["epoch"] * steps_per_epoch)


def _record(row: dict[str, Any], state: dict[str, Any]) -> bool:
    """Add an epoch's row to the loop state; returns whether it is the best epoch so far."""
    score = row.get("val_acc", -row["train_loss"])
    sel_loss = row.get("val_loss", row["train_loss"])
    improved = improves(score, sel_loss, state)
    state["history"].append(row)
    state["epoch"] = row["epoch"]
    if improved:
        state.update(best_val=score, best_loss=sel_loss, best_epoch=row["epoch"], bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    return improved


def _log_epoch(tb: Any, row: dict[str, Any]) -> None:
    if tb is not None:
        for key, value in row.items():
            if key != "epoch":
                tb.add_scalar(key, value, row["epoch"])
        tb.flush()
    log.info("epoch %d: %s", row["epoch"], ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))


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
