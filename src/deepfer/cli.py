"""The ``deepfer`` command: parse options into a frozen dataclass, call the library, print.

Each subcommand's options are one frozen dataclass whose fields say, in their metadata, how the
command line offers them (:mod:`deepfer.options`): the parser is generated from them. Every
:class:`~deepfer.errors.DeepferError` ends as one line on stderr and exit code 2; a
:class:`~deepfer.errors.ParameterError` names the flag that set the parameter.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from deepfer.errors import DeepferError, ParameterError, one_line
from deepfer.options import DETECTOR_CHOICES, DetectorOptions, add_options, flag_of, from_namespace, option, positive
from deepfer.serve.settings import ServeSettings
from deepfer.version import __version__

DATASETS = "fer2013, ferplus, ckplus, jaffe or ferg"
LABEL_MODES = ["majority", "soft"]
SPLITS = ["train", "val", "test"]


@dataclass(frozen=True)
class DataInfoOptions:
    dataset: str = option(help=DATASETS, positional=True)
    path: str = option(help="dataset file, folder, .zip or .tar.gz", positional=True)
    protocol: str | None = option(None, "named split, e.g. official, subject-10fold, loso")
    size: int = option(48, "image side after resizing", type=positive)
    labels: str = option("majority", "FER+ label mode", choices=LABEL_MODES)
    fer2013_csv: str | None = option(None, "FER+: take pixels from this fer2013.csv")
    crop: str = option("face", "JAFFE: crop the face as predict does (default) or keep the whole frame",
                       choices=["face", "none"])
    seed: int = option(0, type=int)
    json: bool = option(False, "print one JSON object")
    no_cache: bool = option(False, "decode again, ignoring the cache")


def data_info(opts: DataInfoOptions) -> int:
    from deepfer.data import describe, load_dataset, split
    from deepfer.data.summary import format_data_summary

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
        print(format_data_summary(info))
    return 0


@dataclass(frozen=True)
class TrainOptions:
    config: str | None = option(None, "recipe file (YAML/JSON) from configs/; options below override it")
    model: str | None = option(None, "architecture name (deepfer models)")
    dataset: str | None = option(None, DATASETS)
    data: str | None = option(None, "dataset path")
    protocol: str | None = option(None, "named split")
    fold: int | None = option(None, "k-fold protocols: train only this fold", type=int)
    epochs: int | None = option(None, type=int)
    minutes: float | None = option(None, "time budget: train this long, learning rate on a schedule over the time "
                                   "(replaces --epochs)", type=float)
    batch_size: int | None = option(None, type=int)
    lr: float | None = option(None, type=float)
    augment: str | None = option(None, choices=["none", "flip", "basic", "strong"])
    init: str | None = option(None, "start from this checkpoint (fine-tuning)")
    teacher: tuple[str, ...] | None = option(None, "distill from these weights (averaged)", nargs="+",
                                             metavar="WEIGHTS")
    distill: float | None = option(None, "share of each target given to the teachers, in (0, 1]", type=float)
    seed: int | None = option(None, type=int)
    threads: int | None = option(None, "torch CPU threads", type=int)
    precision: str | None = option(None, "autocast: auto = bf16 on CUDA, float32 on the CPU",
                                   choices=["auto", "float32", "bfloat16"])
    out: str | None = option(None, "run folder for checkpoints and logs")
    resume: bool = option(False, "continue from OUT/last.pt")


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
    weights: tuple[str, ...] = option(help="shipped weights name(s), checkpoint(s) or run folder(s); several are "
                                      "averaged as an ensemble", nargs="+")
    dataset: str = option(help=DATASETS)
    data: str = option(help="dataset path")
    protocol: str = option(help="named split")
    split: str = option("test", choices=SPLITS)
    tta: bool = option(False, "average with the mirrored face (named in the report)")
    seed: int = option(0, "the protocol's seed (must match training)", type=int)
    size: int = option(48, type=positive)
    labels: str = option("majority", "FER+ label mode", choices=LABEL_MODES)
    out: str | None = option(None, "folder for report.json and confusion.png")
    json: bool = option(False, "print the JSON report")


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
    weights: str = option(help="shipped weights name or checkpoint")
    dataset: str = option(help=DATASETS)
    data: str = option(help="dataset path")
    protocol: str = option(help="the protocol it was trained under (its val split is used)")
    out: str = option(help="the calibrated checkpoint to write")
    seed: int = option(0, "the protocol's seed (must match training)", type=int)
    size: int = option(48, type=positive)
    labels: str = option("majority", "FER+ label mode", choices=LABEL_MODES)
    json: bool = option(False, "print the JSON report")


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
    json: bool = option(False, "print JSON")


def models(opts: ModelsOptions) -> int:
    from deepfer.models import list_models
    from deepfer.models.pretrained import DEFAULT, list_pretrained

    shipped = list_pretrained()
    if opts.json:
        print(json.dumps({"architectures": list_models(), "weights": [
            {"name": w.name, "architecture": w.architecture, "labels": w.labels,
             "dataset": w.info.get("dataset"), "protocol": w.info.get("protocol"),
             "val_accuracy": w.info.get("val_accuracy"), "temperature": w.temperature,
             "card": str(w.card) if w.card else None}
            for w in shipped], "default": DEFAULT}))
        return 0
    print("architectures: " + ", ".join(list_models()))
    print("shipped weights:" if shipped else "shipped weights: none")
    for w in shipped:
        data = f"{w.info.get('dataset', '?')}/{w.info.get('protocol', '?')}"
        print(f"  {w.name:<28} {w.architecture:<14} {data:<16}"
              f"  val acc {w.info.get('val_accuracy', float('nan')):.4f}  classes {len(w.labels)}"
              f"  temperature {w.temperature:.3g}" + ("  (default)" if w.name == DEFAULT else ""))
    return 0


class UsageError(DeepferError):
    """Bad command-line options (printed as one line, like every other error)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # main() prints the one "deepfer: error:" prefix; the subcommand is named in the hint.
        raise UsageError(f"{message} (see {self.prog} --help)")


@dataclass(frozen=True, kw_only=True)
class PredictOptions(DetectorOptions):
    GROUPS: ClassVar[dict[str, str]] = {"videos and webcams": "Each face is tracked: it keeps a track id while "
                                        "the person stays in view, and gets smoothed scores next to the raw ones.",
                                        "a corpus on a Ray cluster": "pip install -e '.[distributed]'; see "
                                        "docs/distributed.md"}

    paths: tuple[str, ...] = option((), "image files, video files, folders (recursive)", positional=True,
                                    nargs="*", metavar="PATH")
    webcam: int | None = option(None, "read webcam N (Ctrl+C stops)", type=int, metavar="N")
    # Repeated rather than nargs="+": a list option before the PATHs would swallow them.
    model: tuple[str, ...] | None = option(None, "shipped weights name, checkpoint .pt or exported .onnx (default: "
                                           "shipped default); repeat (--model A --model B) to average several "
                                           "models' probabilities (an ensemble)", action="append")
    backend: str | None = option(None, "default: onnx for .onnx files, else torch", choices=["torch", "onnx"])
    small_faces: bool = option(False, "search every image down to the detector's smallest face at full size "
                               "(yunet 32 px), whatever its size; slower on large photos")
    no_detect: bool = option(False, "each input is one already-cropped face (no landmarks: a model that takes "
                             "aligned faces, prior-attention, gets them unaligned, its fixed-block fallback)")
    every: int = option(1, "videos: keep every Nth frame", type=int, metavar="N")
    max_frames: int | None = option(None, "videos, webcam: stop after N kept frames", type=int, metavar="N")
    format: str = option("table", "table (readable), json (JSON Lines, one object per image/frame), csv (one row "
                         "per face)", choices=["table", "json", "csv"])
    annotate: str | None = option(None, "write images/videos with boxes and scores to folder OUT (or file OUT for "
                                  "one input)", metavar="OUT")
    batch_size: int = option(256, "face crops per forward pass", type=int)
    threads: int | None = option(None, "backend threads (default: torch's own, 2 for onnxruntime)", type=int)
    tta: str | None = option(None, "average each face's scores with its mirror image's: none (the default), photos "
                             "(not video or webcam frames), all (also a bare --tta)",
                             choices=["photos", "all", "none"], nargs="?", const="all")
    uncalibrated: bool = option(False, "scores from the plain softmax, without the weights' fitted temperature")
    no_progress: bool = option(False, "no progress bar")
    # None: deepfer.inference.tracking.DETECT_EVERY and SMOOTHING
    detect_every: int | None = option(None, "run the face detector on one frame in N; the tracker carries the boxes "
                                      "over the frames between, which are still classified (default 4; see "
                                      "benchmarks/TRACKING.md)", type=positive, metavar="N", group="videos and webcams")
    smooth: float | None = option(None, "time constant of the smoothed scores in seconds (default 0.1; 0: none)",
                                  type=float, metavar="S", group="videos and webcams")
    # None: deepfer.inference.tracking.REID_WINDOW; "all": the whole video
    reid_window: str | None = option(None, "a face that comes back within S seconds of when it was last seen "
                                     "(hidden, out of view, after a scene cut) gets its track id back when its face "
                                     "embedding matches (default: all, the whole video; 0: off; needs pip install -e "
                                     "'.[reid]', see benchmarks/TRACKING_REID.md)", metavar="S|all",
                                     group="videos and webcams")
    timeline: str | None = option(None, "write OUT/<video>.timeline.csv (one row per track and frame) and "
                                  "OUT/<video>.timeline.png (each track's emotions over time)", metavar="OUT",
                                  group="videos and webcams")
    summary: bool = option(False, "print one record per track (first and last time seen, separate appearances, "
                           "dominant emotion, share of each) instead of one per frame, in --format",
                           group="videos and webcams")
    engine: str = option("local", "ray: run on Ray Data into --out", choices=["local", "ray"],
                         group="a corpus on a Ray cluster")
    out: str | None = option(None, "--engine ray: the output folder of Parquet files", metavar="DIR",
                             group="a corpus on a Ray cluster")
    address: str | None = option(None, "--engine ray: join this Ray cluster (auto: this node's); default: start one",
                                 group="a corpus on a Ray cluster")
    resume: bool = option(False, "--engine ray: run only the items --out lacks", group="a corpus on a Ray cluster")
    workers: int | None = option(None, "--engine ray: recognizer actors (default: one per core)", type=positive,
                                 group="a corpus on a Ray cluster")
    segment: str = option("60s", "--engine ray: video per work item (default 60s)", group="a corpus on a Ray cluster")


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
    from deepfer.inference.results import rows
    from deepfer.inference.timeline import TimelineWriter, TrackSummary, write_summary
    from deepfer.inference.tracking import DETECT_EVERY, REID_WINDOW, SMOOTHING

    if not opts.paths and opts.webcam is None:
        raise DeepferError("nothing to read: give image or video PATHs (files or folders) or --webcam N "
                           "(see deepfer predict --help)")
    if opts.paths and opts.webcam is not None:
        raise DeepferError("give image/video PATHs or --webcam N (not both)")
    if opts.smooth is not None and not 0 <= opts.smooth < float("inf"):
        raise DeepferError(f"--smooth must be a number of seconds >= 0, got {opts.smooth}")
    reid_window = REID_WINDOW if opts.reid_window is None else _window(opts.reid_window)
    if opts.every < 1 or opts.batch_size < 1 or (opts.threads or 1) < 1:
        raise DeepferError("--every, --batch-size and --threads must be >= 1")
    spec = opts.spec(opts.small_faces)
    if opts.engine == "ray" or any((opts.out, opts.address, opts.resume, opts.workers)):
        from deepfer.distributed.command import predict_on_ray

        return predict_on_ray(opts, spec)
    sources = [webcam(opts.webcam)] if opts.webcam is not None else expand(opts.paths)
    model = opts.model[0] if opts.model and len(opts.model) == 1 else opts.model
    rec = Recognizer(model, None if opts.no_detect else spec, opts.backend, opts.batch_size,
                     opts.tta, threads=opts.threads, calibrated=not opts.uncalibrated)
    with _flags(out="--annotate"):
        annotator = Annotator(opts.annotate, sources, opts.every) if opts.annotate else None
    with _flags(out="--timeline"):
        timeline = TimelineWriter(opts.timeline, rec.labels) if opts.timeline else None
    # --summary prints one record per track instead of one per frame. The writer starts (its header)
    # with the first record, so that a webcam that does not open prints its error alone.
    writer = None
    frames = any(s.kind in ("video", "webcam") for s in sources)
    summaries: dict[str, TrackSummary] = {}
    read = 0
    try:
        for result in rec.iter_results(sources, opts.every, opts.max_frames,
                                       keep_pictures=annotator is not None or timeline is not None,
                                       progress=not opts.no_progress,
                                       detect_every=DETECT_EVERY if opts.detect_every is None else opts.detect_every,
                                       smoothing=SMOOTHING if opts.smooth is None else opts.smooth,
                                       reid_window=reid_window):
            if writer is None and not opts.summary:
                writer = make_writer(opts.format, sys.stdout, rec.labels, max(len(s.name) for s in sources), frames)
            if writer is not None:
                writer.write(result)
            read += result.decoded
            if annotator is not None:
                annotator.write(result)
            if timeline is not None:
                timeline.write(result)
            if opts.summary and result.time is not None:
                summary = summaries.setdefault(result.path or "", TrackSummary(rec.labels, result.path))
                for row in rows(result, rec.labels):
                    summary.add(row)
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
        for line in annotator.report() if annotator is not None else []:  # only files complete on disk
            print(line, file=sys.stderr)
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


def _window(text: str) -> float | None:
    """``--reid-window``: seconds >= 0, or ``all`` (``None``: the whole video)."""
    if text.strip().lower() == "all":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise DeepferError(f"--reid-window must be a number of seconds >= 0 or 'all', got {text!r}")
    return value


@dataclass(frozen=True)
class ExportOptions:
    out: str = option(help="the .onnx file to write")
    model: str | None = option(None, "shipped weights name or checkpoint (default: shipped default)")
    format: str = option("onnx", choices=["onnx"])
    opset: int = option(20, "ONNX opset (>= 20: AffineGrid, GridSample)", type=int)
    uncalibrated: bool = option(False, "export the plain softmax, without the weights' fitted temperature")


def export(opts: ExportOptions) -> int:
    from deepfer.inference.export import export_onnx

    info = export_onnx(opts.model, opts.out, opts.opset, calibrated=not opts.uncalibrated)
    print(f"wrote {info['path']} (opset {info['opset']}, classes {', '.join(info['labels'])}, temperature "
          f"{info['temperature']:.4g}; max |torch - onnxruntime| on 64 random faces: {info['max_abs_diff']:.2e})")
    return 0


@dataclass(frozen=True)
class ExplainOptions:
    out: str = option(help="folder for the figures")
    paths: tuple[str, ...] = option((), "photos, face crops or folders (recursive)", positional=True, nargs="*",
                                    metavar="IMAGE")
    method: tuple[str, ...] = option(("occlusion",), "one or more; each is a panel of the face's figure (default: "
                                     "occlusion)", nargs="+", choices=["occlusion", "saliency", "gradcam", "stn"])
    model: str | None = option(None, "shipped weights name or checkpoint (default: shipped default)")
    detector: str = option("auto", "face detector for photos, as in predict (default auto: yunet, else haar)",
                           choices=DETECTOR_CHOICES)
    no_detect: bool = option(False, "each input is one already-cropped face")
    target: str | None = option(None, "explain this class instead of the predicted one", metavar="CLASS")
    patch: int | None = option(None, "occlusion: patch side in pixels (default: input size / 6)", type=positive)
    stride: int | None = option(None, "occlusion: step between patches (default: patch / 2)", type=positive)
    fill: str = option("mean", "occlusion: blank value, 'mean' (model's mean grey) or 0..255")
    dataset: str | None = option(None, f"per-emotion maps: {DATASETS}")
    data: str | None = option(None, "per-emotion maps: dataset path")
    protocol: str | None = option(None, "per-emotion maps: named split")
    split: str = option("test", choices=SPLITS)
    fold: int | None = option(None, "k-fold protocols: the fold the checkpoint was trained on", type=int)
    seed: int = option(0, "the protocol's seed, also the per-class sample's", type=int)
    per_emotion: bool = option(False, "average the maps per emotion (one figure)")
    max_per_class: int = option(200, "faces averaged per emotion at most", type=positive)
    labels: str = option("majority", "FER+ label mode", choices=LABEL_MODES)


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


def serve(settings: ServeSettings) -> int:
    """Run the REST server and web page until Ctrl+C (``pip install -e '.[serve]'``)."""
    import importlib.util
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as in predict
    missing = [m for m in ("fastapi", "uvicorn", "python_multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise DeepferError(f"deepfer serve needs {', '.join(missing)}: pip install -e '.[serve]' in the deepfer "
                           "checkout")
    from deepfer.serve import run

    run(settings)
    return 0


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, options, what runs it and its help."""

    name: str
    options: type
    run: Callable[..., int]
    help: str
    description: str | None = None


COMMANDS = [
    Command("data info", DataInfoOptions, data_info, "counts per split and class, subjects, duplicates"),
    Command("train", TrainOptions, train, "train a model on a dataset under a protocol"),
    Command("evaluate", EvaluateOptions, evaluate, "metrics of trained weights on a protocol's test split"),
    Command("calibrate", CalibrateOptions, calibrate, "fit a checkpoint's temperature on the validation split and "
            "store it", "Temperature scaling: fit the temperature T that minimises the negative log-likelihood of "
            "softmax(logits / T) on the protocol's validation split (never the test split) and write the checkpoint "
            "with it. predict, evaluate, export and serve apply it; it never changes the predicted class."),
    Command("predict", PredictOptions, predict, "recognise expressions in images, folders, videos or a webcam",
            "Recognise facial expressions. Output: a table (default), JSON Lines (one object per image or frame) or "
            "CSV (one row per face) on stdout. Headless OpenCV has no window: --webcam prints results and --annotate "
            "writes a video. Exit code 0 if any input could be read, 1 if none could, 2 on usage errors."),
    Command("export", ExportOptions, export, "export weights to ONNX (uint8 faces in, probabilities out)"),
    Command("explain", ExplainOptions, explain, "maps of the face regions that drive each prediction",
            "Write PNG figures of what drives each prediction: for photos (faces are detected), face crops "
            "(--no-detect), or per-emotion maps averaged over a dataset's correctly classified test faces (--dataset D "
            "--data PATH --protocol P --per-emotion). Exit code 0 if any figure was written, 1 if none, 2 on usage "
            "errors."),
    Command("models", ModelsOptions, models, "list architectures and shipped weights"),
    Command("serve", ServeSettings, serve, "REST API and web page for photos and the webcam (needs pip install -e '.[serve]')",
            "Serve POST /v1/predict, POST /v1/explain, POST /v1/video, POST /v1/track, GET /v1/models, GET /healthz, "
            "the web page at / and the API docs at /docs. Ctrl+C stops."),
]


def build_parser() -> argparse.ArgumentParser:
    """The parser, generated from :data:`COMMANDS`' options dataclasses; the detector's flags are one
    parent parser shared by predict and serve (each with its own defaults)."""
    parser = _Parser(prog="deepfer", description="Facial expression recognition.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--version", action="version", version=f"deepfer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    shared = {f.name for f in dataclasses.fields(DetectorOptions)}
    for cmd in COMMANDS:
        *group, name = cmd.name.split()
        where = sub
        if group:  # "data info": a subcommand of "data"
            if group[0] not in groups:
                groups[group[0]] = sub.add_parser(group[0], help="inspect datasets").add_subparsers(
                    dest=f"{group[0]}_command", required=True)
            where = groups[group[0]]
        parents = [_detector_parent(cmd.options)] if issubclass(cmd.options, DetectorOptions) else []
        p = where.add_parser(name, help=cmd.help, description=cmd.description, parents=parents)
        add_options(p, cmd.options, skip=shared if parents else ())
        p.set_defaults(run=lambda a, cmd=cmd: cmd.run(from_namespace(cmd.options, a)))
    return parser


def _detector_parent(options: type) -> argparse.ArgumentParser:
    """The face detector's flags (:class:`~deepfer.options.DetectorOptions`) as a parent parser, with
    the defaults of ``options`` (serve's ``detect_step`` is not predict's). One per command: parents
    share their argument objects, so defaults set on one would leak into the others."""
    parent = argparse.ArgumentParser(add_help=False)
    add_options(parent.add_argument_group("face detection"), DetectorOptions)
    names = {f.name for f in dataclasses.fields(DetectorOptions)}
    parent.set_defaults(**{f.name: f.default for f in dataclasses.fields(options) if f.name in names})
    return parent


# Every option's flag, by the parameter name the library's errors use.
_FLAGS = {f.name: flag_of(f) for c in [*(c.options for c in COMMANDS), DetectorOptions]
          for f in dataclasses.fields(c) if "cli" in f.metadata and not f.metadata["cli"]["positional"]}


@contextlib.contextmanager
def _flags(**flags: str) -> Iterator[None]:
    """Errors of library parameters raised inside name the flags given for them (where one flag
    fills a parameter whose name other flags also have: ``out`` is --annotate or --timeline)."""
    try:
        yield
    except ParameterError as exc:
        if exc.param not in flags:
            raise
        raise DeepferError(_spelled(exc, flags[exc.param])) from None


def _spelled(exc: ParameterError, flag: str) -> str:
    return re.sub(rf"\b{re.escape(exc.param)}\b", flag, str(exc), count=1)


def _flag_message(exc: DeepferError) -> str:
    """The error's message with the library parameter it names spelled as the flag that sets it."""
    if not isinstance(exc, ParameterError) or exc.param not in _FLAGS:
        return str(exc)
    return _spelled(exc, _FLAGS[exc.param])


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
        print(f"deepfer: error: {one_line(_flag_message(exc))}", file=sys.stderr)
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
