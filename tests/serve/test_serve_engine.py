"""The engine without HTTP: admission (503), deadlines (504), thread-private detectors, the heatmap's
placement, the settings and the ``deepfer serve`` command."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from deepfer.cli import main
from deepfer.errors import DeepferError, ParameterError
from deepfer.serve.engine import Engine
from deepfer.serve.errors import HTTPError
from deepfer.serve.settings import ServeSettings
from deepfer.vision import FRAMINGS, Detection, crop_face, uncrop


@pytest.fixture(scope="module")
def torch_engine():
    eng = Engine(ServeSettings(backend="torch", workers=1, max_queue=2, request_timeout=0.3, intra_threads=None))
    yield eng
    eng.close()


def test_full_queue_is_503_and_late_work_is_504(torch_engine: Engine) -> None:
    release = threading.Event()

    def slow(x: int) -> int:
        release.wait(5)
        return x

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(torch_engine._run(slow, 1))  # runs on the only worker
        second = asyncio.ensure_future(torch_engine._run(slow, 2))  # waits for it
        await asyncio.sleep(0.05)
        assert torch_engine.load == 2
        with pytest.raises(HTTPError) as busy:
            await torch_engine._run(slow, 3)  # max_queue 2: refused at once
        assert busy.value.status == 503 and busy.value.headers == {"Retry-After": "1"}
        results = await asyncio.gather(first, second, return_exceptions=True)
        # both answered 504; the first is still running (it cannot be stopped): still counted
        assert torch_engine.load == 1 and torch_engine.running == 1
        release.set()
        return results

    t0 = time.monotonic()
    results = asyncio.run(scenario())
    assert time.monotonic() - t0 < 2  # the timeout answered, not the slow work
    assert all(isinstance(r, HTTPError) and r.status == 504 for r in results)
    for _ in range(100):  # the released work ends in its thread
        if torch_engine.load == 0:
            break
        time.sleep(0.01)
    assert torch_engine.load == 0 and torch_engine.running == 0


def test_work_that_timed_out_in_the_queue_is_skipped(torch_engine: Engine) -> None:
    ran = []
    assert pytest.raises(HTTPError, torch_engine._guarded, time.monotonic() - 1, ran.append, 1).value.status == 504
    assert ran == []


def test_each_worker_thread_has_its_own_detector() -> None:
    eng = Engine(ServeSettings(backend="torch", workers=2, intra_threads=None))
    try:
        seen = []
        barrier = threading.Barrier(2)

        def grab() -> None:
            barrier.wait(5)
            rec = eng._worker_recognizer()
            seen.append((id(rec.detector), id(rec.classifier), rec is eng._worker_recognizer()))

        eng.start()
        futures = [eng._pool.submit(grab) for _ in range(2)]
        [f.result(10) for f in futures]
        assert len({d for d, _, _ in seen}) == 2  # two detectors
        assert len({c for _, c, _ in seen}) == 1  # one shared classifier
        assert all(same for _, _, same in seen)
    finally:
        eng.close()


def test_start_and_close_restore_thread_settings() -> None:
    import cv2
    import torch

    before = (torch.get_num_threads(), cv2.getNumThreads())
    eng = Engine(ServeSettings(backend="torch", intra_threads=1))
    eng.start()
    assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    eng.close()
    assert (torch.get_num_threads(), cv2.getNumThreads()) == before


@pytest.mark.parametrize("box", [(40, 30, 60, 60), (0, 0, 50, 70), (150, 100, 60, 60)])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_heatmap_lands_where_the_crop_came_from(box: tuple[int, int, int, int], scale: float) -> None:
    # An image whose one bright square, cropped like a face, is the map: placing the map back must
    # light up that square again.
    img = np.zeros((200, 220), np.uint8)
    x, y, w, h = box
    img[y + h // 3 : y + h // 2, x + w // 4 : x + w // 2] = 255
    det = Detection(box)
    crop = crop_face(img, det, FRAMINGS["haar"], 48).astype(np.float32) / 255
    out_shape = (round(200 * scale), round(220 * scale))
    placed = uncrop(crop, det, FRAMINGS["haar"], out_shape, scale)
    assert placed.shape == out_shape
    import cv2

    expected = cv2.resize(img.astype(np.float32) / 255, out_shape[::-1], interpolation=cv2.INTER_AREA)
    hot = placed > 0.5
    assert hot.any()
    assert (expected[hot] > 0.2).mean() > 0.9  # lit where the square is ...
    assert (placed[expected > 0.9] > 0.3).mean() > 0.9  # ... and the square is lit


def test_settings_are_validated() -> None:
    assert ServeSettings().loopback and ServeSettings(host="::1").loopback
    assert ServeSettings(host="localhost").loopback
    assert not ServeSettings(host="0.0.0.0").loopback
    assert ServeSettings(detector="haar").detector_spec.options() == {"work_width": None, "scale_factor": 1.2,
                                                                      "full_search": False}
    assert ServeSettings(detector="dlib", detect_width=320).detector_spec.options() == {"work_width": 320,
                                                                                         "full_search": False}
    spec = ServeSettings(detector="haar", min_face=48, min_score=0.3).detector_spec
    assert (spec.name, spec.min_face, spec.min_score) == ("haar", 48, 0.3)
    with pytest.raises(ParameterError, match="detect_step must be in") as err:
        ServeSettings(detect_step=1.0)
    assert err.value.param == "detect_step"
    for bad in ({"workers": 0}, {"max_queue": 1, "workers": 2}, {"port": 70000}, {"max_upload_bytes": 0},
                {"request_timeout": 0}, {"backend": "tf"}, {"detect_step": 1.0}, {"intra_threads": 0},
                {"min_face": -1}, {"min_score": 1.5}):
        with pytest.raises(DeepferError):
            ServeSettings(**bad)


def test_onnx_models_serve_predictions_but_not_explanations(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from deepfer.inference.export import export_onnx

    export_onnx(None, tmp_path / "m.onnx", check=False)
    eng = Engine(ServeSettings(model=str(tmp_path / "m.onnx"), intra_threads=None))
    try:
        assert eng.backend == "onnx" and eng.net is None
        assert eng.describe()["name"] == "m.onnx"  # the file's name, never the server's path
        with pytest.raises(HTTPError) as err:
            asyncio.run(eng.explain(None))  # type: ignore[arg-type]
        assert err.value.status == 501
    finally:
        eng.close()


def test_serve_command_builds_settings_and_runs(monkeypatch) -> None:
    import deepfer.serve.app as app_module

    got = []
    monkeypatch.setattr(app_module, "run", got.append)
    assert main(["serve", "--port", "9123", "--workers", "3", "--max-upload-mb", "2", "--detect-step", "1.2"]) == 0
    (s,) = got
    assert (s.host, s.port, s.workers, s.detect_step) == ("127.0.0.1", 9123, 3, 1.2)
    assert s.max_upload_bytes == 2 * 1024 * 1024


def test_serve_command_names_the_missing_extra(monkeypatch, capsys) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["serve"]) == 2
    assert "pip install -e '.[serve]'" in capsys.readouterr().err


def test_serve_command_refuses_bad_options(capsys) -> None:
    assert main(["serve", "--workers", "0"]) == 2
    assert main(["serve", "--port", "99999"]) == 2
    assert "port" in capsys.readouterr().err


class _Payload:
    """Unpickling this runs code: what a malicious checkpoint would carry."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoints_load_without_running_pickled_code(tmp_path) -> None:
    import torch

    from deepfer.errors import ModelError

    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"format": "deepfer-checkpoint", "payload": _Payload(str(marker))}, bad)
    with pytest.raises(ModelError, match="not a readable deepfer checkpoint"):
        Engine(ServeSettings(model=str(bad), backend="torch"))
    assert not marker.exists()
