"""Evaluate the shipped weights and regenerate benchmarks/RESULTS.md: ours next to the papers'
numbers, each row naming its protocol, leaky (the papers') and honest protocols side by side, and
each model's calibration (expected calibration error before / after its fitted temperature, with
the default model's reliability diagram, reliability_<default>.png).

    python benchmarks/results.py [--data ../shared/data]

Rows whose weights are not shipped yet are listed as such, never filled in by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepfer.data import load_dataset, split
from deepfer.errors import DeepferError
from deepfer.labels import map_to_model
from deepfer.models.predict import predict_logits
from deepfer.train.calibrate import tempered_softmax
from deepfer.train.curves import plot_curves, read_log
from deepfer.train.evaluate import evaluate
from deepfer.train.metrics import ECE_BINS, ece_noise_floor, expected_calibration_error, plot_reliability
from deepfer.models.pretrained import DEFAULT, _shipped, load_pretrained

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling ablation module
from ablation import pct, verdict  # noqa: E402

HERE = Path(__file__).resolve().parent
REPORTS = HERE / "reports"
CURVES = HERE / "curves"  # per-epoch logs kept by scripts/ship_weights.py, drawn here


@dataclass(frozen=True)
class Row:
    weights: str  # shipped name, or names joined by "+" (an ensemble: probabilities averaged)
    dataset: str
    data: str  # relative to --data
    protocol: str
    paper: str  # the papers' figure for this setting, as text
    options: tuple[tuple[str, object], ...] = ()


ROWS = [
    Row("deep-emotion_fer2013", "fer2013", "fer2013/fer2013_images.tar.gz", "official", "Deep-Emotion 70.02"),
    Row("deep-emotion_fer2013-kd", "fer2013", "fer2013/fer2013_images.tar.gz", "official", "Deep-Emotion 70.02"),
    Row("deepfer_fer2013", "fer2013", "fer2013/fer2013_images.tar.gz", "official", "DeepFER 72.33"),
    Row("deepfer_fer2013-restart", "fer2013", "fer2013/fer2013_images.tar.gz", "official", "DeepFER 72.33"),
    Row("deepfer_fer2013-kd", "fer2013", "fer2013/fer2013_images.tar.gz", "official", "DeepFER 72.33"),
    Row("deepfer_fer2013-wild", "fer2013", "fer2013/fer2013_images.tar.gz", "official", "DeepFER 72.33"),
    Row("deepfer_fer2013+deep-emotion_fer2013", "fer2013", "fer2013/fer2013_images.tar.gz", "official",
        "study's ensemble target 74"),
    Row("deepfer_fer2013-balanced", "fer2013", "fer2013/fer2013_images.tar.gz", "balanced", "DeepFER 74.85"),
    Row("deepfer_ferplus", "ferplus", "ferplus", "official", "VGG13 (FER+ paper) ~84-85; study's ensemble 64.12",
        (("labels", "majority"),)),
    Row("deepfer_ferplus-kdinit", "ferplus", "ferplus", "official", "VGG13 (FER+ paper) ~84-85; study's ensemble 64.12",
        (("labels", "majority"),)),
    Row("deep-emotion_ckplus-random", "ckplus", "ckplus/CK+48", "random", "Deep-Emotion 98.0"),
    Row("deep-emotion_ckplus-10fold", "ckplus", "ckplus/CK+48", "subject-10fold", "(papers: random splits only)"),
    Row("deepfer_ckplus-random", "ckplus", "ckplus/CK+48", "random", "DeepFER 99.47"),
    Row("deepfer_ckplus-10fold", "ckplus", "ckplus/CK+48", "subject-10fold", "(papers: random splits only)"),
    Row("deep-emotion_jaffe-random", "jaffe", "jaffe/jaffe", "random", "Deep-Emotion 92.8"),
    Row("deep-emotion_jaffe-loso", "jaffe", "jaffe/jaffe", "loso", "(papers: random splits only)"),
    Row("deepfer_jaffe-random", "jaffe", "jaffe/jaffe", "random", "DeepFER 93.89 (augmented before splitting)"),
    Row("deepfer_jaffe-loso", "jaffe", "jaffe/jaffe", "loso", "(papers: random splits only)"),
]
# The issues' targets (accuracy %, without TTA), checked against the rows above.
TARGETS = {
    "deep-emotion_fer2013": 58.0,
    "deep-emotion_fer2013-kd": 58.0,
    "deepfer_fer2013": 70.0,
    "deepfer_fer2013-restart": 70.0,
    "deepfer_fer2013-kd": 70.0,
    "deepfer_fer2013-wild": 70.3,
    "deepfer_ferplus": 84.0,
    "deepfer_ferplus-kdinit": 84.0,
    "deepfer_ckplus-10fold": 95.0,
    "deepfer_jaffe-random": 92.8,
    "deepfer_fer2013+deep-emotion_fer2013": 74.0,
}
# What limits each missed target (shown under the targets table when it is missed).
LIMITS = {
    "deep-emotion_fer2013": "the paper's recipe from scratch; the 67k-parameter network under-fits (65.7% train accuracy "
    "in its last epoch, 57.5% on validation). The same network distilled from the DeepFER weights "
    "(`deep-emotion_fer2013-kd`) meets the target.",
    "deepfer_fer2013": "stage 1 of 3 (40 epochs); stage 3 (`deepfer_fer2013-kd`) meets the target.",
    "deepfer_fer2013-restart": "stage 2 of 3; stage 3 (`deepfer_fer2013-kd`) meets the target.",
    "deepfer_fer2013-wild": "the default, trained for photos and videos rather than FER2013's test split: 20 epochs "
    "from `deepfer_fer2013-kd` with the `wild` augmentation, and the end-of-schedule weights chosen on PublicTest under "
    "the wild conditions (`WILD_VALIDATION.md`: blur sigma 1.8 38.2% -> 58.1%, 16 px faces 41.2% -> 55.4%, a quarter "
    "of the light 59.7% -> 64.0%, against 67.9% -> 67.5% clean). The clean-face cost shows on PrivateTest: 0.9 points "
    "under `deepfer_fer2013-kd`.",
    "deepfer_jaffe-random": "Deep-Emotion's 120/23/70 split leaves 120 training and 23 validation faces: from epoch 15 on, "
    "training accuracy is 97-100% and validation 91.3% (21 of 23) or less, so validation cannot tell the epochs "
    "apart, and the 70 test faces give 77.1%. DeepFER's 93.89% augmented JAFFE seven-fold before its random split "
    "(augmented copies of test faces in training; REFERENCE-NOTES), which we do not do; the DeepFER authors could not "
    "get Deep-Emotion past 85.88% on JAFFE.",
    "deepfer_fer2013+deep-emotion_fer2013": "two models chosen by hand early on; the ensembles chosen on validation "
    "are in `ENSEMBLE.md` (FER2013: 70.58%, below the 74% target).",
}
FERG_NOTE = ("FERG-DB (papers: Deep-Emotion 99.3 random; DeepFER 100 random / 98.62 characters held out): "
             "no copy of the images could be obtained, so no row; the reader and both protocols are tested "
             "on a fixture in its exact layout.")


# The ensemble targets (test accuracy, %, of the ensemble chosen on validation).
ENSEMBLE_TARGETS = {"fer2013": 74.0, "ferplus": 87.0}
# What limits each missed ensemble target (shown under the targets when it is missed); filled
# from the ensemble's results (r: one dataset's entry of ENSEMBLE.json).
ENSEMBLE_LIMITS = {
    "fer2013": lambda r: (
        "every candidate is one architecture (DeepFER, about 1M parameters): this project's CPU runs (15 to 70 "
        "epochs, most warm-started from one another) and eight seeds of the 40-epoch grid-attention recipe "
        "trained on one H100 (`make members`). They err alike: on test the chosen ensemble is "
        f"{100 * r['test']['accuracy'] - 100 * r['best_single_on_val']['test']:+.2f} points from the single model "
        "best on validation. Published FER2013 results at 73-76% use VGG/ResNet-scale networks (10 to 20 "
        "times the parameters) trained for hundreds of GPU epochs."),
    "ferplus": lambda r: (
        f"the ensemble chosen on validation ({pct(r['val']['accuracy'])}% there) gives {pct(r['test']['accuracy'])}% "
        f"on test, {pct(r['test_tta']['accuracy'])}% with flip TTA; the best single model on validation, "
        f"`{r['best_single_on_val']['name']}`, gives {pct(r['best_single_on_val']['test'])}% "
        f"({pct(r['best_single_on_val']['test_tta'])}% with flip TTA, itself an average of two views of one "
        "model). Its partners are 15-epoch runs that add little it does not know."),
}


# The calibration target: expected calibration error (15 bins, top score) on the test split.
ECE_TARGETS = {DEFAULT: 0.02}


def ece_diagnostics(name: str, row: Row, data_root: str) -> dict[str, float]:
    """Why an ECE target can be missed: the validation split's ECE without and with the temperature
    (fitted there by NLL), and on ``name``'s test split the ECE a perfectly calibrated model with
    the same scores would show on this many faces (labels drawn from the scores) and the lowest ECE
    any single temperature reaches. Diagnostics only; the temperature was fitted on the validation
    split and nothing here changes it."""
    model, ckpt = load_pretrained(name)
    data = load_dataset(row.dataset, str(Path(data_root) / row.data), **dict(row.options))
    fold = split(data, row.protocol).folds[0]  # the seed the table's evaluate() uses
    val_y = map_to_model(data.labels[fold.val], ckpt.labels)
    val_logits = predict_logits(model, data.images[fold.val[val_y >= 0]])
    val = [expected_calibration_error(tempered_softmax(val_logits, t), val_y[val_y >= 0]) for t in (1.0, ckpt.temperature)]
    test = fold.test
    y = map_to_model(data.labels[test], ckpt.labels)
    logits = predict_logits(model, data.images[test[y >= 0]])
    y = y[y >= 0]
    floor = ece_noise_floor(tempered_softmax(logits, ckpt.temperature))
    grid = np.round(np.arange(0.70, 1.301, 0.005), 3)
    eces = [expected_calibration_error(tempered_softmax(logits, t), y) for t in grid]
    best = int(np.argmin(eces))
    return {"val_ece_before": val[0], "val_ece_after": val[1], "floor_mean": floor["mean"], "floor_p5": floor["p5"], "floor_p95": floor["p95"],
            "best_single_t": float(grid[best]), "best_single_ece": float(eces[best])}


def calibration_section(reports: dict[str, dict], data_root: str) -> list[str]:
    """The ECE table of every evaluated shipped model (before / after its temperature), the default
    model's reliability diagram and the calibration target."""
    rows = [(name, r) for name, r in reports.items() if "ece" in r and "+" not in name]
    if not rows:
        return []
    lines = ["## Calibration", "",
             "Each shipped model's temperature was fitted on its protocol's validation split (minimum negative "
             "log-likelihood; `deepfer calibrate`, `python scripts/ship_weights.py --recalibrate`) and is applied to "
             "every score `predict`, `serve`, `evaluate` and the ONNX export give (`--uncalibrated` turns it off). "
             f"Expected calibration error ({ECE_BINS} equal-width bins of the top score) and negative log-likelihood on "
             "the test split, without and with it; accuracy is unchanged (a temperature never changes the top class).",
             "", "| weights | data | temperature | fitted on | ECE before | ECE after | NLL before | NLL after |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    by_name = {r.weights: r for r in ROWS}
    fitted = {p.stem: _fitted_on(p) for p in _shipped().values() if p.is_file()}
    for name, r in rows:
        t = r["temperature"][0] if r.get("temperature") else 1.0
        lines.append(f"| `{name}` | {by_name[name].dataset} | {t:.3f} | {fitted.get(name) or '-'} | "
                     f"{r['ece_uncalibrated']:.4f} | {r['ece']:.4f} | {r['nll_uncalibrated']:.4f} | {r['nll']:.4f} |")
    lines.append("")
    if DEFAULT in reports and "reliability" in reports[DEFAULT]:
        r = reports[DEFAULT]
        png = HERE / f"reliability_{DEFAULT}.png"
        plot_reliability({"uncalibrated": {"bins": r["reliability"]["uncalibrated"], "ece": r["ece_uncalibrated"]},
                          f"temperature {r['temperature'][0]:.3f}": {"bins": r["reliability"]["calibrated"],
                                                                     "ece": r["ece"]}},
                         png, f"{DEFAULT}: {by_name[DEFAULT].dataset} {by_name[DEFAULT].protocol} test split")
        lines += [f"Reliability diagram of the default model on its test split: [{png.name}]({png.name}).", ""]
    targets = []
    for name, goal in ECE_TARGETS.items():
        if name not in reports or "ece" not in reports[name]:
            continue
        ece = reports[name]["ece"]
        d = ece_diagnostics(name, by_name[name], data_root)
        why = (f"the temperature fitted on validation moves the test ECE from {reports[name]['ece_uncalibrated']:.4f} "
               f"to {ece:.4f}; on the validation split it was fitted on, ECE goes from {d['val_ece_before']:.4f} to "
               f"{d['val_ece_after']:.4f}: the temperature of least NLL is not the one of least ECE. No single temperature reaches {goal:g} on this test split: the lowest ECE over "
               f"T = 0.70 ... 1.30 is {d['best_single_ece']:.4f} (at T = {d['best_single_t']:.3f}; a diagnostic on the "
               "test split, never used to choose T). And the target is within the metric's own noise: a perfectly "
               f"calibrated model with these scores would show an ECE of {d['floor_mean']:.4f} on these "
               f"{reports[name]['n']:,} faces (5-95%: {d['floor_p5']:.4f}-{d['floor_p95']:.4f}; labels drawn from the "
               "scores themselves, `deepfer.train.metrics.ece_noise_floor`).")
        targets.append((f"`{name}`: expected calibration error on the test split <= {goal:g}", f"{ece:.4f}",
                        ece <= goal, why))
    if targets:
        lines += targets_lines("Issue 18's calibration target", targets)
    return lines


def _fitted_on(path: Path) -> str:
    from deepfer.models.checkpoint import Checkpoint

    ckpt = Checkpoint.load(path)
    return ckpt.calibration.fitted_on if ckpt.calibration is not None else ""


def targets_lines(title: str, targets: list[tuple[str, str, bool, str]]) -> list[str]:
    """A "### title" table of (target, ours, met, why) rows, what limits the missed ones, a blank line."""
    lines = [f"### {title}", "", "| target | ours | met |", "| --- | --- | --- |"]
    lines += [f"| {what} | {ours} | {'yes' if ok else 'no'} |" for what, ours, ok, _ in targets]
    return lines + limits_lines([(what, why) for what, _, ok, why in targets if not ok]) + [""]


def limits_lines(missed: list[tuple[str, str]]) -> list[str]:
    """The "What limits the missed ones" list under a targets table (nothing when none is missed)."""
    if not missed:
        return []
    return ["", "What limits the missed ones:", ""] + [f"- {what}: {why or 'not analysed yet.'}" for what, why in missed]


def ablation_section() -> list[str]:
    """The ablation and ensemble tables, copied from ABLATION.md and ENSEMBLE.json (written by their own, slower
    scripts), and its targets: the best variant chosen on validation against the base model, and
    the ensembles chosen on validation against the accuracy targets."""
    ablation, ensemble = HERE / "ABLATION.md", HERE / "ENSEMBLE.json"
    lines = ["## Ablation and ensembles", ""]
    if not ablation.is_file() and not ensemble.is_file():
        return lines + ["Not measured yet: `make ablation` and `python benchmarks/ensemble.py` write them.", ""]
    lines += ["Copied from `ABLATION.md` (`make ablation`; every variant changes one thing against its dataset's "
              "base recipe, same 15-epoch budget) and `ENSEMBLE.md` (`python benchmarks/ensemble.py`) when this "
              "file was generated; those files have the details (training speed, each ensemble's candidates).", ""]
    targets = []
    if ablation.is_file():
        section = ""
        for line in ablation.read_text().splitlines():
            if line.startswith("## "):
                section = line
                line = "#" + line  # one level down, under this section
            if not section or section.startswith("## Training speed"):
                continue
            lines.append(line)
        rows = json.loads(ablation.with_suffix(".json").read_text())["rows"]
        if (v := verdict([r for r in rows if r["dataset"] == "fer2013"])) is not None:
            noise = {True: " (a gap within the seeds' spread: not a reliable difference)",
                     None: " (one seed)"}.get(v.get("within_noise"), "")
            targets.append(("the best variant (chosen on validation) beats the base on FER2013 PrivateTest",
                            f"{v['variant']}: {pct(v['test'], v.get('test_std'))} vs base "
                            f"{pct(v['base_test'], v.get('base_test_std'))}{noise}", v["beats"],
                            "short runs (15 epochs): see the table for each variant."))
    if ensemble.is_file():
        results = json.loads(ensemble.read_text())["results"]
        lines += ["### Ensembles chosen on validation (greedy forward selection)", "",
                  "| data | members × weight | val acc | test acc | + flip TTA | weighted P / R | unweighted P / R | "
                  "latency per face | best single on val: test acc, latency |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in results:
            members = ", ".join(f"`{n}` × {w:.2f}" for n, w in r["weights"].items())
            t, b = r["test"], r["best_single_on_val"]
            lines.append(f"| {r['dataset']} | {members} | {pct(r['val']['accuracy'])} | {pct(t['accuracy'])} | "
                         f"{pct(r['test_tta']['accuracy'])} | {pct(t['weighted_precision'])} / {pct(t['weighted_recall'])} | "
                         f"{pct(t['unweighted_precision'])} / {pct(t['unweighted_recall'])} | "
                         f"{r['ensemble_latency_ms']:.1f} ms | `{b['name']}`: {pct(b['test'])}, {r['single_latency_ms']:.1f} ms |")
            goal = ENSEMBLE_TARGETS.get(r["dataset"])
            if goal is not None:
                ours = 100 * t["accuracy"]
                targets.append((f"ensemble >= {goal:g} on {r['dataset']} (test split)", f"{ours:.2f}", ours >= goal,
                                ENSEMBLE_LIMITS[r["dataset"]](r) if r["dataset"] in ENSEMBLE_LIMITS else ""))
        lines.append("")
    if targets:
        lines += targets_lines("Issue 6's targets", targets)
    return lines


def prior_attention_section() -> list[str]:
    """Prior attention against the base (copied from ABLATION.json and PRIOR_ATTENTION.md,
    written by their own, slower scripts) and its targets."""
    ablation, prior = HERE / "ABLATION.json", HERE / "PRIOR_ATTENTION.md"
    lines = ["## Prior attention", ""]
    rows = {r["variant"]: r for r in json.loads(ablation.read_text())["rows"]} if ablation.is_file() else {}
    measured = json.loads(prior.with_suffix(".json").read_text())["results"] if prior.is_file() else {}
    if prior.is_file():
        lines += ["Copied from `PRIOR_ATTENTION.md` (`python benchmarks/prior_attention.py`: per-class recall, "
                  "branch knock-out, training curves, CK+):", ""]
        lines += ["#" + line if line.startswith("## ") else line for line in prior.read_text().splitlines()[3:]]
    else:
        lines += ["Not measured yet: `make ablation`, then `python benchmarks/prior_attention.py`.", ""]
    targets = []
    base, pa = rows.get("fer2013_base"), rows.get("fer2013_prior-attention")
    if base and pa and pa.get("accuracy") is not None:
        gap = 100 * (pa["accuracy"] - base["accuracy"])
        targets.append(("prior attention with the face branch >= the base `deepfer` at the ablation budget "
                        "(FER2013 PrivateTest, 15 epochs, mean of the seeds)",
                        f"{pct(pa['accuracy'], pa.get('accuracy_std'))} vs {pct(base['accuracy'], base.get('accuracy_std'))} "
                        f"({gap:+.2f})", gap >= 0,
                        "see the per-class recall and knock-out tables above; the base trained on a GPU in float32, "
                        "prior attention on this CPU."))
    full = measured.get("recipes", {}).get("prior-attention_fer2013")
    targets.append(("prior attention >= 70% at the full budget (the deepfer_fer2013 recipe, 40 epochs)",
                    pct(full["accuracy"][0]) if full else "not trained",
                    bool(full) and full["accuracy"][0] >= 0.70,
                    "" if full else "40 epochs of a 2.19M-parameter, 1.7x-deepfer model take ~2.5 h on the 2-core "
                    "CPU (~130 images/s); `deepfer train --config configs/prior-attention_fer2013.yaml --resume` "
                    "(minutes on a GPU)."))
    ck = measured.get("ckplus")
    targets.append(("prior attention >= 95% on CK+ subject-10fold",
                     pct(ck["accuracy"], ck["accuracy_std"]) if ck else "not trained",
                     bool(ck) and ck["accuracy"] >= 0.95,
                     "it starts from the 15-epoch FER2013 ablation run (64.70% there), where `deepfer`'s CK+ "
                     "recipe (96.00%) starts from its FER+ weights (86.20%); its weakest classes are contempt "
                     "(a class the FER2013 start never saw), angry and sad (table above), and the ten folds spread "
                     "from 90.6 to 100%." if ck else
                     "`deepfer train --config configs/prior-attention_ckplus-10fold.yaml` after the "
                     "FER2013 ablation run it starts from."))
    return lines + [""] + targets_lines("Issue 19's targets", targets)


def draw_curves(names: list[str]) -> list[str]:
    """Draw benchmarks/curves/NAME.png for each name with kept logs; the names drawn."""
    drawn = []
    for name in names:
        logs = sorted((CURVES / name).glob("*.csv"), key=lambda p: (len(p.stem), p.stem))
        if logs:
            plot_curves({p.stem: read_log(p) for p in logs}, CURVES / f"{name}.png", name)
            drawn.append(name)
    return drawn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    shipped = _shipped()
    lines = [
        "# Results",
        "",
        "Generated by `make results` (`python benchmarks/results.py`) from the weights shipped in",
        "`src/deepfer/weights/`; do not edit by hand. Accuracy in %, on the protocol's test split; the",
        "model (epoch) was always selected on the validation split. k-fold rows: mean ± std over folds.",
        "'leaky' = the same person (or near-identical frames) can be in train and test, as in the papers.",
        "",
        "| weights | data | protocol | subject-independent | accuracy | + hflip TTA | weighted P / R | unweighted P / R | paper |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    reports = {}
    for row in ROWS:
        head = f"| `{row.weights}` | {row.dataset} | `{row.protocol}` |"
        saved = REPORTS / f"{row.weights}.json"
        mark = ""
        members = row.weights.split("+")  # "A+B": an ensemble, probabilities averaged
        if all(m in shipped for m in members):
            data = str(Path(args.data) / row.data)
            paths = [str(shipped[m]) for m in members]
            try:
                rep = evaluate(paths, row.dataset, data, row.protocol, dataset_options=dict(row.options))
                tta = evaluate(paths, row.dataset, data, row.protocol, tta=True, dataset_options=dict(row.options),
                               compare_uncalibrated=False)
            except DeepferError as exc:
                lines.append(f"{head} | not evaluated: {exc} | | | | {row.paper} |")
                continue
        elif saved.is_file():  # k-fold sets too big to ship: evaluated in place by ship_weights.py --report-only
            loaded = json.loads(saved.read_text())
            rep, tta, mark = loaded["report"], loaded["report_tta"], " †"
            head = f"| `{row.weights}`{mark} | {row.dataset} | `{row.protocol}` |"
        else:
            lines.append(f"{head} | not trained yet | | | | {row.paper} |")
            continue
        reports[row.weights] = rep
        acc = pct(rep["accuracy"]) + (f" ± {pct(rep['accuracy_std'])}" if "accuracy_std" in rep else "")
        honest = "yes" if rep["subject_independent"] else "no (leaky)"
        lines.append(
            f"{head} {honest} | {acc} | {pct(tta['accuracy'])} | {pct(rep['weighted_precision'])} / "
            f"{pct(rep['weighted_recall'])} | {pct(rep['unweighted_precision'])} / {pct(rep['unweighted_recall'])} | {row.paper} |"
        )
    if any(r.weights not in shipped and (REPORTS / f"{r.weights}.json").is_file() for r in ROWS):
        lines += ["", "† not shipped in the package (k-fold sets are ten models; ten DeepFER models are 20 MB): the row is the "
                  "evaluation report that `scripts/ship_weights.py RUN NAME --config C --report-only` wrote when "
                  "the run finished, kept in `benchmarks/reports/NAME.json` with its model card."]
    met = [(name, goal, 100 * reports[name]["accuracy"]) for name, goal in TARGETS.items() if name in reports]
    if met:
        lines += ["", "## Targets", "", "| weights | target | ours | met |", "| --- | --- | --- | --- |"]
        lines += [f"| `{name}` | >= {goal:g} | {ours:.2f} | {'yes' if ours >= goal else 'no'} |" for name, goal, ours in met]
        lines += limits_lines([(f"`{name}`", LIMITS.get(name, "")) for name, goal, ours in met if ours < goal])
    curves = draw_curves([r.weights for r in ROWS if r.weights in reports])
    if curves:
        lines += ["", "## Training curves", "",
                  "Train (augmented) and validation accuracy per epoch, from each run's `log.csv` (kept in "
                  "`benchmarks/curves/NAME/` when the weights were shipped); the dot is the epoch selected on "
                  "validation.", ""]
        lines += [f"- `{name}`: [curves/{name}.png](curves/{name}.png)" for name in curves]
    lines += ["", FERG_NOTE, ""]
    lines += calibration_section(reports, args.data)
    lines += ablation_section()
    lines += prior_attention_section()
    warnings = {name: r["warnings"] for name, r in reports.items() if r["warnings"]}
    if warnings:
        lines += ["## What the protocols admit to (measured on each split)", ""]
        lines += [f"- `{name}`: {'; '.join(w)}" for name, w in warnings.items()]
        lines.append("")
    Path(args.out).write_text("\n".join(lines))
    (Path(args.out).with_suffix(".json")).write_text(json.dumps(reports, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
