"""Copy a finished run's selected checkpoint(s) into the package as shipped weights, with a
model card written from the checkpoint's own metadata and a fresh evaluation; or give the shipped
weights their fitted temperature.

    python scripts/ship_weights.py RUN_DIR NAME --config configs/X.yaml
    python scripts/ship_weights.py --recalibrate [NAME ...]      # every shipped file by default

RUN_DIR holds best.pt (or fold<i>/best.pt for k-fold protocols). The card records the training
data, protocol, the validation accuracy the epoch was selected on, the test accuracy measured
here, the command that trained it and the training time on this machine. A single checkpoint is
shipped calibrated: its temperature is fitted on the protocol's validation split
(``deepfer.train.calibrate``; ``--no-calibrate`` skips it) and the card states it with the test
split's expected calibration error before and after. ``--recalibrate`` does the same to weights
already shipped, in place: the tensors are unchanged (their digest is checked) and so is every
prediction (the test split's confusion matrix is compared before and after). The package's
``weights/SHA256SUMS`` is rewritten to list the new files' digests.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from deepfer.models.checkpoint import Checkpoint, tensor_digest
from deepfer.train.calibrate import calibrate
from deepfer.train.evaluate import evaluate
from deepfer.models.pretrained import _shipped, write_sums

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "deepfer" / "weights"
REPORTS = Path(__file__).resolve().parents[1] / "benchmarks" / "reports"
CURVES = Path(__file__).resolve().parents[1] / "benchmarks" / "curves"


def keep_logs(run: Path, name: str, fold_ckpts: list[Path]) -> None:
    """Copy the run's per-epoch log(s) to benchmarks/curves/NAME/ (the results table draws them)."""
    dst = CURVES / name
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for ckpt in fold_ckpts or [run / "best.pt"]:
        log = ckpt.parent / "log.csv"
        if log.is_file():
            shutil.copyfile(log, dst / (f"{ckpt.parent.name}.csv" if fold_ckpts else "log.csv"))


def card(name: str, ckpt: Checkpoint, report: dict, config: str, folds: int, final: bool = False) -> str:
    info = ckpt.info
    cfg = info["train_config"]
    params = sum(v.numel() for k, v in ckpt.state_dict.items() if "running" not in k and "num_batches" not in k)
    acc = f"{100 * report['accuracy']:.2f}%"
    if folds > 1:
        acc += f" ± {100 * report['accuracy_std']:.2f} (mean ± std over {folds} folds)"
    init = f"initialised from `{cfg['init']}`" if cfg.get("init") else "trained from scratch"
    if cfg.get("distill"):
        init += (f"; distilled from {', '.join(f'`{t}`' for t in cfg['teacher'])} (targets {cfg['distill']:g} "
                 "their averaged flip-TTA probabilities on the training faces, the rest the labels; "
                 + (f"the time below includes {info['teacher_seconds'] / 60:.1f} min labelling the faces"
                    if info.get("teacher_seconds") else "the time below does not include labelling the faces")
                 + ", nor training the teachers)")
    lines = [
        f"# {name}",
        "",
        f"- architecture: `{ckpt.config.name}` ({params:,} parameters), input {ckpt.preprocess.size}x"
        f"{ckpt.preprocess.size} grayscale, normalised (x/255 - {ckpt.config.mean}) / {ckpt.config.std}",
        f"- labels (output order): {', '.join(ckpt.labels)}",
        f"- training data: `{cfg['dataset']}` from `{cfg['data']}`, protocol `{cfg['protocol']}`; {init}",
        (f"- model selection: the weights at the end of the schedule (epoch {info['epoch']}, validation accuracy "
         f"{100 * info['val_accuracy']:.2f}%; the best clean-validation epoch was {info['best_epoch']}), chosen on "
         "validation faces under the `wild` conditions (`benchmarks/WILD_VALIDATION.md`); the test split was never "
         "used for selection" if final else
         f"- model selection: the epoch with the best validation accuracy ({100 * info['val_accuracy']:.2f}% at epoch "
         f"{info['best_epoch']}" + (", fold 0" if folds > 1 else "") + "); the test split was never used for selection"),
        f"- test accuracy ({report['split']} split of `{report['protocol']}`"
        + (", majority-vote labels" if cfg["dataset"] == "ferplus" else "")
        + f", measured by `scripts/ship_weights.py`): {acc}",
        f"- weighted precision / recall: {100 * report['weighted_precision']:.2f}% / {100 * report['weighted_recall']:.2f}%; "
        f"unweighted: {100 * report['unweighted_precision']:.2f}% / {100 * report['unweighted_recall']:.2f}%",
        f"- trained with: `deepfer train --config {config}` ({cfg['epochs']} epochs planned; the selected epoch "
        f"{info['epoch'] if final else info['best_epoch']} was reached after {info['train_seconds'] / 60:.1f} min on "
        "this project's shared 2-core CPU"
        + (", fold 0" if folds > 1 else "") + ")",
        f"- torch {info.get('torch', '?')}; weights stored as {info.get('stored_dtype', 'float32')}"
        + (" (loaded into the float32 model)" if info.get("stored_dtype") == "float16" else ""),
    ]
    if ckpt.calibration is not None:
        lines.insert(-1, calibration_line(ckpt, report))
    if report.get("warnings"):
        lines.append(f"- protocol warnings: {'; '.join(report['warnings'])}")
    lines += ["", "The weights inherit the terms of their training data (FER2013 / CK+ / JAFFE are for research use).", ""]
    return "\n".join(lines)


def calibration_line(ckpt: Checkpoint, report: dict) -> str:
    """The card's line on the checkpoint's temperature and the test split's calibration error."""
    if ckpt.temperature == 1.0:
        return (f"- calibration: none, scores are the plain softmax (temperature 1; validation split: "
                f"{ckpt.calibration.fitted_on}); expected calibration error (15 bins, top score) on the test split "
                f"{report['ece']:.4f}")
    return (f"- calibration: temperature {ckpt.temperature:.3f} (fitted on {ckpt.calibration.fitted_on}; minimum "
            f"negative log-likelihood, `deepfer calibrate`), applied to every score (`--uncalibrated` turns it "
            f"off); expected calibration error (15 bins, top score) on the test split {report['ece_uncalibrated']:.4f} "
            f"-> {report['ece']:.4f}; accuracy unchanged (a temperature never changes the top class)")


def eval_options(ckpt: Checkpoint) -> dict[str, Any]:
    """The reader options a checkpoint is evaluated (and calibrated) with: its training's, FER+ on
    majority-vote labels (what it is tested on, whatever it trained on)."""
    cfg = ckpt.info["train_config"]
    options = {**cfg.get("dataset_options", {})}
    if cfg["dataset"] == "ferplus":
        options["labels"] = "majority"
    return options


def fit_temperature_in_place(path: Path) -> dict[str, Any]:
    """Fit the temperature of the shipped checkpoint at ``path`` on its protocol's validation split,
    rewrite the file with it and SHA256SUMS with its new digest."""
    write_sums(WEIGHTS)  # a file just copied in is listed, so that it loads
    ckpt = Checkpoint.load(path)
    cfg = ckpt.info["train_config"]
    report = calibrate(path, cfg["dataset"], cfg["data"], cfg["protocol"], out=path, seed=cfg["seed"],
                       dataset_options=eval_options(ckpt))
    write_sums(WEIGHTS)
    return report


def recalibrate(names: list[str]) -> None:
    """Give shipped weights their fitted temperature in place, check that the tensors and the test
    predictions are unchanged, and update their cards and SHA256SUMS."""
    shipped = {n: p for n, p in _shipped().items() if p.is_file()}  # k-fold sets are not shipped one by one
    unknown = sorted(set(names) - set(shipped))
    if unknown:
        raise SystemExit(f"not shipped as single files: {', '.join(unknown)}; shipped: {', '.join(shipped)}")
    rows = []
    for name in names or list(shipped):
        path = shipped[name]
        old = Checkpoint.load(path)
        cfg = old.info["train_config"]
        args = (cfg["dataset"], cfg["data"], cfg["protocol"])
        before = evaluate([str(path)], *args, seed=cfg["seed"], dataset_options=eval_options(old),
                          compare_uncalibrated=False)
        fit = fit_temperature_in_place(path)
        new = Checkpoint.load(path)
        if tensor_digest(new.state_dict) != tensor_digest(old.state_dict):
            raise SystemExit(f"{path}: the weights changed while calibrating")
        after = evaluate([str(path)], *args, seed=cfg["seed"], dataset_options=eval_options(new))
        if after["confusion_matrix"] != before["confusion_matrix"]:
            raise SystemExit(f"{path}: the test predictions changed with the temperature")
        card = path.with_suffix(".md")
        if card.is_file():
            lines = [line for line in card.read_text().splitlines() if not line.startswith("- calibration:")]
            at = next((i for i, line in enumerate(lines) if line.startswith("- torch ")), len(lines))
            lines.insert(at, calibration_line(new, after))
            card.write_text("\n".join(lines) + "\n")
        rows.append({"name": name, "temperature": round(fit["temperature"], 4), "fitted_on": fit["fitted_on"],
                     "val_ece": [round(fit["before"]["ece"], 4), round(fit["after"]["ece"], 4)],
                     "test_accuracy": after["accuracy"], "test_ece": [round(after["ece_uncalibrated"], 4),
                                                                      round(after["ece"], 4)]})
        print(json.dumps(rows[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", nargs="?")
    ap.add_argument("name", nargs="?")
    ap.add_argument("--config", help="the recipe that trained the run (recorded in the card)")
    ap.add_argument("--no-calibrate", action="store_true", help="ship without fitting a temperature")
    ap.add_argument("--final", action="store_true", help="ship final.pt (the end of the schedule) rather than best.pt, "
                    "where another validation chose it (the card says so)")
    ap.add_argument("--recalibrate", nargs="*", metavar="NAME",
                    help="fit the temperature of shipped weights in place (no NAME: every shipped file)")
    ap.add_argument("--report-only", action="store_true",
                    help="evaluate the run where it is and write benchmarks/reports/NAME.json and .md instead of "
                         "copying weights into the package (k-fold sets of the 1M-parameter deepfer: 10 x 2 MB)")
    ap.add_argument("--float32", action="store_true", help="store float32 weights (default: float16, half the size)")
    args = ap.parse_args()
    if args.recalibrate is not None:
        recalibrate(args.recalibrate)
        return
    if not (args.run and args.name and args.config):
        ap.error("RUN, NAME and --config are needed to ship a run")
    run = Path(args.run)
    fold_ckpts = sorted(run.glob("fold*/best.pt"), key=lambda p: int(p.parent.name[4:]))
    if args.report_only:
        target = run
        first = Checkpoint.load(fold_ckpts[0] if fold_ckpts else run / "best.pt")
    elif fold_ckpts:
        dst_dir = WEIGHTS / args.name
        if dst_dir.exists():
            shutil.rmtree(dst_dir)
        for p in fold_ckpts:
            (dst_dir / p.parent.name).mkdir(parents=True)
            Checkpoint.load(p).for_inference(half=not args.float32).save(dst_dir / p.parent.name / "best.pt")
        target = dst_dir
        first = Checkpoint.load(fold_ckpts[0])
        write_sums(WEIGHTS)
    else:
        target = WEIGHTS / f"{args.name}.pt"
        Checkpoint.load(run / ("final.pt" if args.final else "best.pt")).for_inference(half=not args.float32).save(target)
        write_sums(WEIGHTS)
        if not args.no_calibrate:
            fit_temperature_in_place(target)
        first = Checkpoint.load(target)  # what is written
    cfg = first.info["train_config"]
    options = eval_options(first)
    report = evaluate([str(target)], cfg["dataset"], cfg["data"], cfg["protocol"], seed=cfg["seed"],
                      dataset_options=options)
    keep_logs(run, args.name, fold_ckpts)
    text = card(args.name, first, report, args.config, len(fold_ckpts) or 1, args.final)
    if args.report_only:
        REPORTS.mkdir(parents=True, exist_ok=True)
        text += (f"\nNot shipped in the package (size); evaluated in place from `{run}` by "
                 f"`python scripts/ship_weights.py {run} {args.name} --config {args.config} --report-only`.\n")
        (REPORTS / f"{args.name}.md").write_text(text)
        tta = evaluate([str(target)], cfg["dataset"], cfg["data"], cfg["protocol"], seed=cfg["seed"],
                       dataset_options=options, tta=True)
        (REPORTS / f"{args.name}.json").write_text(json.dumps({"name": args.name, "config": args.config,
                                                               "train_info": first.info, "report": report,
                                                               "report_tta": tta}, indent=1))
        print(f"wrote {REPORTS / args.name}.json")
    else:
        (WEIGHTS / f"{args.name}.md").write_text(text)
        print(f"shipped {target}")
    print(json.dumps({k: report[k] for k in ("accuracy", "weighted_precision", "unweighted_recall") if k in report}))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
