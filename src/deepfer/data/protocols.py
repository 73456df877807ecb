"""Named, seeded evaluation protocols: each turns a FaceData into train / val / test indices.

Every split is also checked, by measurement, for what leaks between train and test: shared
subjects, shared near-duplicate groups (CK+ sequences) and pixel-identical images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from deepfer.data.faces import FaceData
from deepfer.errors import ProtocolError


@dataclass(frozen=True)
class Fold:
    """One train / val / test assignment (index arrays into the FaceData)."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def parts(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class Split:
    """The folds of a protocol (one fold for fixed splits) and what the protocol admits to."""

    dataset: str
    protocol: str
    folds: list[Fold]
    description: str
    warnings: list[str] = field(default_factory=list)

    @property
    def is_kfold(self) -> bool:
        return len(self.folds) > 1


ProtocolFn = Callable[[FaceData, int], Split]
PROTOCOLS: dict[tuple[str, str], ProtocolFn] = {}


def register(dataset: str, name: str) -> Callable[[ProtocolFn], ProtocolFn]:
    def wrap(fn: ProtocolFn) -> ProtocolFn:
        PROTOCOLS[(dataset, name)] = fn
        return fn

    return wrap


def list_protocols(dataset: str | None = None) -> list[str]:
    return sorted(n for d, n in PROTOCOLS if dataset in (None, d))


def split(data: FaceData, protocol: str, seed: int = 0) -> Split:
    """Apply a named protocol to ``data``; the leak checks are added as warnings."""
    fn = PROTOCOLS.get((data.name, protocol))
    if fn is None:
        raise ProtocolError(
            f"no protocol {protocol!r} for {data.name}; choose one of "
            f"{', '.join(list_protocols(data.name)) or 'none'}"
        )
    try:
        result = fn(data, seed)
    except ProtocolError as exc:
        raise ProtocolError(f"{data.name}/{protocol}: {exc}") from None
    for fold in result.folds:
        for part, idx in fold.parts().items():
            if len(idx) == 0 and part != "val":
                raise ProtocolError(f"{data.name}/{protocol} fold {fold.name}: empty {part} split")
    leaks = leak_report(data, result)
    warnings = list(result.warnings)
    if leaks["subjects"] and data.name not in ("fer2013", "ferplus"):
        warnings.append(
            f"{leaks['subjects']} subject(s) appear in both train and test of some fold: "
            "accuracy is not subject-independent"
        )
    if leaks["groups"]:
        warnings.append(
            f"{leaks['groups']} near-identical frame group(s) (same sequence) are in both train "
            "and test of some fold"
        )
    if leaks["duplicates"]:
        warnings.append(
            f"{leaks['duplicates']} test image(s) have a pixel-identical copy in train"
        )
    return Split(result.dataset, result.protocol, result.folds, result.description, warnings)


def leak_report(data: FaceData, result: Split) -> dict[str, int]:
    """Largest number, over folds, of subjects / groups / images shared by train and test."""
    out = {"subjects": 0, "groups": 0, "duplicates": 0}
    for fold in result.folds:
        train, test = fold.train, fold.test
        out["subjects"] = max(out["subjects"], len(set(data.subjects[train]) & set(data.subjects[test])))
        if data.groups is not None:
            out["groups"] = max(out["groups"], len(set(data.groups[train]) & set(data.groups[test])))
        in_train = np.isin(data.hashes[test], data.hashes[train])
        out["duplicates"] = max(out["duplicates"], int(in_train.sum()))
    return out


def _where(data: FaceData, *splits: str) -> np.ndarray:
    return np.flatnonzero(np.isin(data.splits, splits))


def _stratified(idx: np.ndarray, labels: np.ndarray, size: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split  # lazy: inference never needs it

    try:
        a, b = train_test_split(idx, test_size=size, stratify=labels[idx], random_state=seed)
    except ValueError as exc:
        raise ProtocolError(
            f"cannot draw a class-stratified split of {len(idx)} images ({' '.join(str(exc).split())})"
        ) from None
    return np.sort(a), np.sort(b)


def _official(data: FaceData, seed: int, protocol: str) -> Split:
    train = _where(data, "Training")
    val, test = _where(data, "PublicTest"), _where(data, "PrivateTest")
    warnings = []
    if len(test) == 0 and len(_where(data, "Test")):
        # image folders without Usage prefixes: PublicTest and PrivateTest are mixed in test/
        test = _where(data, "Test")
        warnings.append("the test folder mixes PublicTest and PrivateTest (no file-name prefixes)")
    if len(val) == 0:
        train, val = _stratified(train, data.labels, 0.1, seed)
        warnings.append("no PublicTest in the data: validation is a seeded 10% of Training")
    return Split(
        data.name, protocol,
        [Fold("official", train, val, test)],
        "train = Training, val = PublicTest (model selection), test = PrivateTest",
        warnings,
    )


@register("fer2013", "official")
def fer2013_official(data: FaceData, seed: int) -> Split:
    return _official(data, seed, "official")


@register("ferplus", "official")
def ferplus_official(data: FaceData, seed: int) -> Split:
    return _official(data, seed, "official")


@register("fer2013", "balanced")
def fer2013_balanced(data: FaceData, seed: int) -> Split:
    """DeepFER's class-balanced subset: 400 train + 30 val per class from Training, 100 test
    per class from the test folder (PublicTest + PrivateTest), drawn at random."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    pool_train = _where(data, "Training")
    pool_test = _where(data, "PublicTest", "PrivateTest", "Test")
    for c in data.present_classes():
        tr = rng.permutation(pool_train[data.labels[pool_train] == c])
        te = rng.permutation(pool_test[data.labels[pool_test] == c])
        if len(tr) < 430 or len(te) < 100:
            raise ProtocolError(
                f"needs 430 Training and 100 test images per class; class {c} "
                f"has {len(tr)} and {len(te)}"
            )
        train.append(tr[:400]), val.append(tr[400:430]), test.append(te[:100])
    return Split(
        data.name, "balanced",
        [Fold("balanced", *(np.sort(np.concatenate(x)) for x in (train, val, test)))],
        "DeepFER's balanced subset: 400 train + 30 val per class from Training, 100 test per "
        "class from PublicTest + PrivateTest",
    )


def _subject_kfold(data: FaceData, k: int, seed: int, protocol: str) -> Split:
    """Stratified k-fold on subjects; validation = a seeded ~1/(k-1) of the training subjects."""
    n_subjects = len(np.unique(data.subjects))
    if n_subjects < k:
        raise ProtocolError(f"needs at least {k} subjects, found {n_subjects}")
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    folds = []
    outer = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (train, test) in enumerate(outer.split(data.images, data.labels, data.subjects)):
        inner = GroupShuffleSplit(n_splits=1, test_size=1.0 / (k - 1), random_state=seed + i)
        tr, va = next(inner.split(train, groups=data.subjects[train]))
        folds.append(Fold(f"fold{i}", np.sort(train[tr]), np.sort(train[va]), np.sort(test)))
    return Split(
        data.name, protocol, folds,
        f"{k} folds stratified by class, no subject in two folds; validation subjects are held "
        "out of each fold's training part",
    )


def _random_split(data: FaceData, sizes: tuple[float, float, float], seed: int, protocol: str, what: str) -> Split:
    idx = np.arange(len(data))
    n = len(idx)
    n_test = int(round(sizes[2] * n))
    n_val = int(round(sizes[1] * n))
    rest, test = _stratified(idx, data.labels, n_test, seed)
    train, val = _stratified(rest, data.labels, n_val, seed + 1)
    return Split(
        data.name, protocol, [Fold("random", train, val, test)],
        f"the papers' random split ({what}), stratified by class",
        ["random image-level split, as in the papers: the same person (or near-identical "
         "frames) can be in train and test; not a subject-independent result"],
    )


@register("ckplus", "subject-10fold")
def ckplus_subject_10fold(data: FaceData, seed: int) -> Split:
    return _subject_kfold(data, 10, seed, "subject-10fold")


@register("ckplus", "random")
def ckplus_random(data: FaceData, seed: int) -> Split:
    return _random_split(data, (0.7, 0.1, 0.2), seed, "random", "70/10/20")


@register("jaffe", "loso")
def jaffe_loso(data: FaceData, seed: int) -> Split:
    """Leave one subject out; the next subject in order validates (model selection)."""
    subjects = np.unique(data.subjects)
    if len(subjects) < 3:
        raise ProtocolError(f"needs at least 3 subjects, found {len(subjects)}")
    from sklearn.model_selection import LeaveOneGroupOut

    folds = []
    for train_val, test in LeaveOneGroupOut().split(data.images, data.labels, data.subjects):
        held = data.subjects[test[0]]
        val_subject = subjects[(np.searchsorted(subjects, held) + 1) % len(subjects)]
        is_val = data.subjects[train_val] == val_subject
        folds.append(Fold(str(held), train_val[~is_val], train_val[is_val], test))
    return Split(
        data.name, "loso", folds,
        "leave one subject out (one fold per subject); the next subject is the validation set",
    )


@register("jaffe", "random")
def jaffe_random(data: FaceData, seed: int) -> Split:
    # 120/23/70 of JAFFE's 213 images; the same fractions on any other copy
    return _random_split(data, (120 / 213, 23 / 213, 70 / 213), seed, "random", "Deep-Emotion's 120/23/70")


@register("ferg", "character")
def ferg_character(data: FaceData, seed: int) -> Split:
    """DeepFER's character-disjoint split: train on aia, bonnie, jules, malcolm (10% of it
    validates), test on mery and ray."""
    test = np.flatnonzero(np.isin(data.subjects, ["mery", "ray"]))
    rest = np.flatnonzero(~np.isin(data.subjects, ["mery", "ray"]))
    if len(test) == 0 or len(rest) == 0:
        raise ProtocolError("needs images of mery/ray and of the other characters")
    train, val = _stratified(rest, data.labels, 0.1, seed)
    return Split(
        data.name, "character", [Fold("character", train, val, np.sort(test))],
        "train aia, bonnie, jules, malcolm (10% validates); test mery, ray (unseen characters)",
    )


@register("ferg", "random")
def ferg_random(data: FaceData, seed: int) -> Split:
    n = 34000 + 14000 + 7000
    return _random_split(data, (34000 / n, 14000 / n, 7000 / n), seed, "random",
                         "Deep-Emotion's ~34k/14k/7k proportions")
