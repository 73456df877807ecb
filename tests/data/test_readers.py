"""The dataset readers on generated fixtures: counts, labels in deepfer's label space, subjects,
splits, groups, sizes, folder / .zip / .tar.gz equivalence, FER+ label modes and the cache."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import (
    CK_ORIGINAL_SEQUENCES,
    FERPLUS_ROWS,
    FER_FOLDERS,
    Ck48Fixture,
    CkOriginalFixture,
    Fer2013Fixture,
    FergFixture,
    FerplusFixture,
    JaffeFixture,
    decode_like_pil,
    jpeg_bytes,
    random_image,
)
from PIL import Image

import deepfer.data.ckplus
import deepfer.data.fer2013
import deepfer.data.ferplus
import deepfer.data.jaffe
from deepfer.data import (
    FaceData,
    load_ckplus,
    load_dataset,
    load_fer2013,
    load_ferg,
    load_ferplus,
    load_jaffe,
)
from deepfer.data.faces import pixel_hash
from deepfer.errors import DataError
from deepfer.labels import EMOTIONS


def names(data: FaceData) -> list[str]:
    return [EMOTIONS[i] for i in data.labels]


def by_member(data: FaceData, root: Path) -> dict[str, int]:
    """Index of each sample by its name relative to the dataset root (folder or archive; the
    extra top-level ``fer2013/`` of the nested archive removed)."""
    out = {}
    for i, p in enumerate(data.paths.tolist()):
        rel = p.split("::", 1)[1] if "::" in p else Path(p).relative_to(root).as_posix()
        out[rel.removeprefix("fer2013/")] = i
    return out


def boom(*args: object, **kwargs: object) -> None:
    raise AssertionError("decoded again instead of reading the cache")


def assert_same(a: FaceData, b: FaceData) -> None:
    """Same samples in the same order (paths, and the path-derived FER subjects, may differ)."""
    assert a.name == b.name
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    if a.name not in ("fer2013", "ferplus"):
        np.testing.assert_array_equal(a.subjects, b.subjects)
    np.testing.assert_array_equal(a.splits, b.splits)
    np.testing.assert_array_equal(a.hashes, b.hashes)


# --------------------------------------------------------------------------------------------
# FER2013


def test_fer2013_csv_rows(fer2013_fx: Fer2013Fixture) -> None:
    data = load_fer2013(fer2013_fx.csv)
    assert data.name == "fer2013" and len(data) == 21
    assert data.images.shape == (21, 48, 48) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images, fer2013_fx.pixels)
    assert data.labels.tolist() == fer2013_fx.emotions
    assert data.splits.tolist() == fer2013_fx.usages
    assert Counter(data.splits.tolist()) == {"Training": 7, "PublicTest": 7, "PrivateTest": 7}
    assert data.paths.tolist() == [f"{fer2013_fx.csv}#{i}" for i in range(21)]
    assert len(set(data.subjects.tolist())) == 21  # no identities in FER2013: one per image
    # row 20 repeats row 0's pixels, every other row is unique
    assert data.hashes[0] == data.hashes[20]
    assert len(set(data.hashes.tolist())) == 20
    assert data.meta["format"] == "csv"


def test_fer2013_csv_gz_and_kaggle_tarball_equal_plain_csv(fer2013_fx: Fer2013Fixture) -> None:
    plain = load_fer2013(fer2013_fx.csv)
    assert_same(load_fer2013(fer2013_fx.csv_gz), plain)
    kaggle = load_fer2013(fer2013_fx.kaggle_tar_gz)  # fer2013/fer2013.csv inside a .tar.gz
    assert_same(kaggle, plain)
    assert kaggle.paths[3] == f"{fer2013_fx.kaggle_tar_gz}::fer2013/fer2013.csv#3"


@pytest.mark.parametrize("size", [48, 64])
def test_fer2013_size(fer2013_fx: Fer2013Fixture, size: int) -> None:
    data = load_fer2013(fer2013_fx.csv, size=size)
    assert data.images.shape == (21, size, size)
    assert data.image_size == (size, size)
    # the hashes are taken at native size, so they do not depend on ``size``
    assert data.hashes.tolist() == [pixel_hash(p) for p in fer2013_fx.pixels]


def test_fer2013_image_folder_values(fer2013_fx: Fer2013Fixture) -> None:
    data = load_fer2013(fer2013_fx.folder)
    assert len(data) == 21 and data.meta["format"] == "image-folder"
    index = by_member(data, fer2013_fx.folder)
    assert set(index) == set(fer2013_fx.files)
    for name, row in fer2013_fx.files.items():
        i = index[name]
        assert data.labels[i] == fer2013_fx.emotions[row]
        assert data.splits[i] == fer2013_fx.usages[row]  # from the Training_/PublicTest_/... prefix
        np.testing.assert_array_equal(data.images[i], decode_like_pil(fer2013_fx.jpeg[name]))
    counts = Counter(zip(data.splits.tolist(), names(data)))
    assert counts == {(u, c): 1 for u in ("Training", "PublicTest", "PrivateTest") for c in FER_FOLDERS}


@pytest.mark.parametrize("variant", ["zip", "tar_gz", "nested_tar_gz"])
def test_fer2013_archives_equal_folder(fer2013_fx: Fer2013Fixture, variant: str) -> None:
    folder = load_fer2013(fer2013_fx.folder)
    packed = load_fer2013(getattr(fer2013_fx, variant))
    a, b = by_member(folder, fer2013_fx.folder), by_member(packed, fer2013_fx.folder)
    assert set(a) == set(b) == set(fer2013_fx.files)
    order_a = [a[n] for n in sorted(a)]
    order_b = [b[n] for n in sorted(b)]
    np.testing.assert_array_equal(folder.images[order_a], packed.images[order_b])
    np.testing.assert_array_equal(folder.labels[order_a], packed.labels[order_b])
    np.testing.assert_array_equal(folder.splits[order_a], packed.splits[order_b])
    archive = getattr(fer2013_fx, variant)
    assert all(p.startswith(f"{archive}::") for p in packed.paths.tolist())


def test_fer2013_folders_without_prefixes(tmp_path: Path) -> None:
    """Files without Training_/PublicTest_/PrivateTest_ prefixes take the split of their folder."""
    rng = np.random.default_rng(1)
    for folder, emotion, n in [("train", "happy", 2), ("val", "sad", 1), ("test", "fear", 3)]:
        (tmp_path / folder / emotion).mkdir(parents=True)
        for k in range(n):
            (tmp_path / folder / emotion / f"im{k}.jpg").write_bytes(jpeg_bytes(random_image(rng, (48, 48))))
    data = load_fer2013(tmp_path)
    assert Counter(zip(data.splits.tolist(), names(data))) == {
        ("Training", "happy"): 2, ("PublicTest", "sad"): 1, ("Test", "fear"): 3,
    }


# --------------------------------------------------------------------------------------------
# FER+

# deepfer-order vote distributions after single votes are dropped, for the rows kept
FERPLUS_SOFT = {
    0: {"happy": 0.8, "neutral": 0.2},
    1: {"neutral": 0.4, "sad": 0.3, "angry": 0.3},
    5: {"happy": 5 / 7, "surprise": 2 / 7},
    6: {"angry": 1.0},
    7: {"contempt": 0.7, "neutral": 0.3},
    8: {"fear": 1.0},
    9: {"disgust": 0.6, "angry": 0.4},
    10: {"sad": 1.0},
    12: {"neutral": 1.0},
    13: {"angry": 0.75, "sad": 0.25},
}
FERPLUS_LABEL = {0: "happy", 1: "neutral", 5: "happy", 6: "angry", 7: "contempt", 8: "fear",
                 9: "disgust", 10: "sad", 12: "neutral", 13: "angry"}


def soft_vector(row: int) -> np.ndarray:
    v = np.zeros(len(EMOTIONS), np.float32)
    for name, p in FERPLUS_SOFT[row].items():
        v[EMOTIONS.index(name)] = p
    return v


def ferplus_rows(data: FaceData, fx: FerplusFixture) -> list[int]:
    """The FER+ row of each sample, from its PNG path or its fer2013.csv#row path."""
    row_of_png = {rel: row for row, rel in fx.png_of_row.items()}
    rows = []
    for p in data.paths.tolist():
        if "#" in p:
            rows.append(int(p.rsplit("#", 1)[1]))
        else:
            rel = p.split("::", 1)[1] if "::" in p else Path(p).relative_to(fx.folder).as_posix()
            rows.append(row_of_png[rel])
    return rows


def check_ferplus(data: FaceData, fx: FerplusFixture, rows: list[int]) -> None:
    assert ferplus_rows(data, fx) == rows
    assert names(data) == [FERPLUS_LABEL[r] for r in rows]
    assert data.splits.tolist() == [FERPLUS_ROWS[r][0] for r in rows]
    np.testing.assert_array_equal(data.images, fx.pixels[rows])
    assert data.soft_labels is not None and data.soft_labels.shape == (len(rows), 8)
    np.testing.assert_allclose(data.soft_labels.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(data.soft_labels, np.stack([soft_vector(r) for r in rows]), atol=1e-6)


def test_ferplus_majority(ferplus_fx: FerplusFixture) -> None:
    data = load_ferplus(ferplus_fx.folder)
    # dropped: 1 (no majority), 2 (unknown), 4 (NF), 11 (only single votes); 3 has no name and
    # 6's PNG was overwritten by row 8 (same name): neither is found at all
    check_ferplus(data, ferplus_fx, [0, 5, 7, 8, 9, 10, 12, 13])
    assert data.meta["label_mode"] == "majority"
    assert data.meta["rows"] == 14
    assert data.meta["images_found"] == {"Training": 7, "PublicTest": 3, "PrivateTest": 2}
    assert data.meta["dropped"] == {"Training": 3, "PublicTest": 1, "PrivateTest": 0}
    found, dropped = data.meta["images_found"], data.meta["dropped"]
    kept = Counter(data.splits.tolist())
    assert all(kept[u] + dropped[u] == found[u] for u in found)


def test_ferplus_duplicated_name_belongs_to_later_row(ferplus_fx: FerplusFixture) -> None:
    data = load_ferplus(ferplus_fx.folder)
    i = [p.endswith("FER2013Train/fer0000006.png") for p in data.paths.tolist()].index(True)
    assert names(data)[i] == "fear"  # row 8's votes, not row 6's anger
    np.testing.assert_array_equal(data.images[i], ferplus_fx.pixels[8])


def test_ferplus_soft(ferplus_fx: FerplusFixture) -> None:
    data = load_ferplus(ferplus_fx.folder, labels="soft")
    # row 1 (no majority, top vote neutral) comes back; unknown / NF / all-single rows stay out
    check_ferplus(data, ferplus_fx, [0, 1, 5, 7, 8, 9, 10, 12, 13])
    assert data.meta["label_mode"] == "soft"
    assert data.meta["dropped"] == {"Training": 2, "PublicTest": 1, "PrivateTest": 0}
    # labels are the arg-max of the distributions
    np.testing.assert_array_equal(data.labels, data.soft_labels.argmax(1))


def test_ferplus_archive_and_votes_file_path_equal_folder(ferplus_fx: FerplusFixture) -> None:
    folder = load_ferplus(ferplus_fx.folder)
    for other in (load_ferplus(ferplus_fx.archived),
                  load_ferplus(ferplus_fx.folder / "fer2013new.csv", use_cache=False)):
        assert_same(other, folder)
        np.testing.assert_array_equal(other.soft_labels, folder.soft_labels)
        assert other.meta["images_found"] == folder.meta["images_found"]
    assert load_ferplus(ferplus_fx.archived).paths[0] == (
        f"{ferplus_fx.archived / 'ferplus_images.tar.gz'}::FER2013Train/fer0000000.png"
    )


@pytest.mark.parametrize(
    ("mode", "rows", "dropped"),
    [
        # with the CSV every row has pixels: 3 (NF) and 6 (anger) are found too
        ("majority", [0, 5, 6, 7, 8, 9, 10, 12, 13], {"Training": 4, "PublicTest": 1, "PrivateTest": 0}),
        ("soft", [0, 1, 5, 6, 7, 8, 9, 10, 12, 13], {"Training": 3, "PublicTest": 1, "PrivateTest": 0}),
    ],
)
def test_ferplus_joined_with_fer2013_csv(ferplus_fx: FerplusFixture, mode: str, rows: list[int],
                                         dropped: dict[str, int]) -> None:
    data = load_ferplus(ferplus_fx.folder, labels=mode, fer2013_csv=ferplus_fx.fer2013_csv)
    check_ferplus(data, ferplus_fx, rows)
    assert data.paths.tolist() == [f"{ferplus_fx.fer2013_csv}#{r}" for r in rows]
    assert data.meta["images_found"] == {"Training": 9, "PublicTest": 3, "PrivateTest": 2}
    assert data.meta["dropped"] == dropped


def test_ferplus_size_64(ferplus_fx: FerplusFixture) -> None:
    data = load_ferplus(ferplus_fx.folder, size=64)
    assert data.images.shape == (8, 64, 64)
    assert data.hashes.tolist() == load_ferplus(ferplus_fx.folder).hashes.tolist()


# --------------------------------------------------------------------------------------------
# CK+

CK48_COUNTS = {"angry": 12, "contempt": 12, "disgust": 12, "fear": 9, "happy": 9, "sad": 9, "surprise": 9}
CK48_TO_DEEPFER = {"anger": "angry", "contempt": "contempt", "disgust": "disgust", "fear": "fear",
                   "happy": "happy", "sadness": "sad", "surprise": "surprise"}


def test_ck48_values(ck48_fx: Ck48Fixture) -> None:
    data = load_ckplus(ck48_fx.folder)
    assert data.name == "ckplus" and len(data) == 72 and data.meta["format"] == "CK+48"
    assert dict(Counter(names(data))) == CK48_COUNTS
    assert set(data.splits.tolist()) == {"all"}
    assert sorted(set(data.subjects.tolist())) == ck48_fx.subjects
    assert data.groups is not None
    assert Counter(data.groups.tolist()) == {g: 3 for g in ck48_fx.sequences}
    for i, path in enumerate(data.paths.tolist()):
        file = Path(path).name
        subject, seq, _ = file[:-4].split("_")
        assert data.subjects[i] == subject
        assert data.groups[i] == f"{subject}_{seq}"
        assert names(data)[i] == CK48_TO_DEEPFER[ck48_fx.sequences[f"{subject}_{seq}"]]
        assert Path(path).parent.name == ck48_fx.sequences[f"{subject}_{seq}"]
        np.testing.assert_array_equal(data.images[i], ck48_fx.pixels[file])


def test_ck48_zip_equals_folder_and_size(ck48_fx: Ck48Fixture) -> None:
    folder = load_ckplus(ck48_fx.folder)
    packed = load_ckplus(ck48_fx.zip)
    assert_same(packed, folder)
    np.testing.assert_array_equal(packed.groups, folder.groups)
    big = load_ckplus(ck48_fx.folder, size=64)
    assert big.images.shape == (72, 64, 64)
    np.testing.assert_array_equal(big.hashes, folder.hashes)


def ck_expected(last: int, neutral: bool) -> list[tuple[str, str]]:
    """(frame file name, deepfer label) that the original layout must give, sorted by name."""
    codes = {1: "angry", 3: "disgust", 6: "sad", 7: "surprise"}
    out = []
    for subject, seq, n, code in CK_ORIGINAL_SEQUENCES:
        if code is None:
            continue
        frames = list(range(1, n + 1))
        for f in frames[-last:]:
            out.append((f"{subject}_{seq}_{f:08d}.png", codes[code]))
        if neutral and 1 not in frames[-last:]:
            out.append((f"{subject}_{seq}_{1:08d}.png", "neutral"))
    return sorted(out)


@pytest.mark.parametrize(("last", "neutral", "n"), [(1, False, 4), (3, False, 12), (2, True, 12)])
def test_ck_original_layout(ck_original_fx: CkOriginalFixture, last: int, neutral: bool, n: int) -> None:
    data = load_ckplus(ck_original_fx.folder, last_frames=last, first_as_neutral=neutral)
    assert len(data) == n and data.meta["format"] == "original"
    got = sorted(zip([Path(p).name for p in data.paths.tolist()], names(data)))
    assert got == ck_expected(last, neutral)
    for i, path in enumerate(data.paths.tolist()):
        subject, seq, _ = Path(path).name[:-4].split("_")
        assert data.subjects[i] == subject and data.groups[i] == f"{subject}_{seq}"
        # hashes are of the native 60x50 grayscale frame (RGB frames through convert('L'))
        assert data.hashes[i] == pixel_hash(ck_original_fx.frames[Path(path).name])
    assert not any("S010_003" in p for p in data.paths.tolist())  # no Emotion file: ignored
    assert data.images.shape == (n, 48, 48)


def test_ck_original_tar_gz_equals_folder(ck_original_fx: CkOriginalFixture) -> None:
    folder = load_ckplus(ck_original_fx.folder, last_frames=3, first_as_neutral=True)
    packed = load_ckplus(ck_original_fx.tar_gz, last_frames=3, first_as_neutral=True)
    a = {Path(p).name: i for i, p in enumerate(folder.paths.tolist())}
    b = {Path(p.split("::")[1]).name: i for i, p in enumerate(packed.paths.tolist())}
    assert set(a) == set(b) and len(a) == 16
    ia, ib = [a[k] for k in sorted(a)], [b[k] for k in sorted(b)]
    np.testing.assert_array_equal(folder.images[ia], packed.images[ib])
    np.testing.assert_array_equal(folder.labels[ia], packed.labels[ib])


# --------------------------------------------------------------------------------------------
# JAFFE

JAFFE_NAME = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral",
              "SA": "sad", "SU": "surprise"}


def test_jaffe_values(jaffe_fx: JaffeFixture) -> None:
    data = load_jaffe(jaffe_fx.folder, size=64)
    assert data.name == "jaffe" and len(data) == 30
    assert Counter(names(data)) == {"angry": 4, "disgust": 4, "fear": 4, "happy": 5, "neutral": 4,
                                    "sad": 4, "surprise": 5}
    assert Counter(data.subjects.tolist()) == {"KA": 8, "KL": 8, "KM": 7, "NA": 7}
    assert set(data.splits.tolist()) == {"all"}
    for i, path in enumerate(data.paths.tolist()):
        file = Path(path).name
        assert data.subjects[i] == file[:2]
        assert names(data)[i] == JAFFE_NAME[file[3:5]]  # e.g. NE -> neutral
        np.testing.assert_array_equal(data.images[i], jaffe_fx.pixels[file])  # 64x64: no resize


def test_jaffe_palette_files_read_like_their_l_copies(jaffe_fx: JaffeFixture) -> None:
    km = [n for n in jaffe_fx.names if n.startswith("KM.")]
    assert len(km) == 7
    for n in km:  # the fixture really is palette-mode, the copy really is L
        assert Image.open(jaffe_fx.folder / n).mode == "P"
        assert Image.open(jaffe_fx.l_copy / n).mode == "L"
    assert_same(load_jaffe(jaffe_fx.folder, size=64), load_jaffe(jaffe_fx.l_copy, size=64))


def test_jaffe_zip_and_size(jaffe_fx: JaffeFixture) -> None:
    folder = load_jaffe(jaffe_fx.folder)
    assert folder.images.shape == (30, 48, 48)
    packed = load_jaffe(jaffe_fx.zip)
    assert_same(packed, folder)
    assert packed.paths[0] == f"{jaffe_fx.zip}::jaffe/{sorted(jaffe_fx.names)[0]}"


def test_jaffe_frames_without_a_face_are_kept_whole(jaffe_fx: JaffeFixture,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """The fixture's frames are noise: no face is found, each frame is kept whole and counted."""
    with caplog.at_level("WARNING", logger="deepfer.data.jaffe"):
        data = load_jaffe(jaffe_fx.folder, size=64, use_cache=False)
    assert data.meta["crop"] == "face" and data.meta["uncropped"] == 30
    assert_same(data, load_jaffe(jaffe_fx.folder, size=64, crop="none", use_cache=False))
    assert "no face found in 30 of 30 frames" in caplog.text


def test_jaffe_crop_is_the_predict_crop(tmp_path: Path) -> None:
    """A frame with a face is cropped exactly as ``deepfer predict`` crops it; the hash stays the
    file's, so duplicate checks do not depend on the crop."""
    from deepfer.inference import crop_face, sample_image
    from deepfer.vision import create_detector, default_detector

    frame = np.asarray(Image.open(sample_image()).convert("L").resize((256, 256)))
    folder = tmp_path / "jaffe"
    folder.mkdir()
    Image.fromarray(frame).save(folder / "KA.HA1.29.tiff")
    for name in ("haar", "auto"):  # the reader's default (the shipped weights' crops), predict's
        data = load_jaffe(folder, use_cache=False) if name == "haar" else load_jaffe(folder, use_cache=False,
                                                                                     detector=name)
        det = create_detector(name)
        found = det.detect(frame)
        assert data.meta["uncropped"] == 0 and len(found) == 1
        assert data.meta["detector"] == (default_detector() if name == "auto" else name) == det.name
        np.testing.assert_array_equal(data.images[0], crop_face(frame, found[0], det.framing, 48))
    assert not np.array_equal(data.images[0], load_jaffe(folder, crop="none", use_cache=False).images[0])
    assert data.hashes[0] == pixel_hash(frame)


def test_jaffe_unknown_crop(jaffe_fx: JaffeFixture) -> None:
    with pytest.raises(DataError, match="JAFFE crop must be one of face, none, got 'eyes'"):
        load_jaffe(jaffe_fx.folder, crop="eyes")


# --------------------------------------------------------------------------------------------
# FERG-DB

FERG_NAME = {"anger": "angry", "disgust": "disgust", "fear": "fear", "joy": "happy",
             "neutral": "neutral", "sadness": "sad", "surprise": "surprise"}


def test_ferg_values(ferg_fx: FergFixture) -> None:
    data = load_ferg(ferg_fx.folder)
    assert data.name == "ferg" and len(data) == 126 == len(ferg_fx.files)
    assert Counter(zip(data.subjects.tolist(), names(data))) == {
        (c, FERG_NAME[e]): 3 for c in ("aia", "bonnie", "jules", "malcolm", "mery", "ray")
        for e in FERG_NAME
    }
    root = ferg_fx.folder / "FERG_DB_256"
    for i, path in enumerate(data.paths.tolist()):
        rel = Path(path).relative_to(root).as_posix()
        character, folder, file = rel.split("/")
        assert data.subjects[i] == character
        assert names(data)[i] == FERG_NAME[folder.split("_")[1]]  # joy -> happy, ...
        # RGBA PNGs become grayscale through Pillow's convert('L') (alpha ignored)
        assert data.hashes[i] == pixel_hash(ferg_fx.gray[rel])


def test_ferg_zip_and_sizes(ferg_fx: FergFixture) -> None:
    folder = load_ferg(ferg_fx.folder)
    assert folder.images.shape == (126, 48, 48)
    assert_same(load_ferg(ferg_fx.zip), folder)
    big = load_ferg(ferg_fx.folder / "FERG_DB_256", size=64)
    assert big.images.shape == (126, 64, 64)
    np.testing.assert_array_equal(big.hashes, folder.hashes)


def test_ferg_fixture_follows_the_real_file_list(ferg_fx: FergFixture) -> None:
    if not ferg_fx.from_real_list:
        pytest.skip("../shared/data/ferg/FERG_DB_256_filenames.txt missing: synthetic names used")
    assert "bonnie/bonnie_fear/bonnie_fear_1.png" in ferg_fx.files
    assert all(f.split("/")[2].startswith(f.split("/")[1] + "_") for f in ferg_fx.files)


def test_load_dataset_dispatches(jaffe_fx: JaffeFixture) -> None:
    assert_same(load_dataset("jaffe", jaffe_fx.folder), load_jaffe(jaffe_fx.folder))


# --------------------------------------------------------------------------------------------
# the on-disk cache


def test_cache_second_load_skips_decoding(jaffe_fx: JaffeFixture, cache_root: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_jaffe(jaffe_fx.folder)
    entries = list((cache_root / "datasets").glob("jaffe-*.npz"))
    assert len(entries) == 1
    monkeypatch.setattr(deepfer.data.jaffe, "_load", boom)
    second = load_jaffe(jaffe_fx.folder)
    assert_same(second, first)
    np.testing.assert_array_equal(second.paths, first.paths)
    assert second.meta == first.meta and second.name == "jaffe"
    with pytest.raises(AssertionError, match="decoded again"):  # the patch is the decode path
        load_jaffe(jaffe_fx.folder, use_cache=False)


def test_cache_keeps_soft_labels_groups_and_meta(ferplus_fx: FerplusFixture, ck48_fx: Ck48Fixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    majority, soft = load_ferplus(ferplus_fx.folder), load_ferplus(ferplus_fx.folder, labels="soft")
    ck = load_ckplus(ck48_fx.folder)
    monkeypatch.setattr(deepfer.data.ferplus, "_load", boom)  # any decode now fails
    monkeypatch.setattr(deepfer.data.ckplus, "_load", boom)
    again = load_ferplus(ferplus_fx.folder)
    assert len(again) == 8 and len(load_ferplus(ferplus_fx.folder, labels="soft")) == 9
    np.testing.assert_array_equal(again.soft_labels, majority.soft_labels)
    assert again.meta["images_found"] == majority.meta["images_found"]
    assert again.meta["dropped"] == majority.meta["dropped"]
    assert len(soft) == 9
    np.testing.assert_array_equal(load_ckplus(ck48_fx.folder).groups, ck.groups)


def test_cache_invalidated_when_a_file_changes(jaffe_fx: JaffeFixture, tmp_path: Path,
                                               cache_root: Path) -> None:
    folder = tmp_path / "jaffe"
    shutil.copytree(jaffe_fx.folder, folder)
    before = load_jaffe(folder, size=64)
    target = folder / "KA.AN1.30.tiff"
    new = 255 - jaffe_fx.pixels["KA.AN1.30.tiff"]
    Image.fromarray(new, "L").save(target, "TIFF")  # same size on disk: only the mtime tells
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    after = load_jaffe(folder, size=64)
    i = [Path(p).name for p in after.paths.tolist()].index("KA.AN1.30.tiff")
    np.testing.assert_array_equal(after.images[i], new)
    keep = np.arange(len(after)) != i
    np.testing.assert_array_equal(after.images[keep], before.images[keep])
    assert len(list((cache_root / "datasets").glob("jaffe-*.npz"))) == 2


def test_cache_invalidated_when_a_csv_changes(fer2013_fx: Fer2013Fixture, tmp_path: Path) -> None:
    path = tmp_path / "fer2013.csv"
    text = fer2013_fx.csv.read_text()
    path.write_text(text)
    assert load_fer2013(path).labels[1] == 1
    path.write_text(text.replace("\n1,", "\n4,", 1))  # row 1: disgust -> sad, same size
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert load_fer2013(path).labels[1] == 4


def test_cache_separates_sizes(jaffe_fx: JaffeFixture) -> None:
    assert load_jaffe(jaffe_fx.folder, size=48).images.shape[1:] == (48, 48)
    assert load_jaffe(jaffe_fx.folder, size=64).images.shape[1:] == (64, 64)
    assert load_jaffe(jaffe_fx.folder, size=48).images.shape[1:] == (48, 48)


def test_damaged_cache_entry_is_rebuilt(jaffe_fx: JaffeFixture, cache_root: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    first = load_jaffe(jaffe_fx.folder)
    (entry,) = (cache_root / "datasets").glob("jaffe-*.npz")
    entry.write_bytes(b"not an npz file" * 10)
    with caplog.at_level("WARNING", logger="deepfer.data.cache"):
        again = load_jaffe(jaffe_fx.folder)
    assert_same(again, first)
    assert "unreadable cache entry" in caplog.text


def test_truncated_cache_entry_is_rebuilt(jaffe_fx: JaffeFixture, cache_root: Path) -> None:
    first = load_jaffe(jaffe_fx.folder)
    (entry,) = (cache_root / "datasets").glob("jaffe-*.npz")
    content = entry.read_bytes()
    entry.write_bytes(content[: len(content) // 2])
    assert_same(load_jaffe(jaffe_fx.folder), first)


def test_use_cache_false_writes_nothing(fer2013_fx: Fer2013Fixture, cache_root: Path) -> None:
    load_fer2013(fer2013_fx.csv, use_cache=False)
    assert not list(cache_root.rglob("*.npz"))
    load_fer2013(fer2013_fx.csv)
    assert len(list((cache_root / "datasets").glob("fer2013-*.npz"))) == 1


def test_fer2013_module_decode_is_patchable(fer2013_fx: Fer2013Fixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached CSV is not parsed again (the parser raising proves it is never called)."""
    first = load_fer2013(fer2013_fx.csv_gz)
    monkeypatch.setattr(deepfer.data.fer2013, "read_fer2013_csv", boom)
    assert_same(load_fer2013(fer2013_fx.csv_gz), first)
    with pytest.raises(AssertionError, match="decoded again"):
        load_fer2013(fer2013_fx.csv_gz, use_cache=False)
