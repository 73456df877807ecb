"""On the real datasets (skipped where ../shared/data is missing): ``--no-detect`` introduces no
preprocessing difference on FER2013 PrivateTest crops, and the detectors find the face in JAFFE
photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from infer_helpers import SHARED
from PIL import Image

from deepfer.models.predict import predict_proba
from deepfer.cli import main
from deepfer.inference import Recognizer
from deepfer.models.checkpoint import Checkpoint

FER2013 = SHARED / "fer2013" / "fer2013_images.tar.gz"
JAFFE = SHARED / "jaffe" / "jaffe"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def private_test():
    if not FER2013.is_file():
        pytest.skip(f"{FER2013} is missing")
    from deepfer.data import load_fer2013, split

    data = load_fer2013(FER2013)
    test = split(data, "official").folds[0].test
    assert set(data.splits[test]) == {"PrivateTest"}
    return data, test[:300]


def test_no_detect_equals_evaluation_on_fer2013_private_test(private_test, checkpoint: Path,
                                                             tmp_path: Path, capsys) -> None:
    data, idx = private_test
    ckpt = Checkpoint.load(checkpoint)
    model = ckpt.build()
    expect = predict_proba(model, data.images[idx])
    # The Python API on the decoded arrays ...
    rec = Recognizer(checkpoint, detector=None, tta="none")  # evaluation has no TTA
    faces = rec.predict(list(data.images[idx]))
    got = np.array([[f[0].scores[k] for k in ckpt.labels] for f in faces])
    np.testing.assert_array_equal(got.argmax(1), expect.argmax(1))
    assert np.abs(got - expect).max() < 1e-5
    # ... and the CLI on the same crops written as lossless files.
    for n, i in enumerate(idx):
        Image.fromarray(data.images[i]).save(tmp_path / f"{n:04d}.png")
    assert main(["predict", str(tmp_path), "--no-detect", "--no-progress", "--format", "json",
                 "--model", str(checkpoint), "--tta", "none"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    labels = [r["faces"][0]["label"] for r in records]
    assert labels == [ckpt.labels[k] for k in expect.argmax(1)]


@pytest.mark.parametrize("detector", ["auto", "haar"])
def test_the_detectors_find_the_face_in_jaffe_photos(checkpoint: Path, detector: str) -> None:
    files = sorted(JAFFE.glob("*.tiff"))
    if not files:
        pytest.skip(f"{JAFFE} is missing")
    rec = Recognizer(checkpoint, detector=detector)
    found = [len(f) for f in rec.predict(files[::3])]  # 71 of the 213 photos
    assert np.mean(np.array(found) == 1) >= 0.97
