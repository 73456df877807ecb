"""``deepfer predict PATHS --engine ray --out DIR``: the command line's options checked and handed
to :func:`~deepfer.distributed.engine.predict_dataset`; the summary printed at the end."""

from __future__ import annotations

import json
import sys
from typing import Any

from deepfer.errors import DeepferError
from deepfer.vision.detector_spec import DetectorSpec

# predict's options that write or show per-frame output on this machine: not for a cluster run.
_LOCAL_ONLY = {"webcam": "--webcam", "annotate": "--annotate", "timeline": "--timeline", "summary": "--summary",
               "max_frames": "--max-frames", "threads": "--threads"}


def predict_on_ray(opts: Any, detector: DetectorSpec) -> int:
    """Run ``deepfer predict`` with ``--engine ray``; exit 0 when every item is in the output
    (records of unreadable inputs included), 1 when some is missing."""
    from deepfer.distributed.engine import predict_dataset
    from deepfer.distributed.manifest import parse_duration
    from deepfer.inference.tracking import DETECT_EVERY, SMOOTHING

    if opts.engine != "ray":
        raise DeepferError("--out, --address, --resume and --workers go with --engine ray")
    if not opts.out:
        raise DeepferError("--engine ray writes Parquet files: give --out DIR")
    if not opts.paths:
        raise DeepferError("--engine ray reads PATHs (files, folders or URIs)")
    for name, flag in _LOCAL_ONLY.items():
        if getattr(opts, name) not in (None, False):
            raise DeepferError(f"{flag} is not available with --engine ray")
    if opts.every < 1 or opts.batch_size < 1:
        raise DeepferError("--every and --batch-size must be >= 1")
    model = opts.model[0] if opts.model and len(opts.model) == 1 else opts.model
    summary = predict_dataset(
        opts.paths, opts.out, model=model, detector=None if opts.no_detect else detector, backend=opts.backend,
        batch_size=opts.batch_size, tta=opts.tta, calibrated=not opts.uncalibrated, every=opts.every,
        detect_every=DETECT_EVERY if opts.detect_every is None else opts.detect_every,
        smoothing=SMOOTHING if opts.smooth is None else opts.smooth, segment=parse_duration(opts.segment),
        address=opts.address, workers=opts.workers, resume=opts.resume, progress=not opts.no_progress)
    if opts.format == "json":
        print(json.dumps({k: v for k, v in vars(summary).items()}))
    else:
        print(summary.line(), file=sys.stderr)
    return 1 if summary.missing else 0
