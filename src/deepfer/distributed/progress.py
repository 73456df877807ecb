"""Progress of a distributed run on the driver: the workers tell a small Ray actor (no CPU) what
each batch did, keyed by item id (a batch re-run after a worker died is not counted twice), and
the driver draws a tqdm bar from it: records (images and frames) done / total, rate, time left,
items done / total."""

from __future__ import annotations

import sys
import threading
from typing import Any

__all__ = ["ProgressBoard", "watch"]


class ProgressBoard:
    """Per item id: (records, faces, errors) of the items finished in this run; and the workers'
    busy time. Made a Ray actor with ``ray.remote(num_cpus=0)(ProgressBoard)``."""

    def __init__(self) -> None:
        self.done: dict[str, tuple[int, int, int]] = {}
        self.first: dict[int, float] = {}  # worker process -> when its first batch started (epoch s)
        self.window = [float("inf"), 0.0]  # first batch start, last batch end (epoch s)
        self.cpu = 0.0  # CPU seconds of the workers' batches (a re-run batch counts twice)
        self.workers: dict[int, list[float]] = {}  # worker process -> [batches, seconds in them, CPU seconds]

    def add(self, stats: dict[str, tuple[int, int, int]], worker: int = 0, began: float = 0.0, ended: float = 0.0,
            cpu: float = 0.0) -> None:
        self.done.update(stats)
        self.first.setdefault(worker, began)
        self.window = [min(self.window[0], began), max(self.window[1], ended)]
        self.cpu += cpu
        w = self.workers.setdefault(worker, [0, 0.0, 0.0])
        w[0], w[1], w[2] = w[0] + 1, w[1] + ended - began, w[2] + cpu

    def timing(self) -> dict[str, Any]:
        """``busy``: seconds from the first batch's start to the last one's end (cluster start,
        model loading and the summary excluded); ``cpu``: the workers' CPU seconds in batches;
        ``first_batch``: each worker process's first batch start (epoch seconds); ``workers``: per
        worker process, [batches, seconds in them, CPU seconds in them]."""
        busy = max(0.0, self.window[1] - self.window[0]) if self.first else 0.0
        return {"busy": busy, "cpu": self.cpu, "first_batch": dict(self.first),
                "workers": {k: list(v) for k, v in self.workers.items()}}

    def totals(self) -> tuple[int, int, int, int]:
        """(items, records, faces, errors) so far."""
        recs = faces = errors = 0
        for r, f, e in self.done.values():
            recs, faces, errors = recs + r, faces + f, errors + e
        return len(self.done), recs, faces, errors

    def ids(self) -> list[str]:
        """The ids of the items finished in this run."""
        return list(self.done)


def watch(board: Any, stop: threading.Event, items: int, records: int, show: bool, every: float = 0.5) -> None:
    """Draw the board's totals on stderr until ``stop`` is set (``show`` False: draw nothing).

    Args:
        board: the :class:`ProgressBoard` actor handle.
        stop: set by the driver when the run ends.
        items: items to process in this run.
        records: their estimated records (images + kept frames).
    """
    import ray
    from tqdm import tqdm

    bar = tqdm(total=records, unit="rec", file=sys.stderr, disable=not show, dynamic_ncols=True,
               mininterval=1.0, smoothing=0.1)
    try:
        while True:
            finished = stop.wait(every)
            n, recs, faces, errors = ray.get(board.totals.remote())
            bar.total = max(records, recs)
            bar.n = recs
            bar.set_postfix_str(f"items {n}/{items}, faces {faces}, errors {errors}", refresh=False)
            bar.refresh()
            if finished:
                break
    finally:
        bar.close()
