"""Named protocols: subject-disjoint folds, sizes, seeds, leak warnings and duplicate counts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from data_fixtures import Ck48Fixture, Fer2013Fixture, FergFixture, FerplusFixture, JaffeFixture

from deepfer.data import (
    FaceData,
    duplicate_report,
    list_protocols,
    load_ckplus,
    load_fer2013,
    load_ferg,
    load_ferplus,
    load_jaffe,
    split,
)
from deepfer.data.protocols import Split, leak_report
from deepfer.errors import ProtocolError
from deepfer.labels import EMOTIONS

SUBJECT_LEAK = "subject(s) appear in both train and test"
RANDOM_LEAK = "random image-level split"
GROUP_LEAK = "near-identical frame group(s)"
# the CK+ fixture has 9 images in some classes: sklearn warns that is fewer than 10 folds
tiny_classes = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")


def synthetic(name: str, labels: list[int], subjects: list[str], splits: list[str],
              side: int = 4) -> FaceData:
    """A FaceData of tiny images whose pixels encode the sample index (all distinct)."""
    images = [np.full((side, side), 0, np.uint8) for _ in labels]
    for i, im in enumerate(images):
        im.flat[:4] = np.frombuffer(np.uint32(i).tobytes(), np.uint8)
    return FaceData.from_lists(name, images, labels, subjects, splits, [f"x{i}" for i in range(len(labels))])


def fold_sets(s: Split) -> list[tuple[tuple[int, ...], ...]]:
    return [tuple(tuple(idx.tolist()) for idx in f.parts().values()) for f in s.folds]


def check_partition(s: Split, n: int) -> None:
    """Each fold splits all n samples into disjoint train/val/test; the test parts of k folds
    together cover every sample exactly once."""
    for f in s.folds:
        parts = [f.train, f.val, f.test]
        assert sum(len(p) for p in parts) == n
        assert sorted(np.concatenate(parts).tolist()) == list(range(n))
    if s.is_kfold:
        tests = np.concatenate([f.test for f in s.folds])
        assert sorted(tests.tolist()) == list(range(n))


def check_subject_disjoint(data: FaceData, s: Split) -> None:
    for f in s.folds:
        tr, va, te = (set(data.subjects[p].tolist()) for p in (f.train, f.val, f.test))
        assert not tr & va and not tr & te and not va & te, f.name
        if data.groups is not None:
            gtr, gte = set(data.groups[f.train].tolist()), set(data.groups[f.test].tolist())
            assert not gtr & gte


# --------------------------------------------------------------------------------------------
# subject-independent protocols


@tiny_classes
def test_ckplus_subject_10fold(ck48_fx: Ck48Fixture) -> None:
    data = load_ckplus(ck48_fx.folder)
    s = split(data, "subject-10fold", seed=0)
    assert s.dataset == "ckplus" and s.protocol == "subject-10fold"
    assert len(s.folds) == 10 and s.is_kfold
    check_partition(s, len(data))
    check_subject_disjoint(data, s)
    for f in s.folds:
        assert len(f.val) > 0 and len(f.test) > 0
        # whole sequences only: every group sits in one part with its 3 frames
        for part in f.parts().values():
            assert set(Counter(data.groups[part].tolist()).values()) <= {3}
    # 12 subjects in 10 folds: 8 folds hold 1 subject, 2 hold 2
    per_fold = sorted(len(set(data.subjects[f.test].tolist())) for f in s.folds)
    assert per_fold == [1] * 8 + [2] * 2
    assert s.warnings == []
    assert leak_report(data, s) == {"subjects": 0, "groups": 0, "duplicates": 0}


@tiny_classes
def test_ckplus_subject_10fold_seeds(ck48_fx: Ck48Fixture) -> None:
    data = load_ckplus(ck48_fx.folder)
    a, b = split(data, "subject-10fold", seed=3), split(data, "subject-10fold", seed=3)
    assert fold_sets(a) == fold_sets(b)
    assert fold_sets(a) != fold_sets(split(data, "subject-10fold", seed=4))


def test_ckplus_subject_10fold_needs_10_subjects(ck48_fx: Ck48Fixture) -> None:
    data = load_ckplus(ck48_fx.folder)
    few = data.subset(np.flatnonzero(np.isin(data.subjects, ck48_fx.subjects[:9])))
    with pytest.raises(ProtocolError, match="at least 10 subjects, found 9"):
        split(few, "subject-10fold")


def test_jaffe_loso(jaffe_fx: JaffeFixture) -> None:
    data = load_jaffe(jaffe_fx.folder)
    s = split(data, "loso")
    assert [f.name for f in s.folds] == ["KA", "KL", "KM", "NA"]
    check_partition(s, len(data))
    check_subject_disjoint(data, s)
    order = ["KA", "KL", "KM", "NA"]
    for k, f in enumerate(s.folds):
        assert set(data.subjects[f.test].tolist()) == {order[k]}
        assert set(data.subjects[f.val].tolist()) == {order[(k + 1) % 4]}  # the next subject
        assert set(data.subjects[f.train].tolist()) == set(order) - {order[k], order[(k + 1) % 4]}
    assert [len(f.test) for f in s.folds] == [8, 8, 7, 7]
    assert s.warnings == []


def test_jaffe_loso_needs_three_subjects(jaffe_fx: JaffeFixture) -> None:
    data = load_jaffe(jaffe_fx.folder)
    with pytest.raises(ProtocolError, match="at least 3 subjects"):
        split(data.subset(np.flatnonzero(np.isin(data.subjects, ["KA", "KL"]))), "loso")


def test_ferg_character(ferg_fx: FergFixture) -> None:
    data = load_ferg(ferg_fx.folder)
    s = split(data, "character", seed=0)
    (f,) = s.folds
    check_partition(s, len(data))
    assert set(data.subjects[f.test].tolist()) == {"mery", "ray"}
    assert len(f.test) == 42
    seen = set(data.subjects[np.concatenate([f.train, f.val])].tolist())
    assert seen == {"aia", "bonnie", "jules", "malcolm"}
    assert len(f.val) == 9 and len(f.train) == 75  # 10% of the 84 training images validates
    assert s.warnings == []
    assert split(data, "character", seed=0).folds[0].val.tolist() == f.val.tolist()


def test_ferg_character_needs_mery_and_ray(ferg_fx: FergFixture) -> None:
    data = load_ferg(ferg_fx.folder)
    others = data.subset(np.flatnonzero(~np.isin(data.subjects, ["mery", "ray"])))
    with pytest.raises(ProtocolError, match="needs images of mery/ray"):
        split(others, "character")


# --------------------------------------------------------------------------------------------
# random protocols: allowed, but they must say what leaks


def test_ckplus_random_warns_about_leaks(ck48_fx: Ck48Fixture) -> None:
    data = load_ckplus(ck48_fx.folder)
    s = split(data, "random", seed=0)
    (f,) = s.folds
    check_partition(s, 72)
    assert (len(f.train), len(f.val), len(f.test)) == (51, 7, 14)  # 70/10/20
    text = " ".join(s.warnings)
    assert RANDOM_LEAK in text and SUBJECT_LEAK in text and GROUP_LEAK in text
    leaks = leak_report(data, s)
    assert leaks["subjects"] == len(set(data.subjects[f.train]) & set(data.subjects[f.test])) > 0
    assert f"{leaks['subjects']} {SUBJECT_LEAK}" in text
    assert fold_sets(s) == fold_sets(split(data, "random", seed=0))
    assert fold_sets(s) != fold_sets(split(data, "random", seed=1))


def test_jaffe_random_on_full_size_data() -> None:
    """Deep-Emotion's 120/23/70 on a JAFFE-sized (213 images, 10 subjects) synthetic set."""
    labels = [i % 7 for i in range(213)]
    subjects = [f"S{i % 10}" for i in range(213)]
    data = synthetic("jaffe", labels, subjects, ["all"] * 213)
    s = split(data, "random", seed=0)
    (f,) = s.folds
    check_partition(s, 213)
    assert (len(f.train), len(f.val), len(f.test)) == (120, 23, 70)
    text = " ".join(s.warnings)
    assert RANDOM_LEAK in text and SUBJECT_LEAK in text
    # stratified by class: every class has 10 test images
    assert set(Counter(data.labels[f.test].tolist()).values()) == {10}


def test_jaffe_random_on_a_small_folder(jaffe_fx: JaffeFixture) -> None:
    data = load_jaffe(jaffe_fx.folder)
    try:
        s = split(data, "random", seed=0)
    except ProtocolError:
        return  # refusing with a clear error is fine too
    check_partition(s, len(data))
    assert RANDOM_LEAK in " ".join(s.warnings)


def test_ferg_random_warns(ferg_fx: FergFixture) -> None:
    data = load_ferg(ferg_fx.folder)
    s = split(data, "random", seed=0)
    (f,) = s.folds
    check_partition(s, 126)
    assert (len(f.val), len(f.test)) == (32, 16)  # 14/55 and 7/55 of 126
    text = " ".join(s.warnings)
    assert RANDOM_LEAK in text and SUBJECT_LEAK in text


# --------------------------------------------------------------------------------------------
# FER2013 / FER+


def test_fer2013_official(fer2013_fx: Fer2013Fixture) -> None:
    data = load_fer2013(fer2013_fx.csv)
    s = split(data, "official")
    (f,) = s.folds
    assert f.train.tolist() == list(range(0, 7))  # Training
    assert f.val.tolist() == list(range(7, 14))  # PublicTest
    assert f.test.tolist() == list(range(14, 21))  # PrivateTest
    # row 20 (PrivateTest) repeats row 0 (Training): counted as a leak, no subject warning
    assert s.warnings == ["1 test image(s) have a pixel-identical copy in train"]


def test_fer2013_official_without_usage_prefixes() -> None:
    labels = [c for c in range(7) for _ in range(20)] + [c for c in range(7) for _ in range(10)]
    splits = ["Training"] * 140 + ["Test"] * 70
    data = synthetic("fer2013", labels, [f"x{i}" for i in range(210)], splits)
    s = split(data, "official", seed=0)
    (f,) = s.folds
    assert (len(f.train), len(f.val), len(f.test)) == (126, 14, 70)
    assert f.test.tolist() == list(range(140, 210))
    assert set(Counter(data.labels[f.val].tolist()).values()) == {2}
    assert any("mixes PublicTest and PrivateTest" in w for w in s.warnings)
    assert any("validation is a seeded 10% of Training" in w for w in s.warnings)


def test_fer2013_official_without_prefixes_on_tiny_data() -> None:
    data = synthetic("fer2013", [i % 7 for i in range(14)], [f"x{i}" for i in range(14)],
                     ["Training"] * 7 + ["Test"] * 7)
    try:
        s = split(data, "official")
    except ProtocolError:
        return
    check_partition(s, 14)


def balanced_data() -> FaceData:
    """430 Training + 100 test images per class (tests split over PublicTest and PrivateTest)."""
    labels, splits = [], []
    for c in range(7):
        labels += [c] * 530
        splits += ["Training"] * 430 + ["PublicTest"] * 50 + ["PrivateTest"] * 50
    return synthetic("fer2013", labels, [f"x{i}" for i in range(len(labels))], splits)


def test_fer2013_balanced_sizes() -> None:
    data = balanced_data()
    s = split(data, "balanced", seed=0)
    (f,) = s.folds
    check_partition(s, len(data))
    for part, n in (("train", 400), ("val", 30), ("test", 100)):
        idx = f.parts()[part]
        assert Counter(data.labels[idx].tolist()) == {c: n for c in range(7)}, part
    assert set(data.splits[np.concatenate([f.train, f.val])].tolist()) == {"Training"}
    assert set(data.splits[f.test].tolist()) == {"PublicTest", "PrivateTest"}
    assert s.warnings == []


def test_fer2013_balanced_seeds() -> None:
    data = balanced_data()
    assert fold_sets(split(data, "balanced", seed=7)) == fold_sets(split(data, "balanced", seed=7))
    a, b = split(data, "balanced", seed=7).folds[0], split(data, "balanced", seed=8).folds[0]
    assert a.train.tolist() != b.train.tolist() and a.val.tolist() != b.val.tolist()


def test_fer2013_balanced_needs_enough_data(fer2013_fx: Fer2013Fixture) -> None:
    with pytest.raises(ProtocolError, match="430 Training and 100 test images per class"):
        split(load_fer2013(fer2013_fx.csv), "balanced")


def test_ferplus_official(ferplus_fx: FerplusFixture) -> None:
    data = load_ferplus(ferplus_fx.folder)
    (f,) = split(data, "official").folds
    assert Counter(data.splits[f.train].tolist()) == {"Training": 4}
    assert Counter(data.splits[f.val].tolist()) == {"PublicTest": 2}
    assert Counter(data.splits[f.test].tolist()) == {"PrivateTest": 2}


# --------------------------------------------------------------------------------------------
# names, errors and duplicates


def test_protocol_names() -> None:
    assert list_protocols("fer2013") == ["balanced", "official"]
    assert list_protocols("ferplus") == ["official"]
    assert list_protocols("ckplus") == ["random", "subject-10fold"]
    assert list_protocols("jaffe") == ["loso", "random"]
    assert list_protocols("ferg") == ["character", "random"]


@pytest.mark.parametrize(("protocol", "valid"), [("loso", "random, subject-10fold"),
                                                 ("subject-1Ofold", "random, subject-10fold")])
def test_unknown_protocol_lists_valid_names(ck48_fx: Ck48Fixture, protocol: str, valid: str) -> None:
    data = load_ckplus(ck48_fx.folder)
    with pytest.raises(ProtocolError, match=f"no protocol '{protocol}' for ckplus; choose one of {valid}$"):
        split(data, protocol)


def test_duplicates_on_the_fer2013_fixture(fer2013_fx: Fer2013Fixture) -> None:
    for path in (fer2013_fx.csv, fer2013_fx.tar_gz):  # JPEGs of equal pixels are equal too
        report = duplicate_report(load_fer2013(path))
        assert report == {"groups": 1, "images_in_groups": 2, "unique_images": 20,
                          "groups_across_train_test": 1, "groups_with_conflicting_labels": 1}


def test_duplicates_counted_across_train_and_test() -> None:
    # A: Training + PrivateTest (same label)    -> spans train/test
    # B: Training x2 (labels 1 and 2)           -> conflicting, train only
    # C: PublicTest x2 + PrivateTest            -> test only
    # D, E: unique
    keys = ["A", "A", "B", "B", "C", "C", "C", "D", "E"]
    labels = [0, 0, 1, 2, 3, 3, 3, 4, 5]
    splits = ["Training", "PrivateTest", "Training", "Training", "PublicTest", "PublicTest",
              "PrivateTest", "Training", "PublicTest"]
    images = [np.full((4, 4), ord(k), np.uint8) for k in keys]
    data = FaceData.from_lists("fer2013", images, labels, [f"x{i}" for i in range(9)], splits,
                               [f"x{i}" for i in range(9)])
    assert duplicate_report(data) == {"groups": 3, "images_in_groups": 7, "unique_images": 5,
                                      "groups_across_train_test": 1,
                                      "groups_with_conflicting_labels": 1}
    s = split(data, "official")
    # under the protocol PublicTest is validation: only A's PrivateTest copy is a train/test leak
    assert leak_report(data, s)["duplicates"] == 1
    assert s.warnings == ["1 test image(s) have a pixel-identical copy in train"]
    assert duplicate_report(data, s)["groups_across_train_test"] == 1
    assert EMOTIONS[data.labels[1]] == "angry"
