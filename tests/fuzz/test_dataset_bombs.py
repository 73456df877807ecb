"""Compressed-file bombs and oversized rows in the dataset readers: each ends in one line naming
the file, with a bounded peak (``deepfer data info`` in a child process, its peak read from the
kernel), and error messages quote at most a short piece of the input. The full-size recipes
(1 and 2 GiB) and their figures are in ``benchmarks/fuzz.py --hostile`` / ``benchmarks/FUZZ.md``."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest
from fuzz_corpus import cli_peak

from deepfer.data import load_fer2013, load_ferplus
from deepfer.data.limits import MAX_MEMBER_BYTES, csv_rows, open_text
from deepfer.errors import DataError
from deepfer.labels import FERPLUS_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
HEADER = b"emotion,pixels,Usage\n"
ROW = b"3," + b" ".join([b"128"] * 2304) + b",Training\n"


def data_info(dataset: str, path: Path) -> tuple[int, str, float]:
    """``deepfer data info DATASET PATH --no-cache``: exit code, stderr, peak resident MiB."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DEEPFER_CACHE": str(path.parent / "cache")}
    return cli_peak(["data", "info", dataset, str(path), "--no-cache"], env)


def gzipped(head: bytes, block: bytes, total: int) -> bytes:
    """``head`` then ``block`` repeated to ``total`` bytes, gzip-compressed as it is made."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(head)]
    for _ in range(total // len(block)):
        out.append(z.compress(block))
    out.append(z.flush())
    return b"".join(out)


def assert_one_line(code: int, err: str, *fragments: str) -> None:
    assert code != 0 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and len(err) < 400, err[:500]
    for fragment in fragments:
        assert fragment in err, err


def test_gzip_csv_that_never_ends_a_line(tmp_path: Path) -> None:
    path = tmp_path / "fer2013.csv.gz"
    path.write_bytes(gzipped(HEADER + b"3,", b"1 " * (MIB // 2), 1024 * MIB))  # 1 GiB inflated, ~1 MB
    assert path.stat().st_size < 2 * MIB
    code, err, peak = data_info("fer2013", path)
    assert_one_line(code, err, "line 2: longer than 65,536 characters")
    assert peak < 200, peak  # 7.2 GB when the file was inflated whole


def test_csv_row_of_many_short_fields(tmp_path: Path) -> None:
    path = tmp_path / "fer2013.csv"
    path.write_bytes(HEADER + b"," * (10 * MIB) + b"\n")
    code, err, peak = data_info("fer2013", path)
    assert_one_line(code, err, "line 2: longer than")
    assert peak < 200, peak


def test_blank_lines_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "fer2013.csv.gz"
    path.write_bytes(gzipped(HEADER, b"\n" * MIB, 64 * MIB))
    code, err, _ = data_info("fer2013", path)
    assert_one_line(code, err, "more than 1,000,000 lines")


def test_inflated_text_is_capped_while_it_streams() -> None:
    data = gzip.compress(HEADER + ROW * 200)
    rows = csv_rows(open_text(data, "x.csv.gz", limit=100 * len(ROW)), "x.csv.gz")
    with pytest.raises(DataError, match=r"^x\.csv\.gz: inflates to more than [0-9,]+ bytes of text; refused"):
        for n, _ in enumerate(rows):
            assert n < 120  # refused within a read buffer of the cap, not at the end
    assert sum(1 for _ in csv_rows(open_text(data, "x.csv.gz", limit=202 * len(ROW)), "x")) == 201


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_member_larger_than_the_cap_is_refused_before_inflating(tmp_path: Path, kind: str) -> None:
    size = MAX_MEMBER_BYTES + MIB
    member = "train/happy/a.png"
    path = tmp_path / f"fer.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(member, "w", force_zip64=True) as f:
            block = b"\0" * MIB
            for _ in range(size // MIB):
                f.write(block)
    else:
        with tarfile.open(path, "w:gz", compresslevel=1) as tf:
            info = tarfile.TarInfo(member)
            info.size = size
            tf.addfile(info, io.BytesIO(b"\0" * size))
    assert path.stat().st_size < 2 * MIB
    code, err, peak = data_info("fer2013", path)
    assert_one_line(code, err, f"::{member}: 65.0 MiB once inflated, more than the 64 MiB")
    assert peak < 200, peak


def test_wide_headers_are_quoted_short(tmp_path: Path) -> None:
    wide = ",".join(f"column{i}" for i in range(6000))  # 60 KB, one line
    path = tmp_path / "fer2013.csv"
    path.write_text(wide + "\n")
    with pytest.raises(DataError) as err:
        load_fer2013(path, use_cache=False)
    assert "missing column 'pixels'" in str(err.value) and len(str(err.value)) < 300 + len(str(path))
    votes = tmp_path / "fer2013new.csv"
    votes.write_text(wide + "\n")
    (tmp_path / "FER2013Train").mkdir()
    with pytest.raises(DataError) as err:
        load_ferplus(tmp_path, use_cache=False)
    assert "is not the FER+ header" in str(err.value) and len(str(err.value)) < 300 + len(str(votes)) + 200


def test_unicode_digits_are_not_numbers(tmp_path: Path) -> None:
    arabic = "\u0661\u0662\u0663"  # Arabic-Indic 123: int() and numpy read it as 123
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n3," + " ".join([arabic] * 2304) + ",Training\n", encoding="utf-8")
    with pytest.raises(DataError, match="pixels contain a value that is not an integer in 0-255"):
        load_fer2013(path, use_cache=False)
    path.write_text("emotion,pixels,Usage\n\u0663," + " ".join(["1"] * 2304) + ",Training\n", encoding="utf-8")
    with pytest.raises(DataError, match="emotion '\u0663' is not an integer"):
        load_fer2013(path, use_cache=False)
    votes = tmp_path / "fer2013new.csv"
    votes.write_text(",".join(["Usage", "Image name", *FERPLUS_COLUMNS]) + "\nTraining,a.png," +
                     ",".join(["\u0661"] * 10) + "\n", encoding="utf-8")
    (tmp_path / "FER2013Train").mkdir()
    with pytest.raises(DataError, match="vote counts must be integers"):
        load_ferplus(tmp_path, use_cache=False)
