"""Counts per split and class, subjects and duplicate groups: what ``deepfer data info`` shows."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from deepfer.data.faces import FaceData
from deepfer.data.protocols import Split
from deepfer.labels import EMOTIONS


def class_counts(data: FaceData, index: np.ndarray | None = None) -> dict[str, int]:
    """``{emotion: count}`` over the classes present in ``data`` (zeros included)."""
    labels = data.labels if index is None else data.labels[index]
    counts = np.bincount(labels, minlength=len(EMOTIONS))
    return {EMOTIONS[c]: int(counts[c]) for c in data.present_classes()}


def duplicate_report(data: FaceData, split: Split | None = None) -> dict[str, int]:
    """Groups of pixel-identical images, and how many span train/test or disagree on labels.

    Without a protocol, "spanning" means the dataset's own splits (e.g. Training vs the tests).
    """
    groups: dict[int, list[int]] = defaultdict(list)
    for i, h in enumerate(data.hashes.tolist()):
        groups[h].append(i)
    dup = [g for g in groups.values() if len(g) > 1]
    side = np.full(len(data), "", dtype=object)
    if split is not None:
        fold = split.folds[0]
        side[fold.train], side[fold.val], side[fold.test] = "train", "val", "test"
    else:
        side[:] = np.where(np.isin(data.splits, ["Training", "all"]), "train", "test")
    spanning = sum(1 for g in dup if {"train", "test"} <= set(side[g]))
    conflicting = sum(1 for g in dup if len(set(data.labels[g].tolist())) > 1)
    return {
        "groups": len(dup),
        "images_in_groups": sum(len(g) for g in dup),
        "unique_images": len(groups),
        "groups_across_train_test": spanning,
        "groups_with_conflicting_labels": conflicting,
    }


def describe(data: FaceData, split: Split | None = None) -> dict[str, Any]:
    """The JSON-able summary of a dataset, optionally under a protocol."""
    info: dict[str, Any] = {
        "dataset": data.name,
        "source": data.meta.get("source"),
        "images": len(data),
        "image_size": list(data.image_size),
        "classes": [EMOTIONS[c] for c in data.present_classes()],
        "subjects": int(len(np.unique(data.subjects))) if data.name not in ("fer2013", "ferplus") else None,
    }
    for key in ("label_mode", "images_found", "dropped", "format", "crop", "uncropped"):
        if key in data.meta:
            info[key] = data.meta[key]
    if split is None or split.is_kfold:
        info["splits"] = {
            s: class_counts(data, np.flatnonzero(data.splits == s)) for s in _ordered(data.splits)
        }
    else:
        info["splits"] = {p: class_counts(data, idx) for p, idx in split.folds[0].parts().items()}
    if split is not None:
        info["protocol"] = split.protocol
        info["description"] = split.description
        info["subject_independent"] = not any("subject" in w or "random" in w for w in split.warnings)
        info["warnings"] = split.warnings
        if split.is_kfold:
            info["folds"] = [
                {
                    "name": f.name,
                    "splits": {p: class_counts(data, idx) for p, idx in f.parts().items()},
                    "train_subjects": sorted(set(data.subjects[f.train].tolist())),
                    "val_subjects": sorted(set(data.subjects[f.val].tolist())),
                    "test_subjects": sorted(set(data.subjects[f.test].tolist())),
                }
                for f in split.folds
            ]
    info["duplicates"] = duplicate_report(data, None if split is None or split.is_kfold else split)
    return info


def _ordered(splits: np.ndarray) -> list[str]:
    order = ["Training", "PublicTest", "PrivateTest", "Test", "all"]
    present = set(splits.tolist())
    return [s for s in order if s in present] + sorted(present - set(order))


def format_data_summary(info: dict[str, Any]) -> str:
    """The text ``deepfer data info`` prints for a :func:`describe` summary."""
    classes = info["classes"]
    width = max(len(c) for c in [*classes, "split"]) + 1
    lines = [f"{info['dataset']}: {info['images']} images of {info['image_size'][0]}x"
             f"{info['image_size'][1]} from {info['source']}"]
    if info.get("subjects"):
        lines.append(f"subjects: {info['subjects']}")
    if info.get("crop") == "face":
        lines.append(f"faces cropped as predict crops them; no face found in {info['uncropped']} (kept whole)")
    if "protocol" in info:
        lines.append(f"protocol {info['protocol']}: {info['description']}")
    names = list(info["splits"])
    head = "class".ljust(width) + "".join(n.rjust(12) for n in names)
    lines += ["", head]
    for c in classes:
        lines.append(c.ljust(width) + "".join(str(info["splits"][n][c]).rjust(12) for n in names))
    lines.append("total".ljust(width) + "".join(str(sum(info["splits"][n].values())).rjust(12) for n in names))
    for f in info.get("folds", []):
        sizes = ", ".join(f"{p} {sum(c.values())}" for p, c in f["splits"].items())
        lines.append(f"{f['name']}: {sizes}; test subjects {', '.join(f['test_subjects'][:12])}"
                     + (" ..." if len(f["test_subjects"]) > 12 else ""))
    if "dropped" in info:
        lines.append(f"images found {info['images_found']}, dropped by label mode "
                     f"{info['label_mode']!r}: {info['dropped']}")
    d = info["duplicates"]
    lines.append(
        f"\nduplicates: {d['groups']} groups of pixel-identical images ({d['images_in_groups']} "
        f"images), {d['groups_across_train_test']} across train/test, "
        f"{d['groups_with_conflicting_labels']} with conflicting labels"
    )
    for w in info.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)
