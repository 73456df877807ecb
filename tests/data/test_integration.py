"""The readers on the real datasets in ../shared/data: counts equal the verified tables of each
folder's README. Uses the default on-disk cache (the first run decodes ~70k images, ~25 s)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import SHARED, USAGES, fer2013_line
from PIL import Image

from deepfer.cli import main
from deepfer.data import (
    FaceData,
    duplicate_report,
    load_ckplus,
    load_fer2013,
    load_ferplus,
    load_jaffe,
    split,
)
from deepfer.data.faces import pixel_hash
from deepfer.errors import DataError
from deepfer.labels import EMOTIONS, FER7

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not SHARED.is_dir(), reason=f"real datasets not available: {SHARED} is missing"),
]

FER2013_IMAGES = SHARED / "fer2013" / "fer2013_images.tar.gz"
ROW_MAP = SHARED / "fer2013" / "fer2013_row_map.csv.gz"
FERPLUS = SHARED / "ferplus"
FERPLUS_IMAGES = FERPLUS / "ferplus_images.tar.gz"
CK48 = SHARED / "ckplus" / "CK+48"
JAFFE = SHARED / "jaffe" / "jaffe"


def need(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"real data not available: {', '.join(missing)} missing")


def names(data: FaceData) -> list[str]:
    return [EMOTIONS[i] for i in data.labels]


# --------------------------------------------------------------------------------------------
# FER2013 image folders (fer2013/README.md)

# emotion: (Training, PublicTest, PrivateTest)
FER2013_TABLE = {
    "angry": (3995, 467, 491),
    "disgust": (436, 56, 55),
    "fear": (4097, 496, 528),
    "happy": (7215, 895, 879),
    "sad": (4830, 653, 594),
    "surprise": (3171, 415, 416),
    "neutral": (4965, 607, 626),
}


@pytest.fixture(scope="module")
def fer2013() -> FaceData:
    need(FER2013_IMAGES)
    return load_fer2013(FER2013_IMAGES)


def test_fer2013_counts_per_split_and_class(fer2013: FaceData) -> None:
    assert len(fer2013) == 35_887 and fer2013.images.shape[1:] == (48, 48)
    counts = Counter(zip(fer2013.splits.tolist(), names(fer2013)))
    expected = {(u, c): n[k] for c, n in FER2013_TABLE.items() for k, u in enumerate(USAGES)}
    assert counts == expected
    assert Counter(fer2013.splits.tolist()) == {"Training": 28_709, "PublicTest": 3_589, "PrivateTest": 3_589}


def test_fer2013_duplicates(fer2013: FaceData) -> None:
    assert duplicate_report(fer2013) == {
        "groups": 1_516, "images_in_groups": 3_369, "unique_images": 34_034,
        "groups_across_train_test": 531, "groups_with_conflicting_labels": 57,
    }


def test_fer2013_protocols(fer2013: FaceData) -> None:
    (f,) = split(fer2013, "official").folds
    assert (len(f.train), len(f.val), len(f.test)) == (28_709, 3_589, 3_589)
    (b,) = split(fer2013, "balanced", seed=0).folds  # disgust has 436 Training and 111 test images
    assert Counter(fer2013.labels[b.train].tolist()) == {c: 400 for c in range(7)}
    assert Counter(fer2013.labels[b.val].tolist()) == {c: 30 for c in range(7)}
    assert Counter(fer2013.labels[b.test].tolist()) == {c: 100 for c in range(7)}


# --------------------------------------------------------------------------------------------
# a fer2013.csv rebuilt from the lossless FER+ PNGs and the row map

REBUILT_PER_USAGE = 1_000
PNG_FOLDER = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}


@dataclass(frozen=True)
class Rebuilt:
    csv: Path
    rows: list[dict[str, str]]  # the row-map lines used, in CSV order
    pixels: np.ndarray  # (N, 48, 48) from the PNGs, decoded with Pillow


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Rebuilt:
    """The first 1,000 rows of each Usage that have a PNG and an unambiguous label, written as
    ``emotion,pixels,Usage`` lines (reads the FER+ archive once, ~5 s)."""
    need(ROW_MAP, FERPLUS_IMAGES)
    with gzip.open(ROW_MAP, "rt", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["row", "Usage", "ferplus_image_name", "ferplus_png",
                                     "msambare_file", "emotion", "jpeg_png_mae", "label_ambiguous"]
        taken: Counter[str] = Counter()
        rows = []
        for line in reader:
            usage = line["Usage"]
            usable = line["ferplus_png"] == "1" and line["label_ambiguous"] == "0"
            if usable and taken[usage] < REBUILT_PER_USAGE:
                taken[usage] += 1
                rows.append(line)
    wanted = {f"{PNG_FOLDER[r['Usage']]}/{r['ferplus_image_name']}": i for i, r in enumerate(rows)}
    assert len(wanted) == len(rows) == 3 * REBUILT_PER_USAGE
    pixels = np.zeros((len(rows), 48, 48), np.uint8)
    found = 0
    with tarfile.open(FERPLUS_IMAGES, "r:gz") as tf:
        for member in tf:
            i = wanted.get(member.name)
            if i is not None:
                with Image.open(io.BytesIO(tf.extractfile(member).read())) as im:
                    assert im.mode == "L" and im.size == (48, 48)
                    pixels[i] = np.asarray(im)
                found += 1
    assert found == len(rows)
    path = tmp_path_factory.mktemp("rebuilt") / "fer2013_rebuilt.csv"
    with path.open("w") as f:
        f.write("emotion,pixels,Usage\n")
        for r, px in zip(rows, pixels):
            f.write(fer2013_line(r["emotion"], px, r["Usage"]) + "\n")
    return Rebuilt(path, rows, pixels)


def test_rebuilt_csv_loads_with_the_row_map_labels(rebuilt: Rebuilt) -> None:
    data = load_fer2013(rebuilt.csv, use_cache=False)  # a tmp file: keep it out of the user cache
    assert len(data) == 3_000
    assert data.splits.tolist() == [r["Usage"] for r in rebuilt.rows]
    assert data.labels.tolist() == [int(r["emotion"]) for r in rebuilt.rows]
    expected = Counter((r["Usage"], FER7[int(r["emotion"])]) for r in rebuilt.rows)
    assert Counter(zip(data.splits.tolist(), names(data))) == expected
    assert Counter(data.splits.tolist()) == {u: REBUILT_PER_USAGE for u in USAGES}
    np.testing.assert_array_equal(data.images, rebuilt.pixels)  # lossless: pixels equal the PNGs


def test_rebuilt_rows_match_the_jpegs(rebuilt: Rebuilt, fer2013: FaceData) -> None:
    """Each rebuilt row's JPEG (msambare_file) carries the same label and differs from the
    exact pixels by the MAE recorded in the row map (README: at most 1.56 grey levels)."""
    index = {p.split("::", 1)[1]: i for i, p in enumerate(fer2013.paths.tolist())}
    jpeg_rows = np.array([index[r["msambare_file"]] for r in rebuilt.rows])
    assert fer2013.labels[jpeg_rows].tolist() == [int(r["emotion"]) for r in rebuilt.rows]
    assert fer2013.splits[jpeg_rows].tolist() == [r["Usage"] for r in rebuilt.rows]
    mae = np.abs(fer2013.images[jpeg_rows].astype(np.int16) - rebuilt.pixels).mean(axis=(1, 2))
    np.testing.assert_allclose(mae, [float(r["jpeg_png_mae"]) for r in rebuilt.rows], atol=6e-4)
    assert mae.max() <= 1.56 + 6e-4


def test_ferplus_join_refuses_a_partial_csv(rebuilt: Rebuilt) -> None:
    need(FERPLUS / "fer2013new.csv")
    with pytest.raises(DataError, match="3000 rows, but .*fer2013new.csv has 35887"):
        load_ferplus(FERPLUS, fer2013_csv=rebuilt.csv, use_cache=False)


# --------------------------------------------------------------------------------------------
# FER+ (ferplus/README.md)


def ferplus_expected_kept() -> Counter[str]:
    """Images kept per Usage by FER+'s majority rule, computed from the votes alone: a PNG exists
    for every named row except the earlier of a duplicated name; single votes are dropped; the
    top vote must be an emotion with more than half of the remaining votes."""
    with (FERPLUS / "fer2013new.csv").open(newline="") as f:
        lines = list(csv.reader(f))[1:]
    last_row = {(r[0], r[1]): i for i, r in enumerate(lines) if r[1]}
    kept: Counter[str] = Counter()
    for i, r in enumerate(lines):
        if not r[1] or last_row[(r[0], r[1])] != i:
            continue
        votes = [int(v) if int(v) > 1 else 0 for v in r[2:]]
        top = votes.index(max(votes))
        if top < 8 and max(votes) > sum(votes) / 2:
            kept[r[0]] += 1
    return kept


def test_ferplus_majority() -> None:
    need(FERPLUS / "fer2013new.csv", FERPLUS_IMAGES)
    data = load_ferplus(FERPLUS)
    found, dropped = data.meta["images_found"], data.meta["dropped"]
    assert found == {"Training": 28_558, "PublicTest": 3_579, "PrivateTest": 3_573}
    assert data.meta["rows"] == 35_887
    kept = Counter(data.splits.tolist())
    assert {u: kept[u] + dropped[u] for u in USAGES} == found
    assert kept == ferplus_expected_kept()
    np.testing.assert_allclose(data.soft_labels.sum(1), 1.0, rtol=1e-5)
    # fer0033120.png is row 34334's image (10 NF votes), not row 33200's (neutral): dropped
    assert not any(p.endswith("/fer0033120.png") for p in data.paths.tolist())
    i = [p.endswith("FER2013Train/fer0006953.png") for p in data.paths.tolist()].index(True)
    assert EMOTIONS[data.labels[i]] == "neutral"


# --------------------------------------------------------------------------------------------
# CK+48 (ckplus/README.md)

# deepfer class: (images, sequences, subjects)
CK48_TABLE = {
    "angry": (135, 45, 45),
    "contempt": (54, 18, 18),
    "disgust": (177, 59, 59),
    "fear": (75, 25, 25),
    "happy": (207, 69, 69),
    "sad": (84, 28, 28),
    "surprise": (249, 83, 83),
}


@pytest.fixture(scope="module")
def ck48() -> FaceData:
    need(CK48)
    return load_ckplus(CK48)


def test_ck48_counts(ck48: FaceData) -> None:
    assert len(ck48) == 981 and ck48.images.shape[1:] == (48, 48)
    assert len(set(ck48.subjects.tolist())) == 118
    assert len(set(ck48.groups.tolist())) == 327
    assert set(Counter(ck48.groups.tolist()).values()) == {3}  # three frames per sequence
    assert len(set(ck48.hashes.tolist())) == 981  # no two images have identical pixels
    labels = names(ck48)
    for cls, (images, sequences, subjects) in CK48_TABLE.items():
        mask = np.array([lab == cls for lab in labels])
        assert mask.sum() == images, cls
        assert len(set(ck48.groups[mask].tolist())) == sequences, cls
        assert len(set(ck48.subjects[mask].tolist())) == subjects, cls


def test_ck48_subject_10fold(ck48: FaceData) -> None:
    s = split(ck48, "subject-10fold", seed=0)
    assert len(s.folds) == 10 and s.warnings == []
    tests = np.concatenate([f.test for f in s.folds])
    assert sorted(tests.tolist()) == list(range(981))
    for f in s.folds:
        tr, va, te = (set(ck48.subjects[p].tolist()) for p in (f.train, f.val, f.test))
        assert not tr & te and not va & te and not tr & va
        assert len(f.train) + len(f.val) + len(f.test) == 981


def test_cli_json_on_ckplus(capsys: pytest.CaptureFixture[str]) -> None:
    need(CK48)
    assert main(["data", "info", "ckplus", str(CK48), "--json"]) == 0
    out, err = capsys.readouterr()
    info = json.loads(out)
    assert info["images"] == 981 and info["subjects"] == 118
    assert info["splits"] == {"all": {c: n[0] for c, n in CK48_TABLE.items()}}
    assert info["duplicates"]["groups"] == 0


# --------------------------------------------------------------------------------------------
# JAFFE (jaffe/README.md)

JAFFE_CODES = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")
JAFFE_NAME = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral",
              "SA": "sad", "SU": "surprise"}
JAFFE_TABLE = {  # subject: counts in JAFFE_CODES order
    "KA": (3, 3, 4, 4, 3, 3, 3),
    "KL": (3, 4, 3, 3, 3, 3, 3),
    "KM": (3, 2, 3, 4, 3, 4, 3),
    "KR": (3, 3, 3, 2, 3, 3, 3),
    "MK": (3, 3, 3, 3, 3, 3, 3),
    "NA": (3, 3, 3, 3, 3, 3, 3),
    "NM": (3, 2, 3, 3, 3, 3, 3),
    "TM": (3, 3, 3, 3, 3, 3, 3),
    "UY": (3, 3, 3, 3, 3, 3, 3),
    "YM": (3, 3, 4, 3, 3, 3, 3),
}


@pytest.fixture(scope="module")
def jaffe() -> FaceData:
    need(JAFFE)
    return load_jaffe(JAFFE)


def test_jaffe_counts(jaffe: FaceData) -> None:
    assert len(jaffe) == 213 and len(set(jaffe.subjects.tolist())) == 10
    counts = Counter(zip(jaffe.subjects.tolist(), names(jaffe)))
    assert counts == {(s, JAFFE_NAME[code]): n for s, row in JAFFE_TABLE.items()
                      for code, n in zip(JAFFE_CODES, row)}
    totals = Counter(names(jaffe))
    assert [totals[JAFFE_NAME[c]] for c in JAFFE_CODES] == [30, 29, 32, 31, 30, 31, 30]
    assert len(set(jaffe.hashes.tolist())) == 213
    assert jaffe.meta["crop"] == "face" and jaffe.meta["uncropped"] == 0  # Haar finds every face


def test_jaffe_palette_files(jaffe: FaceData) -> None:
    """The 23 palette-mode TIFFs decode to their convert('L') pixels (an identity gray ramp)."""
    palette = []
    for i, p in enumerate(jaffe.paths.tolist()):
        with Image.open(p) as im:
            if im.mode == "P":
                palette.append(Path(p).name)
                gray = np.asarray(im.convert("L"))
                assert np.array_equal(gray, np.asarray(im))  # identity ramp: index = gray level
                assert jaffe.hashes[i] == pixel_hash(gray)
    assert len(palette) == 23
    assert sum(n.startswith("KM.") for n in palette) == 22 and "KA.AN1.39.tiff" in palette


def test_jaffe_loso(jaffe: FaceData, capsys: pytest.CaptureFixture[str]) -> None:
    s = split(jaffe, "loso")
    assert len(s.folds) == 10
    assert [f.name for f in s.folds] == sorted(JAFFE_TABLE)
    for f in s.folds:
        assert set(jaffe.subjects[f.test].tolist()) == {f.name}
        assert len(f.test) == sum(JAFFE_TABLE[f.name])
        assert f.name not in set(jaffe.subjects[np.concatenate([f.train, f.val])].tolist())
    assert main(["data", "info", "jaffe", str(JAFFE), "--protocol", "loso", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert len(info["folds"]) == 10 and info["subjects"] == 10
    assert [sum(f["splits"]["test"].values()) for f in info["folds"]] == [
        sum(JAFFE_TABLE[s]) for s in sorted(JAFFE_TABLE)
    ]
