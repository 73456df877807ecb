"""The Python API: any image form in, the same faces and scores out; folders give a DataFrame;
per-file problems become error records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from infer_helpers import noise
from PIL import Image

from deepfer.models.predict import predict_proba
from deepfer.errors import DataError, DeepferError, ModelError
from deepfer.inference import Recognizer, read_image
from deepfer.inference.results import NO_FACE
from deepfer.labels import FER7
from deepfer.models.checkpoint import Checkpoint
from deepfer.vision import resize


def test_one_face_with_box_scores_and_label(recognizer: Recognizer, astronaut: Path) -> None:
    faces = recognizer.predict(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert list(face.scores) == list(FER7) == recognizer.labels
    assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.label == max(face.scores, key=face.scores.get)
    assert face.score == face.scores[face.label]
    x, y, w, h = face.box
    assert 150 < x < 200 and 40 < y < 90 and 80 < w < 120 and 80 < h < 130
    assert face.quality is not None and face.quality.width == w and face.quality.blur > 0
    if recognizer.detector is not None and recognizer.detector.name == "yunet":  # the default, with libfacedetection
        assert face.quality.score is not None and face.landmarks is not None and len(face.landmarks) == 5
    d = face.to_dict()
    assert d["box"] == list(face.box) and d["label"] == face.label


def test_path_pil_and_arrays_agree(recognizer: Recognizer, astronaut: Path) -> None:
    ref = recognizer.predict(astronaut)[0]
    rgb = np.asarray(Image.open(astronaut).convert("RGB"))
    for image, color in [(Image.open(astronaut), "rgb"), (rgb, "rgb"), (rgb[:, :, ::-1].copy(), "bgr"),
                         (rgb.astype(np.float32) / 255.0, "rgb"), (str(astronaut), "rgb")]:
        face = recognizer.predict(image, color=color)[0]
        assert face.box == ref.box
        # cv2's and Pillow's RGB->gray roundings differ by at most 1 grey level.
        assert face.label == ref.label
        assert max(abs(face.scores[k] - ref.scores[k]) for k in FER7) < 0.05


def test_no_detect_is_exactly_the_evaluation_preprocessing(checkpoint: Path) -> None:
    model = Checkpoint.load(checkpoint).build()
    rec = Recognizer(checkpoint, detector=None, tta="none")  # evaluation has no TTA
    images = [noise((48, 48), seed=i) for i in range(5)] + [noise((60, 90), seed=9)]
    faces = rec.predict(images)
    expect = predict_proba(model, np.stack([resize(im, 48) for im in images]))
    for found, p, im in zip(faces, expect, images):
        assert len(found) == 1
        assert found[0].box == (0, 0, im.shape[1], im.shape[0])
        np.testing.assert_allclose([found[0].scores[k] for k in FER7], p, rtol=0, atol=1e-6)


def test_batching_does_not_change_results(checkpoint: Path, astronaut: Path) -> None:
    pics = [read_image(astronaut)] * 3
    a = Recognizer(checkpoint, batch_size=1).predict(pics)
    b = Recognizer(checkpoint, batch_size=256).predict(pics)
    for fa, fb in zip(a, b):
        assert fa[0].box == fb[0].box
        np.testing.assert_allclose(list(fa[0].scores.values()), list(fb[0].scores.values()), atol=1e-6)


def test_no_face_gives_an_empty_list(recognizer: Recognizer) -> None:
    assert recognizer.predict(np.full((240, 320), 90, np.uint8)) == []


def test_unreadable_single_image_raises(recognizer: Recognizer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"no")
    with pytest.raises(DataError, match="bad.jpg"):
        recognizer.predict(bad)


@pytest.fixture
def folder(tmp_path: Path, astronaut: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "a_face.png").write_bytes(astronaut.read_bytes())
    (root / "b_empty.jpg").write_bytes(b"")
    (root / "c_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    Image.fromarray(noise((100, 120))).save(root / "sub" / "d_noface.png")
    (root / "sub" / "notes.txt").write_text("not an input")  # folders skip unknown suffixes
    return root


def test_iter_results_keeps_going_and_reports_each_problem(recognizer: Recognizer, folder: Path) -> None:
    results = list(recognizer.iter_results([folder, folder / "missing.png"]))
    names = [Path(r.path).name for r in results]
    assert names == ["a_face.png", "b_empty.jpg", "c_corrupt.png", "d_noface.png", "missing.png"]
    by = dict(zip(names, results))
    assert by["a_face.png"].error is None and len(by["a_face.png"].faces) == 1
    assert "empty file" in by["b_empty.jpg"].error and not by["b_empty.jpg"].decoded
    assert "cannot decode" in by["c_corrupt.png"].error or "not an image" in by["c_corrupt.png"].error
    assert by["d_noface.png"].error == NO_FACE and by["d_noface.png"].decoded
    assert "no such file" in by["missing.png"].error
    assert all(r.frame is None for r in results)
    assert results[0].to_dict().keys() == {"path", "frame", "faces", "error"}


def test_folder_gives_a_dataframe(recognizer: Recognizer, folder: Path) -> None:
    table = recognizer.predict_table(folder)
    assert list(table.columns) == ["path", "frame", "time", "face", "track", "detected", "x", "y", "w", "h", "label",
                                   "score", *FER7, "smoothed_label", *(f"smoothed_{k}" for k in FER7), "detector_score",
                                   "face_width", "roll", "yaw", "blur", "error"]
    assert len(table) == 4
    face = table[table.path.str.endswith("a_face.png")].iloc[0]
    assert face.label in FER7 and pd.isna(face.error)
    assert face[list(FER7)].sum() == pytest.approx(1.0, abs=1e-5)
    assert table.frame.isna().all()
    assert table.x.dtype.name == "Int64"
    assert table[table.path.str.endswith("d_noface.png")].error.iloc[0] == NO_FACE


def test_predict_refuses_folders_and_videos(recognizer: Recognizer, folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DeepferError, match=r"photos: a folder; Recognizer.predict reads images, use "
                                           r"Recognizer.predict_table for folders and videos"):
        recognizer.predict(folder)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not opened")
    with pytest.raises(DeepferError, match=r"clip.mp4: a video; .* Recognizer.predict_table"):
        recognizer.predict(str(video))


def test_empty_folder_is_an_error_record(recognizer: Recognizer, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    [r] = list(recognizer.iter_results(tmp_path / "empty"))
    assert "no images or videos" in r.error and not r.decoded


def test_model_object_and_labels(checkpoint: Path, astronaut: Path) -> None:
    ckpt = Checkpoint.load(checkpoint)
    model = ckpt.build()
    rec = Recognizer(model, labels=list(ckpt.labels))
    assert rec.labels == list(FER7) and rec.size == 48
    assert rec.predict(astronaut)[0].label in FER7
    with pytest.raises(ModelError, match="label names"):
        Recognizer(model, labels=["a", "b"])


def test_bad_options(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown backend"):
        Recognizer(checkpoint, backend="tensorrt")
    with pytest.raises(ModelError, match="onnx backend"):
        Recognizer(tmp_path / "m.onnx", backend="torch")
    with pytest.raises(DeepferError, match="unknown face detector"):
        Recognizer(checkpoint, detector="mtcnn")
    with pytest.raises(ModelError, match="no such checkpoint"):
        Recognizer(tmp_path / "missing.pt")


def test_default_model_without_shipped_weights_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    from deepfer.models import pretrained as weights

    monkeypatch.setattr(weights, "weights_folder", lambda: tmp_path)
    with pytest.raises(ModelError, match=f"no shipped weights named '{weights.DEFAULT}'"):
        Recognizer()
