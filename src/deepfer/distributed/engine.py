"""``deepfer predict --engine ray``: a corpus of images and videos through Ray Data, into a folder of
Parquet files, resumable, with nothing lost or repeated when a worker dies.

The pipeline: the manifest (:mod:`deepfer.distributed.manifest`, written to ``OUT/_manifest``)
-> ``read_parquet`` -> Ray Data's checkpoint filter (on ``--resume``: the ids already written are
dropped) -> repartition (a small manifest would be one block, all of it one actor's) ->
``map_batches`` on an actor pool (:class:`~deepfer.distributed.worker.RecognizerWorker`: the
recognizer loaded once per actor) -> ``write_parquet(OUT)`` with Ray Data's checkpoint
(``CheckpointConfig(id_column="id")``, kept in ``OUT/_checkpoint``: a two-phase commit per file,
so a file whose ids are checkpointed is complete). Ray restarts a killed actor and re-runs its
batches; files and their checkpoints are written after a batch is whole, so a re-run batch is
written once.

Readers of ``OUT`` (pandas, pyarrow, Spark, DuckDB) skip ``_manifest``, ``_checkpoint`` and
``_tracks.parquet``: names starting with ``_`` are not data files to them.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepfer.distributed.manifest import DEFAULT_SEGMENT, Item, build_manifest, is_uri, to_table
from deepfer.distributed.worker import EngineSpec, RecognizerWorker
from deepfer.errors import DeepferError
from deepfer.inference.results import NO_FACE
from deepfer.inference.tracking import DETECT_EVERY, SMOOTHING
from deepfer.vision.detector_spec import DetectorSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["Summary", "checkpointed_ids", "predict_dataset", "read_output", "track_summary"]

ID = "id"
MANIFEST = "_manifest"
CHECKPOINT = "_checkpoint"
TRACKS = "_tracks.parquet"
# Blocks queued on one actor: Ray's default (4) let the first actor ready take half of a small job
# while the second was still loading the model (2 workers: 0.93x the frames/s of one, on 12 video
# segments); 2 keeps the next block at hand and the rest for whichever actor is free.
_IN_FLIGHT = 2
_ROWS_PER_BLOCK = 128  # photos per block and batch (classified 32 at a time, as Recognizer.iter_results does)
_IO_CPUS = 0.25  # logical CPUs of a read or write task (they wait on files, not on the cores)
_FILTER_CPUS = 1.0  # Ray Data's checkpoint filter: an actor with Ray Data's default, one logical CPU


@dataclass(frozen=True)
class Summary:
    """What a run did.

    Attributes:
        out: the output folder.
        items: manifest items (images and video segments).
        resumed: items already in the output's checkpoint when the run started (not re-run).
        processed: items this run processed.
        records: rows per image or frame in the whole output (an image with three faces is one).
        faces: faces in the whole output.
        errors: records of inputs that could not be read.
        no_face: records of images or frames without a face.
        tracks: face tracks ``(path, segment, track)`` in the output.
        tracks_cut: of those, tracks that touch a segment boundary (the person may be the same
            as a track of the neighbouring segment).
        seconds: the run's wall time, start-up included.
        startup: seconds to start or join the cluster.
        checkpoint_load: seconds to read the ids already done (``--resume``).
        missing: manifest ids without a row in the output (empty after a complete run).
        duplicated: output rows whose (id, frame, face) is another row's (0 after any run).
        workers: recognizer actors, and the logical CPUs each held.
        busy: seconds from the first batch's start to the last batch's end in this run (start-up,
            model loading and this summary excluded): ``records / busy`` is the running rate.
        worker_cpu: CPU seconds the workers spent in batches in this run.
        first_batch: per worker process id, when its first batch started (epoch seconds; a
            replaced worker shows up as a new process).
        per_worker: per worker process id, [batches, seconds in them, CPU seconds in them]: how
            evenly the work was spread.
    """

    out: str
    items: int
    resumed: int
    processed: int
    records: int
    faces: int
    errors: int
    no_face: int
    tracks: int
    tracks_cut: int
    seconds: float
    startup: float
    checkpoint_load: float
    missing: list[str] = field(default_factory=list)
    duplicated: int = 0
    workers: int = 0
    worker_cpus: float = 0.0
    busy: float = 0.0
    worker_cpu: float = 0.0
    first_batch: dict[int, float] = field(default_factory=dict)
    per_worker: dict[int, list[float]] = field(default_factory=dict)

    def line(self) -> str:
        """One line for the terminal."""
        text = (f"{self.records} records ({self.faces} faces, {self.no_face} without a face, {self.errors} errors) "
                f"from {self.items} items in {self.out}; this run: {self.processed} items in {self.seconds:.1f} s "
                f"(start-up {self.startup:.1f} s)")
        if self.resumed:
            text += f", {self.resumed} items were done already"
        if self.tracks:
            text += f"; {self.tracks} face tracks, {self.tracks_cut} cut at a segment boundary"
        if self.missing or self.duplicated:
            text += f"; INCOMPLETE: {len(self.missing)} items missing, {self.duplicated} rows duplicated"
        if self.busy:
            text += f" [{self.busy:.1f} s running, {self.worker_cpu:.1f} CPU s in the workers]"
        return text


def predict_dataset(paths: Sequence[str | Path], out: str | Path, *, model: Any = None,
                    detector: DetectorSpec | str | None = "auto",
                    backend: str | None = None, batch_size: int = 256, tta: bool | str | None = None,
                    calibrated: bool = True, every: int = 1,
                    detect_every: int = DETECT_EVERY, smoothing: float = SMOOTHING,
                    segment: float = DEFAULT_SEGMENT, address: str | None = None, workers: int | None = None,
                    resume: bool = False, progress: bool = False) -> Summary:
    """Recognise the expressions of a corpus on a Ray cluster into a folder of Parquet files.

    Args:
        paths: image files, video files, folders, or URIs of a pyarrow filesystem (``s3://...``).
        out: the output folder (local, shared by the cluster's nodes, or a URI).
        model, backend, batch_size, tta, calibrated: as in :class:`~deepfer.inference.Recognizer`.
        detector: a :class:`~deepfer.vision.DetectorSpec` (its ``min_face`` and ``min_score``
            included), a detector name for its defaults, or ``None`` for already-cropped faces.
        every, detect_every, smoothing: as in :meth:`~deepfer.inference.Recognizer.iter_results`.
        segment: seconds of video per work item (each segment is tracked on its own).
        address: a Ray cluster to join (``"auto"``: the one this node belongs to); ``None``
            starts a local cluster with this machine's cores.
        workers: recognizer actors (default: a local cluster's core count, or all but two of a
            joined cluster's CPUs).
        resume: continue ``out``: only the items it does not hold yet are run.
        progress: draw a progress bar on stderr.

    Returns:
        The run's :class:`Summary`.

    Raises:
        DeepferError: ``out`` holds results and ``resume`` is not set, bad options, or ``ray``
            not installed.
    """
    t0 = time.perf_counter()
    try:
        import ray
    except ImportError as exc:
        raise DeepferError("--engine ray needs Ray Data: pip install -e '.[distributed]'") from exc
    if workers is not None and workers < 1:
        raise DeepferError(f"--workers must be >= 1, got {workers}")
    out = str(out) if is_uri(str(out)) else str(Path(out).resolve())  # the workers' cwd is not ours
    if not resume and _has_results(out):
        raise DeepferError(f"{out}: holds results already; pass --resume to continue it, or choose another --out")
    if isinstance(detector, str):
        detector = DetectorSpec(detector)
    items = build_manifest(paths, segment, every, detect_every)
    if not items:
        raise DeepferError("no inputs")

    t1 = time.perf_counter()
    done = checkpointed_ids(out) if resume else set()
    load = time.perf_counter() - t1
    todo = [it for it in items if it.id not in done]
    resumed = len(items) - len(todo)

    startup, n_workers, cpus, timing = 0.0, 0, 0.0, {}
    if todo:
        s0 = time.perf_counter()
        connected = _connect(ray, address)
        startup = time.perf_counter() - s0
        try:
            n_workers, cpus, threads = _plan(ray, address, workers, filtering=resume)
            spec = EngineSpec(model, detector, backend, batch_size, tta, calibrated, every, detect_every, smoothing,
                              threads)
            blocks = _write_manifest(out, todo, n_workers)
            timing = _run(ray, out, spec, todo, blocks, n_workers, cpus, progress)
        finally:
            if connected:
                ray.shutdown()
    summary = _summarize(out, items, resumed, len(todo), time.perf_counter() - t0, startup, load, n_workers, cpus)
    return replace(summary, busy=round(timing.get("busy", 0.0), 3), worker_cpu=round(timing.get("cpu", 0.0), 3),
                   first_batch=timing.get("first_batch", {}), per_worker=timing.get("workers", {}))


def _connect(ray: Any, address: str | None) -> bool:
    """Join ``address`` or start a local cluster, unless this process is connected already (a
    caller's own ``ray.init``); whether this call connected (and so must disconnect)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network at run time
    # Inherited by a local cluster's workers, before they load torch (see deepfer.cli.predict).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                              "configure_logging": False}
    if address is not None:
        ray.init(address=address, **kwargs)
    else:
        # Logical CPUs (what Ray schedules by; the actors' torch threads decide the real load): at
        # least two, so that a one-core machine still fits the checkpoint filter on --resume.
        ray.init(num_cpus=max(2, os.cpu_count() or 1), include_dashboard=False, **kwargs)
    return True


def _plan(ray: Any, address: str | None, workers: int | None, filtering: bool) -> tuple[int, float, int]:
    """(actors, logical CPUs per actor, torch threads per actor) for the cluster's CPUs."""
    total = float(ray.cluster_resources().get("CPU", 1.0))
    if workers is None:
        workers = (os.cpu_count() or 1) if address is None else max(1, int(total) - 2)
    # Read and write tasks need a share, on --resume the checkpoint filter actor a whole CPU: with
    # every CPU held by the recognizer actors the read task never starts (ray-project/ray#44687).
    spare = total - 2 * _IO_CPUS - _FILTER_CPUS if filtering else total - 4 * _IO_CPUS
    cpus = math.floor(min(1.0, spare / workers) * 100) / 100
    if cpus < 0.05:
        raise DeepferError(f"--workers {workers} is too many for this cluster's {total:g} CPUs")
    if address is None:  # this machine's cores, shared by the actors
        threads = max(1, round((os.cpu_count() or 1) / workers))
    else:  # one actor per CPU on a cluster
        threads = max(1, round(cpus))
    return workers, cpus, threads


def _run(ray: Any, out: str, spec: EngineSpec, todo: list[Item], blocks: int, workers: int, cpus: float,
         progress: bool) -> dict[str, Any]:
    from ray.data import ActorPoolStrategy, DataContext
    from ray.data.checkpoint import CheckpointConfig

    from deepfer.distributed.progress import ProgressBoard, watch

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.use_datasource_v2 = False  # the V2 Parquet reader merges small files into one block
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the driver draws its own progress
    ctx.checkpoint_config = CheckpointConfig(id_column=ID, checkpoint_path=_join(out, CHECKPOINT),
                                             delete_checkpoint_on_success=False)
    board = ray.remote(num_cpus=0)(ProgressBoard).remote()
    # One block per manifest file (Ray Data's repartition would need whole CPUs of its own).
    ds = ray.data.read_parquet(_join(out, MANIFEST), override_num_blocks=blocks, num_cpus=_IO_CPUS)
    # Each block is one batch (batch_size=None): a batch size in rows makes Ray Data bundle small
    # blocks until it is reached, and 12 one-segment blocks then went to one actor as one batch.
    ds = ds.map_batches(RecognizerWorker, fn_constructor_kwargs={"spec": spec, "board": board},
                        batch_size=None, batch_format="pyarrow", num_cpus=cpus,
                        compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=_IN_FLIGHT))
    stop = threading.Event()
    drawer = threading.Thread(target=watch, args=(board, stop, len(todo), sum(it.frames for it in todo), progress),
                              daemon=True)
    drawer.start()
    try:
        ds.write_parquet(out, ray_remote_args={"num_cpus": _IO_CPUS})
    finally:
        stop.set()
        drawer.join(timeout=10)
        ctx.checkpoint_config = None
    return ray.get(board.timing.remote())


def _join(out: str, name: str) -> str:
    return f"{out.rstrip('/')}/{name}"


def _fs(path: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    if is_uri(path):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), str(Path(path).resolve())


def _has_results(out: str) -> bool:
    import pyarrow.fs as pafs

    fs, root = _fs(out)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.File:
        raise DeepferError(f"{out}: is a file; --out names a folder of Parquet files")
    if info.type == pafs.FileType.NotFound:
        return False
    return any(f.type == pafs.FileType.File for f in fs.get_file_info(pafs.FileSelector(root)))


def _blocks(items: Sequence[Item], workers: int) -> list[list[Item]]:
    """The items split into blocks of work: each video segment alone (hundreds of frames, and a
    video's segments on different actors), photos (and unreadable paths) by up to :data:`_ROWS_PER_BLOCK`, interleaved, and
    in at least ``4 * workers`` blocks (a small manifest read as one block would be one actor's work)."""
    blocks = [[it] for it in items if it.kind == "video"]
    images = [it for it in items if it.kind != "video"]  # photos, and paths that failed to list
    if images:
        n = min(len(images), max(4 * workers, math.ceil(len(images) / _ROWS_PER_BLOCK)))
        blocks += [images[i::n] for i in range(n)]
    return blocks


def _write_manifest(out: str, items: Sequence[Item], workers: int) -> int:
    """``OUT/_manifest/part-NNNNN.parquet``, one file per block of :func:`_blocks`; the number of
    files."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from deepfer.files import atomic_open

    fs, root = _fs(_join(out, MANIFEST))
    if fs.get_file_info(root).type != pafs.FileType.NotFound:
        fs.delete_dir(root)
    fs.create_dir(root, recursive=True)
    blocks = _blocks(items, workers)
    for i, block in enumerate(blocks):
        table = to_table(block)
        if is_uri(out):
            with fs.open_output_stream(f"{root}/part-{i:05d}.parquet") as f:
                pq.write_table(table, f)
        else:
            with atomic_open(f"{root}/part-{i:05d}.parquet") as f:
                pq.write_table(table, f)
    return len(blocks)


def checkpointed_ids(out: str | Path) -> set[str]:
    """The item ids whose rows ``out`` holds for certain: those of Ray Data's committed checkpoint
    files (a file still pending is not counted; Ray removes its rows before the next run)."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, root = _fs(_join(str(out), CHECKPOINT))
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return set()
    ids: set[str] = set()
    for f in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if f.type == pafs.FileType.File and f.path.endswith(".parquet"):
            with fs.open_input_file(f.path) as src:
                ids.update(pq.read_table(src, columns=[ID]).column(ID).to_pylist())
    return ids


def read_output(out: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The output's rows as a DataFrame (``columns``: only these), e.g. ``read_output("results.parquet")``."""
    return _dataset(str(out)).to_table(columns=list(columns) if columns else None).to_pandas()


def _dataset(out: str) -> Any:
    import pyarrow.dataset as pads

    fs, root = _fs(out)
    return pads.dataset(root, filesystem=fs, format="parquet")


def track_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per face track ``(path, segment, track)``: ``first`` and ``last`` time, ``frames``,
    ``dominant`` (its most frequent label), and ``cut_before`` / ``cut_after``: the track is on
    its segment's first / last kept frame and a segment of the same video comes before / after
    (the person may continue as a track of that segment).

    Args:
        rows: output rows with ``path``, ``segment``, ``frame``, ``time``, ``track``, ``label``.
    """
    import pandas as pd

    frames = rows[rows["segment"].notna() & rows["frame"].notna()]
    cols = ["path", "segment", "track", "first", "last", "frames", "dominant", "cut_before", "cut_after"]
    if frames.empty:
        return pd.DataFrame(columns=cols)
    span = frames.groupby(["path", "segment"])["frame"].agg(["min", "max"])
    order = span.reset_index().sort_values(["path", "segment"])
    first_seg = order.groupby("path")["segment"].transform("min").to_numpy()
    last_seg = order.groupby("path")["segment"].transform("max").to_numpy()
    bounds = {(p, s): (lo, hi, s > f, s < la) for (p, s, lo, hi), f, la in zip(
        order[["path", "segment", "min", "max"]].itertuples(index=False), first_seg, last_seg)}
    tracked = frames[frames["track"].notna()]
    out = []
    for (path, seg, track), g in tracked.groupby(["path", "segment", "track"], sort=True):
        lo, hi, has_before, has_after = bounds[(path, seg)]
        out.append({"path": path, "segment": int(seg), "track": int(track), "first": float(g["time"].min()),
                    "last": float(g["time"].max()), "frames": int(g["frame"].nunique()),
                    "dominant": g["label"].mode().iloc[0], "cut_before": bool(has_before and g["frame"].min() == lo),
                    "cut_after": bool(has_after and g["frame"].max() == hi)})
    return pd.DataFrame(out, columns=cols)


def _summarize(out: str, items: Sequence[Item], resumed: int, processed: int, seconds: float, startup: float,
               load: float, workers: int, cpus: float) -> Summary:
    import pyarrow.parquet as pq

    from deepfer.files import atomic_open

    rows = read_output(out, ["id", "path", "frame", "time", "segment", "face", "track", "label", "error"])
    keys = rows[["id", "frame", "face"]].astype("string").fillna("")
    duplicated = int(keys.duplicated().sum())
    missing = sorted({it.id for it in items} - set(rows["id"]))
    records = rows.drop_duplicates(["id", "frame"])
    errors = int((records["face"].isna() & records["error"].notna() & (records["error"] != NO_FACE)).sum())
    no_face = int((records["error"] == NO_FACE).sum())
    tracks = track_summary(rows)
    if not tracks.empty and not is_uri(out):
        import pyarrow as pa

        with atomic_open(_join(out, TRACKS)) as f:
            pq.write_table(pa.Table.from_pandas(tracks, preserve_index=False), f)
    return Summary(out, len(items), resumed, processed, len(records), int(rows["face"].notna().sum()), errors,
                   no_face, len(tracks), int((tracks["cut_before"] | tracks["cut_after"]).sum()) if len(tracks) else 0,
                   round(seconds, 3), round(startup, 3), round(load, 3), missing, duplicated, workers, cpus)

