"""The ``deepfer`` command: parse options into a frozen dataclass, call the library, print.

Every :class:`~deepfer.errors.DeepferError` ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from deepfer.errors import DeepferError, one_line
from deepfer.serve.settings import MIB, ServeSettings
from deepfer.version import __version__


@dataclass(frozen=True)
class DataInfoOptions:
    dataset: str
    path: str
    protocol: str | None = None
    size: int = 48
    labels: str = "majority"
    fer2013_csv: str | None = None
    crop: str = "face"
    seed: int = 0
    json: bool = False
    no_cache: bool = False


def data_info(opts: DataInfoOptions) -> int:
    from deepfer.data import describe, load_dataset, split
    from deepfer.data.summary import format_summary

    extra = {}
    if opts.dataset == "ferplus":
        extra = {"labels": opts.labels, "fer2013_csv": opts.fer2013_csv}
    elif opts.dataset == "jaffe":
        extra = {"crop": opts.crop}
    data = load_dataset(opts.dataset, opts.path, size=opts.size, use_cache=not opts.no_cache, **extra)
    info = describe(data, split(data, opts.protocol, opts.seed) if opts.protocol else None)
    if opts.json:
        print(json.dumps(info))
    else:
        print(format_summary(info))
    return 0


@dataclass(frozen=True)
class TrainOptions:
    config: str | None = None
    model: str | None = None
    dataset: str | None = None
    data: str | None = None
    protocol: str | None = None
    fold: int | None = None
    epochs: int | None = None
    minutes: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    augment: str | None = None
    init: str | None = None
    teacher: tuple[str, ...] | None = None
    distill: float | None = None
    seed: int | None = None
    threads: int | None = None
    precision: str | None = None
    out: str | None = None
    resume: bool = False


def train(opts: TrainOptions) -> int:
    from deepfer.train.config import load_config
    from deepfer.train.loop import fit

    overrides = {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts) if f.name not in ("config", "resume")}
    if opts.teacher is not None:
        overrides["teacher"] = list(opts.teacher)
    cfg = load_config(opts.config, **overrides)
    for summary in fit(cfg, resume=opts.resume):
        print(json.dumps(summary))
    return 0


@dataclass(frozen=True)
class EvaluateOptions:
    weights: tuple[str, ...]
    dataset: str
    data: str
    protocol: str
    split: str = "test"
    tta: bool = False
    seed: int = 0
    size: int = 48
    labels: str = "majority"
    out: str | None = None
    json: bool = False


def evaluate(opts: EvaluateOptions) -> int:
    from deepfer.train.evaluate import evaluate as run
    from deepfer.train.metrics import format_report

    extra: dict = {"size": opts.size}
    if opts.dataset == "ferplus":
        extra["labels"] = opts.labels
    report = run(list(opts.weights), opts.dataset, opts.data, opts.protocol, opts.split, opts.tta,
                 opts.seed, opts.out, extra)
    if opts.json:
        print(json.dumps(report))
        return 0
    print(format_report(report))
    if opts.out:
        print(f"wrote {opts.out}/report.json and {opts.out}/confusion.png")
    return 0


@dataclass(frozen=True)
class CalibrateOptions:
    weights: str
    dataset: str
    data: str
    protocol: str
    out: str
    seed: int = 0
    size: int = 48
    labels: str = "majority"
    json: bool = False


def calibrate(opts: CalibrateOptions) -> int:
    from deepfer.train.calibrate import calibrate as run

    extra: dict = {"size": opts.size}
    if opts.dataset == "ferplus":
        extra["labels"] = opts.labels
    report = run(opts.weights, opts.dataset, opts.data, opts.protocol, opts.out, opts.seed, extra)
    if opts.json:
        print(json.dumps(report))
        return 0
    before, after = report["before"], report["after"]
    print(f"temperature {report['temperature']:.4f}, fitted on {report['fitted_on']} (minimum NLL)")
    print(f"on that split: NLL {before['nll']:.4f} -> {after['nll']:.4f}, expected calibration error (15 bins) "
          f"{before['ece']:.4f} -> {after['ece']:.4f}, accuracy {after['accuracy']:.4f} (unchanged)")
    print(f"wrote {report['out']}")
    return 0


@dataclass(frozen=True)
class ModelsOptions:
    json: bool = False


def models(opts: ModelsOptions) -> int:
    from deepfer.models import list_models
    from deepfer.weights import ENSEMBLES, list_pretrained

    shipped = list_pretrained()
    if opts.json:
        print(json.dumps({"architectures": list_models(), "weights": [
            {"name": w.name, "architecture": w.architecture, "labels": w.labels,
             "dataset": w.info.get("dataset"), "protocol": w.info.get("protocol"),
             "val_accuracy": w.info.get("val_accuracy"), "temperature": w.temperature,
             "card": str(w.card) if w.card else None}
            for w in shipped], "ensembles": ENSEMBLES}))
        return 0
    print("architectures: " + ", ".join(list_models()))
    print("shipped weights:" if shipped else "shipped weights: none")
    for w in shipped:
        print(f"  {w.name:<28} {w.architecture:<14} {w.info.get('dataset', '?')}/{w.info.get('protocol', '?')}"
              f"  val acc {w.info.get('val_accuracy', float('nan')):.4f}  classes {len(w.labels)}"
              f"  temperature {w.temperature:.3g}")
    for name, members in ENSEMBLES.items():
        counts = ", ".join(f"{m} x{n}" if n > 1 else m for m, n in Counter(members).items())
        print(f"  {name:<28} ensemble       {counts}")
    return 0


# The detectors the command line offers (deepfer.vision.detect.DETECTORS, spelled out so that the
# parser is built without importing OpenCV).
DETECTOR_CHOICES = ["auto", "yunet", "haar", "dlib"]


class UsageError(DeepferError):
    """Bad command-line options (printed as one line, like every other error)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # main() prints the one "deepfer: error:" prefix; the subcommand is named in the hint.
        raise UsageError(f"{message} (see {self.prog} --help)")


@dataclass(frozen=True)
class PredictOptions:
    paths: tuple[str, ...] = ()
    webcam: int | None = None
    model: tuple[str, ...] | None = None  # several: an ensemble (probabilities averaged)
    backend: str | None = None
    detector: str = "auto"
    detect_width: int | None = None
    detect_step: float = 1.1
    min_face: int = 0
    min_score: float = 0.0
    small_faces: bool = False
    no_detect: bool = False
    every: int = 1
    max_frames: int | None = None
    format: str = "table"
    annotate: str | None = None
    batch_size: int = 256
    threads: int | None = None
    tta: bool = False
    uncalibrated: bool = False
    no_progress: bool = False
    detect_every: int | None = None  # videos, webcams; None: deepfer.inference.tracking.DETECT_EVERY
    smooth: float | None = None  # seconds; None: deepfer.inference.tracking.SMOOTHING
    timeline: str | None = None
    summary: bool = False


def predict(opts: PredictOptions) -> int:
    """Exit 0 if at least one input could be read, 1 if none could (2 for usage errors)."""
    import os

    # Before torch loads OpenMP: threads that spin while they wait make small batches 10-50x slower
    # on a machine whose cores are busy (measured: 84 ms instead of 2 ms for one face).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from deepfer.inference import Recognizer
    from deepfer.inference.annotate import Annotator
    from deepfer.inference.formats import make_writer
    from deepfer.inference.inputs import expand, webcam
    from deepfer.inference.timeline import TimelineWriter, TrackSummary, write_summary
    from deepfer.inference.tracking import DETECT_EVERY, SMOOTHING

    if bool(opts.paths) == (opts.webcam is not None):
        raise DeepferError("give image/video PATHs or --webcam N (not both)")
    if opts.smooth is not None and not 0 <= opts.smooth < float("inf"):
        raise DeepferError(f"--smooth must be a number of seconds >= 0, got {opts.smooth}")
    if opts.every < 1 or opts.batch_size < 1 or (opts.detect_width or 0) < 0 or (opts.threads or 1) < 1:
        raise DeepferError("--every, --batch-size and --threads must be >= 1, --detect-width >= 0")
    detector, detector_options = _detector(opts.detector, opts.detect_width, opts.detect_step, opts.small_faces)
    sources = [webcam(opts.webcam)] if opts.webcam is not None else expand(opts.paths)
    model = opts.model[0] if opts.model and len(opts.model) == 1 else opts.model
    rec = Recognizer(model, None if opts.no_detect else detector, opts.backend, opts.batch_size,
                     opts.tta, threads=opts.threads,
                     detector_options=None if opts.no_detect else detector_options,
                     min_face=opts.min_face, min_score=opts.min_score, calibrated=not opts.uncalibrated)
    annotator = Annotator(opts.annotate, sources, opts.every) if opts.annotate else None
    timeline = TimelineWriter(opts.timeline, rec.labels) if opts.timeline else None
    # --summary prints one record per track instead of one per frame.
    writer = None if opts.summary else make_writer(opts.format, sys.stdout, rec.labels,
                                                   max(len(s.name) for s in sources))
    summaries: dict[str, TrackSummary] = {}
    read = 0
    try:
        for result in rec.iter_results(sources, opts.every, opts.max_frames,
                                       keep_pictures=annotator is not None or timeline is not None,
                                       progress=not opts.no_progress,
                                       detect_every=DETECT_EVERY if opts.detect_every is None else opts.detect_every,
                                       smoothing=SMOOTHING if opts.smooth is None else opts.smooth):
            if writer is not None:
                writer.write(result)
            read += result.decoded
            if annotator is not None:
                annotator.write(result)
            if timeline is not None:
                timeline.write(result)
            if opts.summary and result.time is not None:
                summary = summaries.setdefault(result.path or "", TrackSummary(rec.labels, result.path))
                for face in result.faces:
                    summary.add(face, result.time)
    except BrokenPipeError:  # `deepfer predict ... | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:  # also on Ctrl+C: what was read so far is written out; one failed output stops no other
        failed: list[BaseException] = []
        for output in (writer, annotator, timeline):
            try:
                if output is not None:
                    output.close()
            except (DeepferError, OSError) as exc:
                failed.append(exc)
        for path in timeline.written if timeline is not None else []:
            print(f"wrote {path}", file=sys.stderr)
        if opts.summary:
            write_summary([r for s in summaries.values() for r in s.records()], opts.format, sys.stdout, rec.labels)
        if failed:
            raise failed[0]
    if not read:
        print("deepfer: error: none of the inputs could be read", file=sys.stderr)
        return 1
    return 0


def _detector(name: str, detect_width: int | None, detect_step: float,
              small_faces: bool) -> tuple[str, dict[str, object]]:
    """The detector predict's flags name (``auto`` resolved) and the options of those flags that it
    takes (Haar alone has a step, YuNet alone a full search)."""
    from deepfer.vision import accepted_options, default_detector

    if not 1.0 < detect_step <= 2.0:
        raise DeepferError(f"--detect-step must be in (1, 2], got {detect_step}")
    options: dict[str, object] = {"scale_factor": detect_step, "full_search": small_faces}
    if detect_width is not None:
        options["work_width"] = detect_width or None
    name = default_detector() if name == "auto" else name
    return name, accepted_options(name, options)


@dataclass(frozen=True)
class ExportOptions:
    out: str
    model: str | None = None
    format: str = "onnx"
    opset: int = 20
    uncalibrated: bool = False


def export(opts: ExportOptions) -> int:
    from deepfer.inference.export import export_onnx

    info = export_onnx(opts.model, opts.out, opts.opset, calibrated=not opts.uncalibrated)
    print(f"wrote {info['path']} (opset {info['opset']}, classes {', '.join(info['labels'])}, temperature "
          f"{info['temperature']:.4g}; max |torch - onnxruntime| on 64 random faces: {info['max_abs_diff']:.2e})")
    return 0


@dataclass(frozen=True)
class ExplainOptions:
    out: str
    paths: tuple[str, ...] = ()
    method: tuple[str, ...] = ("occlusion",)
    model: str | None = None
    detector: str = "auto"
    no_detect: bool = False
    target: str | None = None
    patch: int | None = None
    stride: int | None = None
    fill: str = "mean"
    dataset: str | None = None
    data: str | None = None
    protocol: str | None = None
    split: str = "test"
    fold: int | None = None
    seed: int = 0
    per_emotion: bool = False
    max_per_class: int = 200
    labels: str = "majority"


def explain(opts: ExplainOptions) -> int:
    """Exit 0 if at least one figure was written, 1 if none could be (2 for usage errors)."""
    from deepfer.explain import explain_faces, per_emotion_report

    try:
        fill: str | float = "mean" if opts.fill == "mean" else float(opts.fill)
    except ValueError:
        raise DeepferError(f"--fill must be 'mean' or a grey level 0..255, got {opts.fill!r}") from None
    method_options = {"patch": opts.patch, "stride": opts.stride, "fill": fill}
    if opts.dataset or opts.per_emotion:
        if opts.paths:
            raise DeepferError("give IMAGE paths or --dataset ... --per-emotion, not both")
        if not (opts.dataset and opts.data and opts.protocol and opts.per_emotion):
            raise DeepferError("per-emotion maps need --dataset, --data, --protocol and --per-emotion")
        if len(opts.method) != 1:
            raise DeepferError("--per-emotion draws one method at a time: give one --method")
        extra = {"labels": opts.labels} if opts.dataset == "ferplus" else {}
        summary = per_emotion_report(opts.dataset, opts.data, opts.protocol, opts.out, opts.model, opts.method[0],
                                     opts.split, opts.fold, opts.max_per_class, opts.seed, extra, **method_options)
        for name, c in summary["classes"].items():
            print(f"  {name:<9} faces {c['faces']:>5}  correct {c['correct']:>5}  averaged {c['averaged']:>4}")
        for w in summary["warnings"]:
            print(f"warning: {w}")
        print(f"wrote {summary['png']} and {summary['npz']}")
        return 0
    if not opts.paths:
        raise DeepferError("give IMAGE paths, or --dataset D --data PATH --protocol P --per-emotion")
    reports = explain_faces(list(opts.paths), opts.model, opts.method, None if opts.no_detect else opts.detector,
                            opts.out, opts.target, **method_options)
    written = 0
    for report in reports:
        if report.error:
            print(f"deepfer: error: {' '.join(report.error.split())}", file=sys.stderr)
        for face in report.faces:
            print(f"{face.png}  {face.label} {face.score:.2f}")
            written += 1
    if not written:
        print("deepfer: error: no face could be explained", file=sys.stderr)
        return 1
    return 0


def serve_settings(args: argparse.Namespace) -> ServeSettings:
    """``deepfer serve``'s options are the server's own frozen settings (sizes in MiB on the command line)."""
    return ServeSettings(host=args.host, port=args.port, model=args.model, backend=args.backend,
                         detector=args.detector, detect_width=args.detect_width, detect_step=args.detect_step,
                         min_face=args.min_face, min_score=args.min_score,
                         workers=args.workers, max_upload_bytes=int(args.max_upload_mb * MIB),
                         request_timeout=args.timeout)


def serve(settings: ServeSettings) -> int:
    """Run the REST server and web page until Ctrl+C (``pip install 'deepfer[serve]'``)."""
    import importlib.util
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as in predict
    missing = [m for m in ("fastapi", "uvicorn", "python_multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise DeepferError(f"deepfer serve needs {', '.join(missing)}: pip install 'deepfer[serve]'")
    from deepfer.serve import run

    run(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deepfer", description="Facial expression recognition.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--version", action="version", version=f"deepfer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect datasets").add_subparsers(dest="data_command", required=True)
    info = data.add_parser("info", help="counts per split and class, subjects, duplicates")
    info.add_argument("dataset", help="fer2013, ferplus, ckplus, jaffe or ferg")
    info.add_argument("path", help="dataset file, folder, .zip or .tar.gz")
    info.add_argument("--protocol", help="named split, e.g. official, subject-10fold, loso")
    info.add_argument("--size", type=_positive, default=48, help="image side after resizing")
    info.add_argument("--labels", choices=["majority", "soft"], default="majority", help="FER+ label mode")
    info.add_argument("--fer2013-csv", help="FER+: take pixels from this fer2013.csv")
    info.add_argument("--crop", choices=["face", "none"], default="face",
                      help="JAFFE: crop the face as predict does (default) or keep the whole frame")
    info.add_argument("--seed", type=int, default=0)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--no-cache", action="store_true", help="decode again, ignoring the cache")
    info.set_defaults(run=lambda a: data_info(_options(DataInfoOptions, a)))

    tr = sub.add_parser("train", help="train a model on a dataset under a protocol")
    tr.add_argument("--config", help="recipe file (YAML/JSON) from configs/; options below override it")
    tr.add_argument("--model", help="architecture name (deepfer models)")
    tr.add_argument("--dataset", help="fer2013, ferplus, ckplus, jaffe or ferg")
    tr.add_argument("--data", help="dataset path")
    tr.add_argument("--protocol", help="named split")
    tr.add_argument("--fold", type=int, help="k-fold protocols: train only this fold")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--minutes", type=float,
                    help="time budget: train this long, learning rate on a schedule over the time (replaces --epochs)")
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--augment", choices=["none", "flip", "basic", "strong"])
    tr.add_argument("--init", help="start from this checkpoint (fine-tuning)")
    tr.add_argument("--teacher", nargs="+", metavar="WEIGHTS", help="distill from these weights (averaged)")
    tr.add_argument("--distill", type=float, help="share of each target given to the teachers, in (0, 1]")
    tr.add_argument("--seed", type=int)
    tr.add_argument("--threads", type=int, help="torch CPU threads")
    tr.add_argument("--precision", choices=["auto", "float32", "bfloat16"],
                    help="autocast: auto = bf16 on CUDA, float32 on the CPU")
    tr.add_argument("--out", help="run folder for checkpoints and logs")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    tr.set_defaults(run=lambda a: train(_options(TrainOptions, a)))

    ev = sub.add_parser("evaluate", help="metrics of trained weights on a protocol's test split")
    ev.add_argument("--weights", nargs="+", required=True,
                    help="shipped weights name(s), checkpoint(s) or run folder(s); several are averaged as an ensemble")
    ev.add_argument("--dataset", required=True)
    ev.add_argument("--data", required=True)
    ev.add_argument("--protocol", required=True)
    ev.add_argument("--split", default="test", choices=["train", "val", "test"])
    ev.add_argument("--tta", action="store_true", help="average with the mirrored face (named in the report)")
    ev.add_argument("--seed", type=int, default=0, help="the protocol's seed (must match training)")
    ev.add_argument("--size", type=_positive, default=48)
    ev.add_argument("--labels", choices=["majority", "soft"], default="majority", help="FER+ label mode")
    ev.add_argument("--out", help="folder for report.json and confusion.png")
    ev.add_argument("--json", action="store_true", help="print the JSON report")
    ev.set_defaults(run=lambda a: evaluate(_options(EvaluateOptions, a)))

    ca = sub.add_parser("calibrate", help="fit a checkpoint's temperature on the validation split and store it",
                        description="Temperature scaling: fit the temperature T that minimises the negative "
                        "log-likelihood of softmax(logits / T) on the protocol's validation split (never the "
                        "test split) and write the checkpoint with it. predict, evaluate, export and serve apply "
                        "it; it never changes the predicted class.")
    ca.add_argument("--weights", required=True, help="shipped weights name or checkpoint")
    ca.add_argument("--dataset", required=True)
    ca.add_argument("--data", required=True)
    ca.add_argument("--protocol", required=True, help="the protocol it was trained under (its val split is used)")
    ca.add_argument("--out", required=True, help="the calibrated checkpoint to write")
    ca.add_argument("--seed", type=int, default=0, help="the protocol's seed (must match training)")
    ca.add_argument("--size", type=_positive, default=48)
    ca.add_argument("--labels", choices=["majority", "soft"], default="majority", help="FER+ label mode")
    ca.add_argument("--json", action="store_true", help="print the JSON report")
    ca.set_defaults(run=lambda a: calibrate(_options(CalibrateOptions, a)))

    pr = sub.add_parser("predict", help="recognise expressions in images, folders, videos or a webcam",
                        description="Recognise facial expressions. Output: a table (default), JSON Lines "
                        "(one object per image or frame) or CSV (one row per face) on stdout. Headless "
                        "OpenCV has no window: --webcam prints results and --annotate writes a video. Exit "
                        "code 0 if any input could be read, 1 if none could, 2 on usage errors.")
    pr.add_argument("paths", nargs="*", metavar="PATH", help="image files, video files, folders (recursive)")
    pr.add_argument("--webcam", type=int, metavar="N", help="read webcam N (Ctrl+C stops)")
    # Repeated rather than nargs="+": a list option before the PATHs would swallow them.
    pr.add_argument("--model", action="append",
                    help="shipped weights name, checkpoint .pt or exported .onnx (default: shipped default); "
                    "repeat (--model A --model B) to average several models' probabilities (an ensemble)")
    pr.add_argument("--backend", choices=["torch", "onnx"], help="default: onnx for .onnx files, else torch")
    pr.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto",
                    help="auto (default): yunet where the yuface wheel is installed, else haar; yunet: a CNN "
                    "with five landmarks (tilted, small and dark faces; crops are rotated to level the eyes); "
                    "haar: OpenCV cascade; dlib: HOG, needs pip install 'deepfer[dlib]'")
    pr.add_argument("--detect-width", type=int, metavar="PX",
                    help="detect on a copy this wide (default 320; 0: full size, for small faces with haar and "
                    "dlib; yunet looks again, down to --min-face, where it finds nothing)")
    pr.add_argument("--detect-step", type=float, default=1.1, metavar="R",
                    help="haar: ratio between face sizes searched (default 1.1; deepfer serve uses 1.2)")
    pr.add_argument("--min-face", type=_non_negative, default=0, metavar="PX",
                    help="drop faces narrower than PX pixels (default 0: keep all); yunet searches down to it "
                    "(its own default: 32)")
    pr.add_argument("--min-score", type=_fraction, default=0.0, metavar="S",
                    help="drop faces the detector scores below S in [0, 1] (yunet; haar and dlib give no score)")
    pr.add_argument("--small-faces", action="store_true",
                    help="yunet: search every image down to --min-face (default 32 px), also beside larger faces; "
                    "slower (by default the fine search runs only where the quick one finds nothing)")
    pr.add_argument("--no-detect", action="store_true",
                    help="each input is one already-cropped face (no landmarks: a model that takes aligned faces, "
                    "prior-attention, gets them unaligned, its fixed-block fallback)")
    pr.add_argument("--every", type=int, default=1, metavar="N", help="videos: keep every Nth frame")
    pr.add_argument("--max-frames", type=int, metavar="N", help="videos, webcam: stop after N kept frames")
    pr.add_argument("--format", choices=["table", "json", "csv"], default="table",
                    help="table (readable), json (JSON Lines, one object per image/frame), csv (one row per face)")
    pr.add_argument("--annotate", metavar="OUT",
                    help="write images/videos with boxes and scores to folder OUT (or file OUT for one input)")
    pr.add_argument("--batch-size", type=int, default=256, help="face crops per forward pass")
    pr.add_argument("--threads", type=int, help="backend threads (default: torch's own, 2 for onnxruntime)")
    pr.add_argument("--tta", action="store_true", help="average with the mirrored face")
    pr.add_argument("--uncalibrated", action="store_true",
                    help="scores from the plain softmax, without the weights' fitted temperature")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    video = pr.add_argument_group("videos and webcams", "Each face is tracked: it keeps a track id while the "
                                  "person stays in view, and gets smoothed scores next to the raw ones.")
    video.add_argument("--detect-every", type=_positive, metavar="N",
                       help="run the face detector on one frame in N; the tracker carries the boxes over the "
                       "frames between, which are still classified (default 4; see benchmarks/TRACKING.md)")
    video.add_argument("--smooth", type=float, metavar="S",
                       help="time constant of the smoothed scores in seconds (default 0.1; 0: none)")
    video.add_argument("--timeline", metavar="OUT", help="write OUT/<video>.timeline.csv (one row per track and "
                       "frame) and OUT/<video>.timeline.png (each track's emotions over time)")
    video.add_argument("--summary", action="store_true", help="print one record per track (first and last time "
                       "seen, dominant emotion, share of each) instead of one per frame, in --format")
    pr.set_defaults(run=lambda a: predict(_options(PredictOptions, a)))

    ex = sub.add_parser("export", help="export weights to ONNX (uint8 faces in, probabilities out)")
    ex.add_argument("--model", help="shipped weights name or checkpoint (default: shipped default)")
    ex.add_argument("--format", choices=["onnx"], default="onnx")
    ex.add_argument("--out", required=True, help="the .onnx file to write")
    ex.add_argument("--opset", type=int, default=20, help="ONNX opset (>= 20: AffineGrid, GridSample)")
    ex.add_argument("--uncalibrated", action="store_true",
                    help="export the plain softmax, without the weights' fitted temperature")
    ex.set_defaults(run=lambda a: export(_options(ExportOptions, a)))

    xp = sub.add_parser("explain", help="maps of the face regions that drive each prediction",
                        description="Write PNG figures of what drives each prediction: for photos (faces are "
                        "detected), face crops (--no-detect), or per-emotion maps averaged over a dataset's "
                        "correctly classified test faces (--dataset D --data PATH --protocol P --per-emotion). "
                        "Exit code 0 if any figure was written, 1 if none, 2 on usage errors.")
    xp.add_argument("paths", nargs="*", metavar="IMAGE", help="photos, face crops or folders (recursive)")
    xp.add_argument("--method", nargs="+", default=["occlusion"], choices=["occlusion", "saliency", "gradcam", "stn"],
                    help="one or more; each is a panel of the face's figure (default: occlusion)")
    xp.add_argument("--out", required=True, help="folder for the figures")
    xp.add_argument("--model", help="shipped weights name or checkpoint (default: shipped default)")
    xp.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto",
                    help="face detector for photos, as in predict (default auto: yunet, else haar)")
    xp.add_argument("--no-detect", action="store_true", help="each input is one already-cropped face")
    xp.add_argument("--target", metavar="CLASS", help="explain this class instead of the predicted one")
    xp.add_argument("--patch", type=_positive, help="occlusion: patch side in pixels (default: input size / 6)")
    xp.add_argument("--stride", type=_positive, help="occlusion: step between patches (default: patch / 2)")
    xp.add_argument("--fill", default="mean", help="occlusion: blank value, 'mean' (model's mean grey) or 0..255")
    xp.add_argument("--dataset", help="per-emotion maps: fer2013, ferplus, ckplus, jaffe or ferg")
    xp.add_argument("--data", help="per-emotion maps: dataset path")
    xp.add_argument("--protocol", help="per-emotion maps: named split")
    xp.add_argument("--split", default="test", choices=["train", "val", "test"])
    xp.add_argument("--fold", type=int, help="k-fold protocols: the fold the checkpoint was trained on")
    xp.add_argument("--seed", type=int, default=0, help="the protocol's seed, also the per-class sample's")
    xp.add_argument("--per-emotion", action="store_true", help="average the maps per emotion (one figure)")
    xp.add_argument("--max-per-class", type=_positive, default=200, help="faces averaged per emotion at most")
    xp.add_argument("--labels", choices=["majority", "soft"], default="majority", help="FER+ label mode")
    xp.set_defaults(run=lambda a: explain(_options(ExplainOptions, a)))

    md = sub.add_parser("models", help="list architectures and shipped weights")
    md.add_argument("--json", action="store_true")
    md.set_defaults(run=lambda a: models(_options(ModelsOptions, a)))

    sv = sub.add_parser("serve", help="REST API and web page for photos and the webcam (needs deepfer[serve])",
                        description="Serve POST /v1/predict, POST /v1/explain, POST /v1/video, POST /v1/track, "
                        "GET /v1/models, GET /healthz, the web page at / and the API docs at /docs. Ctrl+C stops.")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine "
                    "only; 0.0.0.0 exposes the server, which has no authentication)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--model", help="shipped weights name, checkpoint .pt or exported .onnx (default: shipped default)")
    sv.add_argument("--backend", choices=["torch", "onnx"], help="default: onnx when onnxruntime is installed")
    sv.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto", help="face detector, as in predict")
    sv.add_argument("--detect-width", type=int, metavar="PX", help="as in predict (0: full size)")
    sv.add_argument("--min-face", type=_non_negative, default=0, metavar="PX", help="as in predict")
    sv.add_argument("--min-score", type=_fraction, default=0.0, metavar="S", help="as in predict")
    sv.add_argument("--detect-step", type=float, default=1.2, metavar="R",
                    help="haar: ratio between face sizes searched (default 1.2: about half the detection time "
                    "of predict's 1.1, boxes a few pixels coarser; --detect-step 1.1 answers as predict does)")
    sv.add_argument("--workers", type=_positive, default=2, help="inference threads (default 2)")
    sv.add_argument("--max-upload-mb", type=float, default=10.0, help="largest upload in MiB (default 10; 413 above)")
    sv.add_argument("--timeout", type=float, default=10.0, help="seconds per request before 504 (default 10)")
    sv.set_defaults(run=lambda a: serve(serve_settings(a)))
    return parser


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _options(cls: type, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    fields = cls.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"deepfer: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except DeepferError as exc:
        print(f"deepfer: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepfer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `deepfer data info ... | head`: the reader closed the pipe early
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:  # an output that cannot be written: `> /dev/full`, a full disk, a folder in the way
        import os

        what = f"{exc.filename}" if exc.filename else "cannot write the output"
        print(f"deepfer: error: {what}: {exc.strerror or exc}", file=sys.stderr)
        with contextlib.suppress(OSError, ValueError):  # what stdout still buffers must not fail again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
