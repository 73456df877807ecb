"""Scale-out: ``deepfer predict PATHS --engine ray --out results.parquet`` and
:func:`predict_dataset` run a corpus of images and videos on a Ray cluster (a local one by
default) through Ray Data, into Parquet, resumable (``--resume``), with nothing lost or repeated
when a worker dies. Needs the ``distributed`` extra: ``pip install -e '.[distributed]'``.

Modules: :mod:`~deepfer.distributed.manifest` (the work items and their ids),
:mod:`~deepfer.distributed.worker` (what each actor runs), :mod:`~deepfer.distributed.engine`
(the pipeline, resume, summary), :mod:`~deepfer.distributed.progress` (the driver's progress bar),
:mod:`~deepfer.distributed.fetch` (inputs named by URI). Only ``engine`` imports Ray.
"""

from deepfer.distributed.engine import Summary, checkpointed_ids, predict_dataset, read_output, track_summary
from deepfer.distributed.manifest import Item, build_manifest, parse_duration

__all__ = ["Item", "Summary", "build_manifest", "checkpointed_ids", "parse_duration", "predict_dataset",
           "read_output", "track_summary"]
