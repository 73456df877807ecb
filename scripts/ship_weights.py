"""Copy a finished run's selected checkpoint(s) into the package as shipped weights, with a
model card written from the checkpoint's own metadata and a fresh evaluation.

    python scripts/ship_weights.py RUN_DIR NAME --config configs/X.yaml

RUN_DIR holds best.pt (or fold<i>/best.pt for k-fold protocols). The card records the training
data, protocol, the validation accuracy the epoch was selected on, the test accuracy measured
here, the command that trained it and the training time on this machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from deepfer.models.checkpoint import atomic_save, read_checkpoint
from deepfer.train.evaluate import evaluate

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "deepfer" / "weights"


def strip(src: Path, dst: Path) -> dict:
    """Save only what inference needs (no optimizer, no RNG), loadable with weights_only."""
    ckpt = read_checkpoint(src)
    keep = {k: ckpt[k] for k in ("format", "format_version", "model", "labels", "preprocess", "state_dict", "info")}
    atomic_save(keep, dst)
    return keep


def card(name: str, ckpt: dict, report: dict, config: str, folds: int) -> str:
    info = ckpt["info"]
    cfg = info["train_config"]
    params = sum(v.numel() for k, v in ckpt["state_dict"].items() if "running" not in k and "num_batches" not in k)
    acc = f"{100 * report['accuracy']:.2f}%"
    if folds > 1:
        acc += f" ± {100 * report['accuracy_std']:.2f} (mean ± std over {folds} folds)"
    init = f"initialised from `{cfg['init']}`" if cfg.get("init") else "trained from scratch"
    lines = [
        f"# {name}",
        "",
        f"- architecture: `{ckpt['model']['name']}` ({params:,} parameters), input {ckpt['preprocess']['size']}x"
        f"{ckpt['preprocess']['size']} grayscale, normalised (x/255 - {ckpt['model']['mean']}) / {ckpt['model']['std']}",
        f"- labels (output order): {', '.join(ckpt['labels'])}",
        f"- training data: `{cfg['dataset']}` from `{cfg['data']}`, protocol `{cfg['protocol']}`; {init}",
        f"- model selection: the epoch with the best validation accuracy ({100 * info['val_accuracy']:.2f}% at epoch "
        f"{info['best_epoch']}" + (", fold 0" if folds > 1 else "") + "); the test split was never used for selection",
        f"- test accuracy ({report['split']} split of `{report['protocol']}`, measured by `scripts/ship_weights.py`): {acc}",
        f"- weighted precision / recall: {100 * report['weighted_precision']:.2f}% / {100 * report['weighted_recall']:.2f}%; "
        f"unweighted: {100 * report['unweighted_precision']:.2f}% / {100 * report['unweighted_recall']:.2f}%",
        f"- trained with: `deepfer train --config {config}` ({cfg['epochs']} epochs planned; the selected epoch "
        f"{info['best_epoch']} was reached after {info['train_seconds'] / 60:.1f} min on this project's shared 2-core CPU"
        + (", fold 0" if folds > 1 else "") + ")",
        f"- torch {info.get('torch', '?')}",
    ]
    if report.get("warnings"):
        lines.append(f"- protocol warnings: {'; '.join(report['warnings'])}")
    lines += ["", "The weights inherit the terms of their training data (FER2013 / CK+ / JAFFE are for research use).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run")
    ap.add_argument("name")
    ap.add_argument("--config", required=True, help="the recipe that trained the run (recorded in the card)")
    args = ap.parse_args()
    run = Path(args.run)
    fold_ckpts = sorted(run.glob("fold*/best.pt"), key=lambda p: int(p.parent.name[4:]))
    if fold_ckpts:
        dst_dir = WEIGHTS / args.name
        if dst_dir.exists():
            shutil.rmtree(dst_dir)
        for p in fold_ckpts:
            (dst_dir / p.parent.name).mkdir(parents=True)
            strip(p, dst_dir / p.parent.name / "best.pt")
        target = dst_dir
    else:
        target = WEIGHTS / f"{args.name}.pt"
        strip(run / "best.pt", target)
    first = read_checkpoint(fold_ckpts[0] if fold_ckpts else target)
    cfg = first["info"]["train_config"]
    options = {**cfg.get("dataset_options", {})}
    report = evaluate([str(target)], cfg["dataset"], cfg["data"], cfg["protocol"], seed=cfg["seed"],
                      dataset_options=options)
    (WEIGHTS / f"{args.name}.md").write_text(card(args.name, first, report, args.config, len(fold_ckpts) or 1))
    print(json.dumps({k: report[k] for k in ("accuracy", "weighted_precision", "unweighted_recall") if k in report}))
    print(f"shipped {target}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
