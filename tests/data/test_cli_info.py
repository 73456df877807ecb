"""``deepfer data info``: the counts it prints, as JSON and as a table."""

from __future__ import annotations

import json
import re

import pytest
from data_fixtures import Ck48Fixture, Fer2013Fixture, FerplusFixture, JaffeFixture

from deepfer.cli import main

JAFFE_COUNTS = {"angry": 4, "disgust": 4, "fear": 4, "happy": 5, "sad": 4, "surprise": 5, "neutral": 4}


def info_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main([*argv, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 1  # exactly one JSON object
    return json.loads(lines[0])


def info_table(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def row(table: str, label: str) -> list[str]:
    """The cells of the table line that starts with ``label``."""
    (line,) = [ln for ln in table.splitlines() if re.match(rf"{label}\s", ln)]
    return line.split()[1:]


def test_jaffe_loso_json(jaffe_fx: JaffeFixture, capsys: pytest.CaptureFixture[str]) -> None:
    info = info_json(["data", "info", "jaffe", str(jaffe_fx.folder), "--protocol", "loso"], capsys)
    assert info["dataset"] == "jaffe" and info["protocol"] == "loso"
    assert info["images"] == 30 and info["image_size"] == [48, 48] and info["subjects"] == 4
    assert info["splits"] == {"all": JAFFE_COUNTS}  # k-fold: the dataset's own split
    assert info["subject_independent"] is True and info["warnings"] == []
    folds = info["folds"]
    assert [f["name"] for f in folds] == ["KA", "KL", "KM", "NA"]
    tested = []
    for f in folds:
        train, val, test = (set(f[k]) for k in ("train_subjects", "val_subjects", "test_subjects"))
        assert not train & test and not val & test and not train & val
        assert train | val | test == {"KA", "KL", "KM", "NA"}
        assert test == {f["name"]}
        sizes = {p: sum(c.values()) for p, c in f["splits"].items()}
        assert sum(sizes.values()) == 30
        tested += list(test)
    assert sorted(tested) == ["KA", "KL", "KM", "NA"]
    assert [sum(f["splits"]["test"].values()) for f in folds] == [8, 8, 7, 7]
    assert info["duplicates"]["groups"] == 0 and info["duplicates"]["unique_images"] == 30


def test_jaffe_loso_table(jaffe_fx: JaffeFixture, capsys: pytest.CaptureFixture[str]) -> None:
    table = info_table(["data", "info", "jaffe", str(jaffe_fx.folder), "--protocol", "loso"], capsys)
    assert table.startswith(f"jaffe: 30 images of 48x48 from {jaffe_fx.folder}\n")
    assert "subjects: 4" in table
    assert "faces cropped as predict crops them; no face found in 30 (kept whole)" in table  # noise frames
    assert row(table, "class") == ["all"]
    for name, n in JAFFE_COUNTS.items():
        assert row(table, name) == [str(n)]
    assert row(table, "total") == ["30"]
    assert "KA: train 14, val 8, test 8; test subjects KA" in table
    assert "NA: train 15, val 8, test 7; test subjects NA" in table


def test_fer2013_official(fer2013_fx: Fer2013Fixture, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["data", "info", "fer2013", str(fer2013_fx.csv), "--protocol", "official"]
    info = info_json(argv, capsys)
    assert info["subjects"] is None
    one = {c: 1 for c in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")}
    assert info["splits"] == {"train": one, "val": one, "test": one}
    assert info["duplicates"] == {"groups": 1, "images_in_groups": 2, "unique_images": 20,
                                  "groups_across_train_test": 1, "groups_with_conflicting_labels": 1}
    assert info["warnings"] == ["1 test image(s) have a pixel-identical copy in train"]
    table = info_table(argv, capsys)
    assert row(table, "class") == ["train", "val", "test"]
    assert row(table, "total") == ["7", "7", "7"]
    assert "duplicates: 1 groups of pixel-identical images (2 images), 1 across train/test, " \
           "1 with conflicting labels" in table
    assert "warning: 1 test image(s) have a pixel-identical copy in train" in table


def test_fer2013_without_protocol_and_size(fer2013_fx: Fer2013Fixture,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    info = info_json(["data", "info", "fer2013", str(fer2013_fx.tar_gz), "--size", "64"], capsys)
    assert info["image_size"] == [64, 64] and info["format"] == "image-folder"
    assert list(info["splits"]) == ["Training", "PublicTest", "PrivateTest"]
    assert all(sum(c.values()) == 7 for c in info["splits"].values())
    assert "protocol" not in info and "folds" not in info


@pytest.mark.parametrize(("mode", "kept", "dropped"), [
    ("majority", {"Training": 4, "PublicTest": 2, "PrivateTest": 2},
     {"Training": 3, "PublicTest": 1, "PrivateTest": 0}),
    ("soft", {"Training": 5, "PublicTest": 2, "PrivateTest": 2},
     {"Training": 2, "PublicTest": 1, "PrivateTest": 0}),
])
def test_ferplus_label_modes(ferplus_fx: FerplusFixture, capsys: pytest.CaptureFixture[str],
                             mode: str, kept: dict, dropped: dict) -> None:
    info = info_json(["data", "info", "ferplus", str(ferplus_fx.folder), "--labels", mode], capsys)
    assert info["label_mode"] == mode
    assert info["images_found"] == {"Training": 7, "PublicTest": 3, "PrivateTest": 2}
    assert info["dropped"] == dropped
    assert {s: sum(c.values()) for s, c in info["splits"].items()} == kept
    assert info["splits"]["Training"]["contempt"] == 1


def test_ferplus_fer2013_csv_option(ferplus_fx: FerplusFixture, capsys: pytest.CaptureFixture[str]) -> None:
    info = info_json(["data", "info", "ferplus", str(ferplus_fx.folder), "--fer2013-csv",
                      str(ferplus_fx.fer2013_csv)], capsys)
    assert info["images"] == 9
    assert info["images_found"] == {"Training": 9, "PublicTest": 3, "PrivateTest": 2}


@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
def test_ckplus_subject_10fold(ck48_fx: Ck48Fixture, capsys: pytest.CaptureFixture[str]) -> None:
    info = info_json(["data", "info", "ckplus", str(ck48_fx.zip), "--protocol", "subject-10fold",
                      "--seed", "1"], capsys)
    assert info["images"] == 72 and info["subjects"] == 12 and info["format"] == "CK+48"
    assert info["splits"] == {"all": {"angry": 12, "disgust": 12, "fear": 9, "happy": 9, "sad": 9,
                                      "surprise": 9, "contempt": 12}}
    assert len(info["folds"]) == 10
    all_test = [s for f in info["folds"] for s in f["test_subjects"]]
    assert sorted(all_test) == ck48_fx.subjects  # every subject tested exactly once
    for f in info["folds"]:
        assert not set(f["train_subjects"]) & set(f["test_subjects"])
        assert not set(f["val_subjects"]) & set(f["test_subjects"])


def test_ckplus_random_reports_leaks(ck48_fx: Ck48Fixture, capsys: pytest.CaptureFixture[str]) -> None:
    info = info_json(["data", "info", "ckplus", str(ck48_fx.folder), "--protocol", "random"], capsys)
    assert info["subject_independent"] is False
    assert {p: sum(c.values()) for p, c in info["splits"].items()} == {"train": 51, "val": 7, "test": 14}
    assert any("random image-level split" in w for w in info["warnings"])
