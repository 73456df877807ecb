"""Bad input: every reader raises DataError naming the file (and the row or archive member);
the CLI turns it into one ``deepfer: error:`` line on stderr and exit code 2."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import (
    FERPLUS_ROWS,
    Ck48Fixture,
    CkOriginalFixture,
    Fer2013Fixture,
    FergFixture,
    FerplusFixture,
    JaffeFixture,
    fer2013_csv_text,
    fer2013_line,
    jpeg_bytes,
    pack,
    random_image,
    save_image,
    write_ferplus_votes,
)

from deepfer.cli import main
from deepfer.data import (
    load_ckplus,
    load_dataset,
    load_fer2013,
    load_ferg,
    load_ferplus,
    load_jaffe,
)
from deepfer.errors import DataError

GOOD = " ".join(["7"] * 2304)


def good_rows() -> list[str]:
    return [fer2013_line(3, GOOD, "Training"), fer2013_line(6, GOOD, "PublicTest")]


def write_csv(tmp_path: Path, bad_line: str, gz: bool = False) -> Path:
    """A fer2013.csv whose rows 0 and 1 are fine and row 2 is ``bad_line``."""
    text = "emotion,pixels,Usage\n" + "\n".join([*good_rows(), bad_line]) + "\n"
    if gz:
        path = tmp_path / "fer2013.csv.gz"
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path = tmp_path / "fer2013.csv"
        path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# fer2013.csv

BAD_ROWS = {
    "2303 pixels": (fer2013_line(0, " ".join(["1"] * 2303), "Training"), "2303 values, expected 2304"),
    "2305 pixels": (fer2013_line(0, " ".join(["1"] * 2305), "Training"), "2305 values"),
    "non-integer pixel": (fer2013_line(0, " ".join(["1"] * 2303 + ["12.5"]), "Training"), "not an integer"),
    "word as pixel": (fer2013_line(0, " ".join(["1"] * 2303 + ["x"]), "Training"), "not an integer"),
    "pixel 300": (fer2013_line(0, " ".join(["1"] * 2303 + ["300"]), "Training"), "0-255"),
    "pixel -1": (fer2013_line(0, " ".join(["-1"] + ["1"] * 2303), "Training"), "0-255"),
    "emotion 9": (fer2013_line(9, GOOD, "Training"), "emotion 9 is outside 0-6"),
    "emotion -1": (fer2013_line(-1, GOOD, "Training"), "outside 0-6"),
    "emotion word": (fer2013_line("happy", GOOD, "Training"), "'happy' is not an integer"),
    "unknown Usage": (fer2013_line(0, GOOD, "Validation"), "Usage 'Validation'"),
    "too few fields": ("3,Training", "2 fields, expected 3"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_csv_row_names_file_and_row(tmp_path: Path, case: str, gz: bool) -> None:
    line, fragment = BAD_ROWS[case]
    path = write_csv(tmp_path, line, gz)
    with pytest.raises(DataError) as err:
        load_fer2013(path)
    message = str(err.value)
    assert str(path) in message and "row 2" in message and fragment in message
    assert "\n" not in message


def test_huge_pixel_value_names_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path, fer2013_line(0, " ".join(["1"] * 2303 + ["9" * 20]), "Training"))
    with pytest.raises(DataError, match="row 2"):
        load_fer2013(path)


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("pixels", "missing column 'emotion'"),  # Kaggle's test.csv has no labels
        ("emotion,Usage", "missing column 'pixels'"),
    ],
)
def test_missing_column_names_file(tmp_path: Path, header: str, fragment: str) -> None:
    path = tmp_path / "test.csv"
    path.write_text(f"{header}\n{GOOD}\n")
    with pytest.raises(DataError) as err:
        load_fer2013(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "missing column 'pixels'"),
        (b"emotion,pixels,Usage\n", "no data rows"),
        (b"emotion,pixels,Usage\n\xff\xfe\x00bad", "not a text CSV file"),
        (gzip.compress(fer2013_csv_text(
            [(0, px, "Training") for px in random_image(np.random.default_rng(0), (5, 48, 48))]
        ).encode())[:4000], "corrupt gzip"),
    ],
    ids=["empty", "header only", "not utf-8", "truncated gzip"],
)
def test_unreadable_csv(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "fer2013.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_fer2013(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_corrupt_gzip_csv(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(fer2013_csv_text([(0, GOOD, "Training")] * 50).encode()))
    for i in range(20, len(data) - 10):
        data[i] ^= 0x55
    path = tmp_path / "fer2013.csv.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="fer2013.csv.gz"):
        load_fer2013(path)


# --------------------------------------------------------------------------------------------
# broken image files and archives

BAD_IMAGES = {
    "zero bytes": (lambda good: b"", "empty file"),
    "truncated": (lambda good: good[: len(good) // 2], "cannot decode image"),
    "not an image": (lambda good: b"this is a text file, not a JPEG\n", "cannot decode image"),
}


@pytest.fixture
def fer_folder(fer2013_fx: Fer2013Fixture, tmp_path: Path) -> Path:
    folder = tmp_path / "fer2013_images"
    shutil.copytree(fer2013_fx.folder, folder)
    return folder


@pytest.mark.parametrize("case", list(BAD_IMAGES))
@pytest.mark.parametrize("packing", ["folder", "zip", "tar.gz"])
def test_bad_image_names_the_file(fer_folder: Path, tmp_path: Path, case: str, packing: str) -> None:
    make, fragment = BAD_IMAGES[case]
    good = jpeg_bytes(random_image(np.random.default_rng(0), (48, 48)))
    (fer_folder / "train" / "happy" / "Training_999.jpg").write_bytes(make(good))
    path = fer_folder if packing == "folder" else pack(fer_folder, tmp_path / f"bad.{packing}")
    with pytest.raises(DataError) as err:
        load_fer2013(path)
    message = str(err.value)
    member = "train/happy/Training_999.jpg"
    expected = str(fer_folder / member) if packing == "folder" else f"{path}::{member}"
    assert message.startswith(expected + ":") and fragment in message


def test_unknown_emotion_folder(fer_folder: Path) -> None:
    (fer_folder / "train" / "contempt").mkdir()
    (fer_folder / "train" / "contempt" / "Training_1.jpg").write_bytes(
        jpeg_bytes(random_image(np.random.default_rng(0), (48, 48)))
    )
    with pytest.raises(DataError, match=r"train/contempt/Training_1\.jpg: unknown emotion folder 'contempt'"):
        load_fer2013(fer_folder)


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_tar_gz(fer2013_fx: Fer2013Fixture, tmp_path: Path, fraction: float) -> None:
    content = fer2013_fx.tar_gz.read_bytes()
    path = tmp_path / "fer2013_images.tar.gz"
    path.write_bytes(content[: int(len(content) * fraction)])
    with pytest.raises(DataError) as err:
        load_fer2013(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("name", "fragment"), [("x.zip", "not a readable zip archive"),
                                                ("x.tar.gz", "not a readable tar archive"),
                                                ("x.rar", "expected a folder, .zip, .tar or .tar.gz")])
def test_not_an_archive(tmp_path: Path, name: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"hello world, not an archive\n" * 4)
    with pytest.raises(DataError) as err:
        load_jaffe(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_corrupt_zip_member(jaffe_fx: JaffeFixture, tmp_path: Path) -> None:
    raw = bytearray(jaffe_fx.zip.read_bytes())
    start = raw.find(b"jaffe/KA.AN1.30.tiff") + 40  # inside that member's compressed data
    for i in range(start, start + 200):
        raw[i] ^= 0x5A
    path = tmp_path / "jaffe.zip"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="KA.AN1.30.tiff"):
        load_jaffe(path)


@pytest.mark.parametrize("dataset", ["fer2013", "ferplus", "ckplus", "jaffe", "ferg"])
def test_missing_path(tmp_path: Path, dataset: str) -> None:
    path = tmp_path / "nowhere"
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: no such file or folder \(expected .+\)$"):
        load_dataset(dataset, path)


@pytest.mark.parametrize(("dataset", "fragment"), [
    ("fer2013", "no FER2013 data found"), ("ckplus", "no CK+ images found"),
    ("jaffe", "no JAFFE images found"), ("ferg", "no FERG images found"),
])
def test_empty_folder(tmp_path: Path, dataset: str, fragment: str) -> None:
    (tmp_path / "README.txt").write_text("nothing here\n")
    with pytest.raises(DataError) as err:
        load_dataset(dataset, tmp_path)
    assert str(err.value).startswith(str(tmp_path)) and fragment in str(err.value)


def test_unknown_dataset() -> None:
    valid = "ckplus, fer2013, ferg, ferplus, jaffe"
    with pytest.raises(DataError, match=f"unknown dataset 'fer2014'; choose one of {valid}"):
        load_dataset("fer2014", ".")


# --------------------------------------------------------------------------------------------
# FER+


@pytest.fixture
def ferplus_copy(ferplus_fx: FerplusFixture, tmp_path: Path) -> Path:
    folder = tmp_path / "ferplus"
    shutil.copytree(ferplus_fx.folder, folder)
    return folder


def test_ferplus_bad_header(ferplus_copy: Path) -> None:
    votes = ferplus_copy / "fer2013new.csv"
    votes.write_text(votes.read_text().replace("contempt,unknown,NF", "contempt,unknown", 1))
    with pytest.raises(DataError, match="fer2013new.csv: header .* is not the FER\\+ header"):
        load_ferplus(ferplus_copy)


@pytest.mark.parametrize(("votes", "fragment"), [((1, 2, 3), "5 fields, expected 12"),
                                                 ((0, 0, "x", 0, 0, 0, 0, 0, 0, 10), "must be integers")])
def test_ferplus_bad_vote_row(ferplus_copy: Path, votes: tuple, fragment: str) -> None:
    rows = list(FERPLUS_ROWS)
    rows[4] = ("Training", "fer0000004.png", votes)
    write_ferplus_votes(ferplus_copy / "fer2013new.csv", rows)
    with pytest.raises(DataError) as err:
        load_ferplus(ferplus_copy)
    assert f"{ferplus_copy / 'fer2013new.csv'} row 4" in str(err.value) and fragment in str(err.value)


@pytest.mark.parametrize("member", ["FER2013Train/fer0099999.png",  # no such name
                                    "FER2013Test/fer0000000.png"])  # named in Training only
def test_ferplus_png_without_row(ferplus_copy: Path, member: str) -> None:
    save_image(ferplus_copy / member, random_image(np.random.default_rng(0), (48, 48)), "PNG")
    with pytest.raises(DataError, match=f"^{re.escape(str(ferplus_copy / member))}: image has no row in"):
        load_ferplus(ferplus_copy)


def test_ferplus_votes_not_utf8(ferplus_copy: Path) -> None:
    votes = ferplus_copy / "fer2013new.csv"
    votes.write_bytes(votes.read_bytes().replace(b"fer0000005.png", b"fer\xff000005.png"))
    with pytest.raises(DataError, match="fer2013new.csv"):
        load_ferplus(ferplus_copy)


def test_ferplus_votes_trailing_blank_line(ferplus_copy: Path) -> None:
    votes = ferplus_copy / "fer2013new.csv"
    votes.write_text(votes.read_text() + "\n")
    assert len(load_ferplus(ferplus_copy)) == 8


def test_ferplus_without_votes_or_images(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no fer2013new.csv here"):
        load_ferplus(tmp_path)
    write_ferplus_votes(tmp_path / "fer2013new.csv", FERPLUS_ROWS)
    with pytest.raises(DataError, match="expected FER2013Train/, FER2013Valid/, FER2013Test/"):
        load_ferplus(tmp_path)


def test_ferplus_join_needs_every_row(ferplus_fx: FerplusFixture, tmp_path: Path) -> None:
    short = tmp_path / "fer2013.csv"
    short.write_text("".join(ferplus_fx.fer2013_csv.read_text().splitlines(True)[:-1]))
    with pytest.raises(DataError, match="13 rows, but .* has 14: joining by row position"):
        load_ferplus(ferplus_fx.folder, fer2013_csv=short)


def test_ferplus_join_usage_mismatch(ferplus_fx: FerplusFixture, tmp_path: Path) -> None:
    lines = ferplus_fx.fer2013_csv.read_text().splitlines(True)
    lines[1 + 4] = lines[1 + 4].replace(",Training", ",PublicTest")
    bad = tmp_path / "fer2013.csv"
    bad.write_text("".join(lines))
    expected = f"^{re.escape(str(bad))} row 4: Usage PublicTest differs from FER\\+ Training"
    with pytest.raises(DataError, match=expected):
        load_ferplus(ferplus_fx.folder, fer2013_csv=bad)


def test_ferplus_unknown_label_mode(ferplus_fx: FerplusFixture) -> None:
    with pytest.raises(DataError, match="unknown FER\\+ label mode 'hard'"):
        load_ferplus(ferplus_fx.folder, labels="hard")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# CK+, JAFFE, FERG


@pytest.fixture
def ck_copy(ck_original_fx: CkOriginalFixture, tmp_path: Path) -> Path:
    folder = tmp_path / "ck"
    shutil.copytree(ck_original_fx.folder, folder)
    return folder


@pytest.mark.parametrize(("content", "fragment"), [("happy\n", "expected one emotion code (0-7)"),
                                                   ("   9.0000000e+00\n", "emotion code 9 is outside 0-7")])
def test_ckplus_bad_emotion_file(ck_copy: Path, content: str, fragment: str) -> None:
    label = ck_copy / "Emotion" / "S010" / "002" / "S010_002_00000004_emotion.txt"
    label.write_text(content)
    with pytest.raises(DataError) as err:
        load_ckplus(ck_copy)
    assert str(err.value).startswith(f"{label}: ") and fragment in str(err.value)


def test_ckplus_label_without_frames(ck_copy: Path) -> None:
    label = ck_copy / "Emotion" / "S099" / "001" / "S099_001_00000007_emotion.txt"
    label.parent.mkdir(parents=True)
    label.write_text("   5.0000000e+00\n")
    with pytest.raises(DataError, match=f"^{re.escape(str(label))}: no frames for this sequence"):
        load_ckplus(ck_copy)


def test_ckplus_last_frames_must_be_positive(ck_copy: Path) -> None:
    with pytest.raises(DataError, match="last_frames must be >= 1, got 0"):
        load_ckplus(ck_copy, last_frames=0)


def test_ck48_bad_png(ck48_fx: Ck48Fixture, tmp_path: Path) -> None:
    folder = tmp_path / "ck48"
    shutil.copytree(ck48_fx.folder, folder)
    bad = folder / "CK+48" / "fear" / "S999_001_00000003.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError, match=f"^{re.escape(str(bad))}: cannot decode image"):
        load_ckplus(folder)


def test_jaffe_unknown_expression_code(jaffe_fx: JaffeFixture, tmp_path: Path) -> None:
    folder = tmp_path / "jaffe"
    shutil.copytree(jaffe_fx.folder, folder)
    shutil.copy(folder / "KA.AN1.30.tiff", folder / "KA.XX1.99.tiff")
    expected = f"^{re.escape(str(folder / 'KA.XX1.99.tiff'))}: unknown JAFFE expression code 'XX'"
    with pytest.raises(DataError, match=expected):
        load_jaffe(folder)


@pytest.mark.parametrize(("rel", "fragment"), [
    ("aia/aia_anger/bonnie_anger_9999.png", "file name does not match its folders"),
    ("aia/aia_happy/aia_happy_1.png", "unknown FERG expression 'happy'"),
])
def test_ferg_bad_names(ferg_fx: FergFixture, tmp_path: Path, rel: str, fragment: str) -> None:
    folder = tmp_path / "ferg"
    shutil.copytree(ferg_fx.folder, folder)
    bad = folder / "FERG_DB_256" / rel
    save_image(bad, random_image(np.random.default_rng(0), (32, 32, 4)), "PNG")
    with pytest.raises(DataError) as err:
        load_ferg(folder)
    assert str(err.value).startswith(f"{bad}: ") and fragment in str(err.value)


# --------------------------------------------------------------------------------------------
# malformed input that once escaped as csv.Error, numpy's AxisError, OverflowError or ValueError


def test_malformed_csv_names_file_and_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path, fer2013_line(0, "1 " * 70_000, "Training"))  # past the line cap
    with pytest.raises(DataError, match=f"^{re.escape(str(path))} line 4: longer than 65,536 characters"):
        load_fer2013(path)
    path = write_csv(tmp_path, fer2013_line(0, "1 " * 1000, '"Train"ing'))  # text after a closing quote
    with pytest.raises(DataError, match=f"^{re.escape(str(path))} line 4: malformed CSV \\("):
        load_fer2013(path)


def test_ferplus_votes_without_rows(ferplus_copy: Path) -> None:
    write_ferplus_votes(ferplus_copy / "fer2013new.csv", [])
    with pytest.raises(DataError, match=f"^{re.escape(str(ferplus_copy / 'fer2013new.csv'))}: no data rows$"):
        load_ferplus(ferplus_copy)


def test_ckplus_infinite_emotion_code(ck_copy: Path) -> None:
    label = ck_copy / "Emotion" / "S010" / "002" / "S010_002_00000004_emotion.txt"
    label.write_text("   inf\n")
    with pytest.raises(DataError, match=f"^{re.escape(str(label))}: expected one emotion code"):
        load_ckplus(ck_copy)


def test_native_sizes_that_differ_name_the_file(jaffe_fx: JaffeFixture, tmp_path: Path) -> None:
    folder = tmp_path / "jaffe"
    shutil.copytree(jaffe_fx.folder, folder)
    odd = folder / "NA.SU1.99.tiff"
    save_image(odd, random_image(np.random.default_rng(0), (32, 40)), "TIFF")
    assert load_jaffe(folder, size=48, crop="none", use_cache=False).images.shape[1:] == (48, 48)
    with pytest.raises(DataError) as err:
        load_jaffe(folder, size=None, crop="none", use_cache=False)  # type: ignore[arg-type]
    assert str(err.value).startswith(f"{odd}: a 40x32 image among 64x64 ones") and "give a size" in str(err.value)


# --------------------------------------------------------------------------------------------
# the CLI: one line on stderr, exit code 2, no traceback


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error_line(rc: int, out: str, err: str, *fragments: str) -> str:
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("deepfer: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_cli_bad_csv_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path, fer2013_line(0, " ".join(["1"] * 2303 + ["300"]), "Training"))
    assert_one_error_line(*run_cli(["data", "info", "fer2013", str(path)], capsys),
                          str(path), "row 2", "0-255")


def test_cli_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "missing"
    assert_one_error_line(*run_cli(["data", "info", "jaffe", str(path)], capsys),
                          str(path), "no such file or folder")


def test_cli_bad_image_in_folder(fer_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = fer_folder / "test" / "sad" / "PrivateTest_5.jpg"
    bad.write_bytes(b"")
    assert_one_error_line(*run_cli(["data", "info", "fer2013", str(fer_folder), "--no-cache"], capsys),
                          str(bad), "empty file")


def test_cli_truncated_and_unreadable_archives(fer2013_fx: Fer2013Fixture, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(fer2013_fx.tar_gz.read_bytes()[:2000])
    assert_one_error_line(*run_cli(["data", "info", "fer2013", str(truncated)], capsys), str(truncated))
    garbage = tmp_path / "garbage.tar.gz"  # tarfile's message for this spans several lines
    garbage.write_bytes(b"not a tar archive\n" * 8)
    assert_one_error_line(*run_cli(["data", "info", "fer2013", str(garbage)], capsys),
                          str(garbage), "not a readable tar archive")


def test_cli_unknown_protocol_and_dataset(jaffe_fx: JaffeFixture, fer2013_fx: Fer2013Fixture,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_error_line(*run_cli(["data", "info", "jaffe", str(jaffe_fx.folder), "--protocol",
                                    "official"], capsys),
                          "no protocol 'official' for jaffe; choose one of loso, random")
    assert_one_error_line(*run_cli(["data", "info", "fer2014", str(jaffe_fx.folder)], capsys),
                          "unknown dataset 'fer2014'")
    assert_one_error_line(*run_cli(["data", "info", "fer2013", str(fer2013_fx.csv), "--protocol",
                                    "balanced"], capsys),
                          "fer2013/balanced: needs 430 Training and 100 test images per class")


def test_cli_size_zero(jaffe_fx: JaffeFixture, capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_error_line(*run_cli(["data", "info", "jaffe", str(jaffe_fx.folder), "--size", "0"],
                                   capsys), "size")


def test_cli_jaffe_random_on_small_folder(jaffe_fx: JaffeFixture, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(["data", "info", "jaffe", str(jaffe_fx.folder), "--protocol", "random"], capsys)
    if rc != 0:
        assert_one_error_line(rc, out, err, "jaffe")
