"""Builders of generated fixtures in each dataset's exact layout, for every format a reader accepts
(folders, ``.zip`` and ``.tar.gz``), and the fixtures that use them (conftest.py imports those;
test modules import the builders and constants from here). No real dataset image is copied.

Every builder returns a frozen dataclass holding the paths and the manifest (labels, subjects,
pixels) that the tests compare the readers' output against. Session-scoped fixtures are
read-only; a test that changes files copies them first.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# ../shared/data relative to the repository root (tests/data/conftest.py -> parents[3] = /work).
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"

USAGES = ("Training", "PublicTest", "PrivateTest")
# FER2013 emotion codes 0-6 and the msambare image-folder names, in code order.
FER_FOLDERS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FERPLUS_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
FERPLUS_FOLDER = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
CK48_FOLDERS = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
JAFFE_CODES = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")
FERG_CHARACTERS = ("aia", "bonnie", "jules", "malcolm", "mery", "ray")
FERG_EXPRESSIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")


# --------------------------------------------------------------------------------------------
# the test cache: unit tests never read or write the user's ~/.cache/deepfer


@pytest.fixture(autouse=True)
def cache_root(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
               tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A fresh, empty DEEPFER_CACHE for every unit test; integration tests keep the default."""
    if request.node.get_closest_marker("integration") is not None:
        return None
    root = tmp_path_factory.mktemp("deepfer-cache")
    monkeypatch.setenv("DEEPFER_CACHE", str(root))
    return root


# --------------------------------------------------------------------------------------------
# small helpers


def random_image(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 noise: two such images are never pixel-identical."""
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def save_image(path: Path, array: np.ndarray, fmt: str | None = None, **params: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **params)
    return path


def jpeg_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, "L").save(buf, "JPEG", quality=95)
    return buf.getvalue()


def decode_like_pil(data: bytes) -> np.ndarray:
    """Reference decoding, independent of deepfer: Pillow's convert('L')."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


def pack(folder: Path, archive: Path, prefix: str = "") -> Path:
    """Pack everything under ``folder`` into a ``.zip`` or ``.tar.gz``, names = prefix + relpath.

    Directory entries are written too (real archives have them; readers must skip them).
    """
    entries = sorted(folder.rglob("*"))
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            if prefix:
                zf.writestr(prefix, "")
            for p in entries:
                name = prefix + p.relative_to(folder).as_posix()
                if p.is_dir():
                    zf.writestr(name + "/", "")
                else:
                    zf.write(p, name)
    else:
        with tarfile.open(archive, "w:gz") as tf:
            if prefix:
                tf.add(folder, prefix.rstrip("/"), recursive=False)
            for p in entries:
                tf.add(p, prefix + p.relative_to(folder).as_posix(), recursive=False)
    return archive


def fer2013_line(emotion: object, pixels: np.ndarray | str, usage: str) -> str:
    px = pixels if isinstance(pixels, str) else " ".join(map(str, np.asarray(pixels).ravel()))
    return f"{emotion},{px},{usage}"


def fer2013_csv_text(rows: list[tuple[object, np.ndarray | str, str]]) -> str:
    return "emotion,pixels,Usage\n" + "".join(fer2013_line(*r) + "\n" for r in rows)


# --------------------------------------------------------------------------------------------
# FER2013: fer2013.csv (+ .gz) and the image-folder layout


@dataclass(frozen=True)
class Fer2013Fixture:
    csv: Path
    csv_gz: Path
    folder: Path  # holds train/<emotion>/ and test/<emotion>/
    zip: Path
    tar_gz: Path
    nested_tar_gz: Path  # the same tree under an extra top-level folder fer2013/
    kaggle_tar_gz: Path  # fer2013/fer2013.csv only, like Kaggle's original tarball
    emotions: list[int]  # per CSV row
    usages: list[str]  # per CSV row
    pixels: np.ndarray  # (21, 48, 48), per CSV row
    files: dict[str, int]  # image-folder relative name -> CSV row
    jpeg: dict[str, bytes]  # image-folder relative name -> file content


def build_fer2013(root: Path) -> Fer2013Fixture:
    """21 rows, one per (Usage, class); row 20 (PrivateTest, neutral) repeats row 0's pixels
    (Training, angry): one duplicate group that spans train/test with conflicting labels."""
    rng = np.random.default_rng(2013)
    emotions = [c for _ in USAGES for c in range(7)]
    usages = [u for u in USAGES for _ in range(7)]
    pixels = random_image(rng, (21, 48, 48))
    pixels[20] = pixels[0]
    root.mkdir(parents=True, exist_ok=True)
    text = fer2013_csv_text(list(zip(emotions, pixels, usages)))
    csv_path = root / "fer2013.csv"
    csv_path.write_text(text)
    csv_gz = root / "fer2013.csv.gz"
    csv_gz.write_bytes(gzip.compress(text.encode()))

    folder = root / "fer2013_images"
    files, jpeg = {}, {}
    for row, (emotion, usage) in enumerate(zip(emotions, usages)):
        split = "train" if usage == "Training" else "test"
        # the id in msambare's names is arbitrary, not the CSV row
        name = f"{split}/{FER_FOLDERS[emotion]}/{usage}_{(row * 7919) % 1000 + 100}.jpg"
        data = jpeg_bytes(pixels[row])
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        files[name], jpeg[name] = row, data
    kaggle = root / "kaggle"
    (kaggle / "fer2013").mkdir(parents=True)
    (kaggle / "fer2013" / "fer2013.csv").write_text(text)
    return Fer2013Fixture(
        csv=csv_path, csv_gz=csv_gz, folder=folder,
        zip=pack(folder, root / "fer2013_images.zip"),
        tar_gz=pack(folder, root / "fer2013_images.tar.gz"),
        nested_tar_gz=pack(folder, root / "fer2013_nested.tar.gz", prefix="fer2013/"),
        kaggle_tar_gz=pack(kaggle, root / "fer2013.tar.gz"),
        emotions=emotions, usages=usages, pixels=pixels, files=files, jpeg=jpeg,
    )


@pytest.fixture(scope="session")
def fer2013_fx(tmp_path_factory: pytest.TempPathFactory) -> Fer2013Fixture:
    return build_fer2013(tmp_path_factory.mktemp("fer2013"))


# --------------------------------------------------------------------------------------------
# FER+: fer2013new.csv votes + FER2013Train/Valid/Test PNGs (or a fer2013.csv joined by row)

# (Usage, Image name, votes in fer2013new.csv column order
#  neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF)
FERPLUS_ROWS: list[tuple[str, str, tuple[int, ...]]] = [
    ("Training", "fer0000000.png", (2, 8, 0, 0, 0, 0, 0, 0, 0, 0)),  # 0 clear majority: happy
    ("Training", "fer0000001.png", (4, 0, 0, 3, 3, 0, 0, 0, 0, 0)),  # 1 no majority (soft: neutral)
    ("Training", "fer0000002.png", (0, 4, 0, 0, 0, 0, 0, 0, 6, 0)),  # 2 unknown majority
    ("Training", "", (0, 0, 0, 0, 0, 0, 0, 0, 0, 10)),  # 3 empty name (not a face): no PNG
    ("Training", "fer0000004.png", (1, 0, 0, 0, 0, 0, 0, 0, 0, 9)),  # 4 NF majority
    ("Training", "fer0000005.png", (1, 5, 2, 1, 0, 0, 1, 0, 0, 0)),  # 5 single votes dropped: 5/7 happy
    ("Training", "fer0000006.png", (0, 0, 0, 0, 10, 0, 0, 0, 0, 0)),  # 6 duplicated name, earlier row
    ("Training", "fer0000007.png", (3, 0, 0, 0, 0, 0, 0, 7, 0, 0)),  # 7 contempt
    ("Training", "fer0000006.png", (0, 0, 0, 1, 0, 0, 9, 0, 0, 0)),  # 8 duplicated name, later row: fear
    ("PublicTest", "fer0000009.png", (0, 0, 0, 0, 4, 6, 0, 0, 0, 0)),  # 9 disgust
    ("PublicTest", "fer0000010.png", (0, 0, 0, 7, 0, 0, 0, 0, 3, 0)),  # 10 sad (+ unknown votes)
    ("PublicTest", "fer0000011.png", (1, 1, 1, 1, 1, 1, 1, 1, 1, 1)),  # 11 only single votes
    ("PrivateTest", "fer0000012.png", (10, 0, 0, 0, 0, 0, 0, 0, 0, 0)),  # 12 neutral
    ("PrivateTest", "fer0000013.png", (0, 0, 0, 2, 6, 0, 0, 0, 2, 0)),  # 13 angry 6/8, sad 2/8
]
# rows that have a PNG: not row 3 (no name) nor row 6 (its file was overwritten by row 8)
FERPLUS_PNG_ROWS = (0, 1, 2, 4, 5, 7, 8, 9, 10, 11, 12, 13)


@dataclass(frozen=True)
class FerplusFixture:
    folder: Path  # fer2013new.csv + FER2013Train/ FER2013Valid/ FER2013Test/
    archived: Path  # fer2013new.csv + one .tar.gz of the three folders
    fer2013_csv: Path  # 14 rows in FER+ row order, for the join by row position
    pixels: np.ndarray  # (14, 48, 48): the pixels of every row (PNG where there is one)
    png_of_row: dict[int, str]  # row -> relative PNG path


def write_ferplus_votes(path: Path, rows: list[tuple[str, str, tuple[int, ...]]]) -> Path:
    lines = [FERPLUS_HEADER] + [f"{u},{n}," + ",".join(map(str, v)) for u, n, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def build_ferplus(root: Path) -> FerplusFixture:
    rng = np.random.default_rng(2016)
    pixels = random_image(rng, (len(FERPLUS_ROWS), 48, 48))
    folder = root / "ferplus"
    folder.mkdir(parents=True)
    write_ferplus_votes(folder / "fer2013new.csv", FERPLUS_ROWS)
    png_of_row = {}
    for row in FERPLUS_PNG_ROWS:
        usage, name, _ = FERPLUS_ROWS[row]
        rel = f"{FERPLUS_FOLDER[usage]}/{name}"
        save_image(folder / rel, pixels[row], "PNG")
        png_of_row[row] = rel
    for sub in FERPLUS_FOLDER.values():  # FER+'s own per-folder label files: not images
        (folder / sub / "label.csv").write_text("fer0000000.png,0,0,10,0,0,0,0,0,0,0,0\n")
    archived = root / "ferplus_archived"
    archived.mkdir()
    write_ferplus_votes(archived / "fer2013new.csv", FERPLUS_ROWS)
    images_only = root / "ferplus_images"
    for rel in png_of_row.values():
        (images_only / rel).parent.mkdir(parents=True, exist_ok=True)
        (images_only / rel).write_bytes((folder / rel).read_bytes())
    pack(images_only, archived / "ferplus_images.tar.gz")
    csv_path = root / "fer2013.csv"
    csv_path.write_text(fer2013_csv_text(
        [(row % 7, pixels[row], usage) for row, (usage, _, _) in enumerate(FERPLUS_ROWS)]
    ))
    return FerplusFixture(folder, archived, csv_path, pixels, png_of_row)


@pytest.fixture(scope="session")
def ferplus_fx(tmp_path_factory: pytest.TempPathFactory) -> FerplusFixture:
    return build_ferplus(tmp_path_factory.mktemp("ferplus"))


# --------------------------------------------------------------------------------------------
# CK+: the CK+48 crops and the original release layout


@dataclass(frozen=True)
class Ck48Fixture:
    folder: Path  # holds CK+48/<class>/
    zip: Path
    subjects: list[str]
    sequences: dict[str, str]  # Sxxx_sss -> class folder
    pixels: dict[str, np.ndarray]  # file name -> 48x48 pixels


def build_ck48(root: Path) -> Ck48Fixture:
    """12 subjects x 2 sequences x 3 frames = 72 images; sequence k (0..23) has class k % 7."""
    rng = np.random.default_rng(48)
    folder = root / "ck48"
    subjects = [f"S{5 + 5 * i:03d}" for i in range(12)]
    sequences, pixels = {}, {}
    for i, subject in enumerate(subjects):
        for j in range(2):
            cls = CK48_FOLDERS[(2 * i + j) % 7]
            seq = f"{j * 3 + 1:03d}"
            sequences[f"{subject}_{seq}"] = cls
            for frame in range(10 + i, 13 + i):  # the last three frames of the sequence
                name = f"{subject}_{seq}_{frame:08d}.png"
                pixels[name] = random_image(rng, (48, 48))
                save_image(folder / "CK+48" / cls / name, pixels[name], "PNG")
    (folder / "CK+48" / "README.txt").write_text("not an image\n")
    return Ck48Fixture(folder, pack(folder, root / "ck48.zip"), subjects, sequences, pixels)


@pytest.fixture(scope="session")
def ck48_fx(tmp_path_factory: pytest.TempPathFactory) -> Ck48Fixture:
    return build_ck48(tmp_path_factory.mktemp("ck48"))


# (subject, sequence, number of frames, Emotion/ code or None when the sequence is unlabelled)
CK_ORIGINAL_SEQUENCES = [
    ("S005", "001", 5, 3),  # disgust
    ("S010", "002", 4, 6),  # sad
    ("S010", "003", 3, None),  # no emotion file: ignored
    ("S022", "001", 6, 7),  # surprise (RGB frames)
    ("S022", "005", 4, 1),  # angry
]


@dataclass(frozen=True)
class CkOriginalFixture:
    folder: Path  # holds cohn-kanade-images/ and Emotion/
    tar_gz: Path
    frames: dict[str, np.ndarray]  # frame file name -> grayscale pixels (60x50)


def build_ck_original(root: Path) -> CkOriginalFixture:
    rng = np.random.default_rng(2010)
    folder = root / "ckplus_original"
    frames = {}
    for subject, seq, n, code in CK_ORIGINAL_SEQUENCES:
        for f in range(1, n + 1):
            name = f"{subject}_{seq}_{f:08d}.png"
            path = folder / "cohn-kanade-images" / subject / seq / name
            if subject == "S022" and seq == "001":
                rgb = random_image(rng, (60, 50, 3))
                save_image(path, rgb, "PNG")
                frames[name] = np.asarray(Image.fromarray(rgb).convert("L"))
            else:
                frames[name] = random_image(rng, (60, 50))
                save_image(path, frames[name], "PNG")
        emotion_dir = folder / "Emotion" / subject / seq
        emotion_dir.mkdir(parents=True)  # unlabelled sequences have an empty folder, as in CK+
        if code is not None:
            (emotion_dir / f"{subject}_{seq}_{n:08d}_emotion.txt").write_text(
                f"   {float(code):.7e}\n"
            )
    (folder / "cohn-kanade-images" / "S005" / "001" / ".DS_Store").write_bytes(b"\0\1junk")
    return CkOriginalFixture(folder, pack(folder, root / "ckplus_original.tar.gz"), frames)


@pytest.fixture(scope="session")
def ck_original_fx(tmp_path_factory: pytest.TempPathFactory) -> CkOriginalFixture:
    return build_ck_original(tmp_path_factory.mktemp("ck_original"))


# --------------------------------------------------------------------------------------------
# JAFFE: one flat folder of SS.EEn.id.tiff, KM's files in palette mode


@dataclass(frozen=True)
class JaffeFixture:
    folder: Path  # the flat folder; KM.* are palette ('P') TIFFs
    l_copy: Path  # the same images, every file mode 'L'
    zip: Path
    names: list[str]
    pixels: dict[str, np.ndarray]  # file name -> 64x64 pixels


JAFFE_SUBJECTS = ("KA", "KL", "KM", "NA")


def build_jaffe(root: Path) -> JaffeFixture:
    """4 subjects x 7 expressions, plus KA.HA2 and KL.SU2: 30 images, 64x64."""
    rng = np.random.default_rng(1998)
    folder, l_copy = root / "jaffe", root / "jaffe_L"
    folder.mkdir(parents=True)
    l_copy.mkdir()
    entries = [(s, e, 1) for s in JAFFE_SUBJECTS for e in JAFFE_CODES] + [("KA", "HA", 2), ("KL", "SU", 2)]
    ramp = [v for i in range(256) for v in (i, i, i)]  # identity gray palette
    names, pixels = [], {}
    for k, (subject, code, n) in enumerate(entries):
        name = f"{subject}.{code}{n}.{30 + k}.tiff"
        pixels[name] = random_image(rng, (64, 64))
        Image.fromarray(pixels[name], "L").save(l_copy / name, "TIFF")
        if subject == "KM":
            im = Image.new("P", (64, 64))
            im.putdata(pixels[name].ravel().tolist())
            im.putpalette(ramp)
            im.save(folder / name, "TIFF")
        else:
            Image.fromarray(pixels[name], "L").save(folder / name, "TIFF")
        names.append(name)
    (folder / "README").write_text("JAFFE fixture\n")
    return JaffeFixture(folder, l_copy, pack(folder, root / "jaffe.zip", prefix="jaffe/"), names, pixels)


@pytest.fixture(scope="session")
def jaffe_fx(tmp_path_factory: pytest.TempPathFactory) -> JaffeFixture:
    return build_jaffe(tmp_path_factory.mktemp("jaffe"))


# --------------------------------------------------------------------------------------------
# FERG-DB: FERG_DB_256/<character>/<character>_<expression>/<character>_<expression>_<n>.png


@dataclass(frozen=True)
class FergFixture:
    folder: Path  # holds FERG_DB_256/
    zip: Path
    files: list[str]  # relative paths under FERG_DB_256/
    gray: dict[str, np.ndarray]  # relative path -> expected grayscale (32x32)
    from_real_list: bool


def ferg_names(per_cell: int = 3) -> tuple[list[str], bool]:
    """The first ``per_cell`` names of every character/expression cell of the real file list
    (synthetic names where ../shared/data is missing)."""
    listing = SHARED / "ferg" / "FERG_DB_256_filenames.txt"
    if listing.is_file():
        cells: dict[tuple[str, str], list[str]] = {}
        for line in listing.read_text().split():
            char, expr, _ = line.split("_")
            cell = cells.setdefault((char, expr), [])
            if len(cell) < per_cell:
                cell.append(line)
        return [n for key in sorted(cells) for n in cells[key]], True
    names = [f"{c}_{e}_{i}.png" for c in FERG_CHARACTERS for e in FERG_EXPRESSIONS
             for i in range(1, per_cell + 1)]
    return names, False


def build_ferg(root: Path) -> FergFixture:
    rng = np.random.default_rng(2016_2)
    folder = root / "ferg"
    names, real = ferg_names()
    files, gray = [], {}
    for name in names:
        char, expr, _ = name.split("_")
        rel = f"{char}/{char}_{expr}/{name}"
        rgba = random_image(rng, (32, 32, 4))
        save_image(folder / "FERG_DB_256" / rel, rgba, "PNG")
        gray[rel] = np.asarray(Image.fromarray(rgba, "RGBA").convert("L"))
        files.append(rel)
    (folder / "FERG_DB_256" / "README.txt").write_text("FERG fixture\n")
    (folder / "FERG_DB_256" / "aia" / ".DS_Store").write_bytes(b"\0junk")
    return FergFixture(folder, pack(folder, root / "ferg.zip"), files, gray, real)


@pytest.fixture(scope="session")
def ferg_fx(tmp_path_factory: pytest.TempPathFactory) -> FergFixture:
    return build_ferg(tmp_path_factory.mktemp("ferg"))
