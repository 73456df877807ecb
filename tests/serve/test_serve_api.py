"""The REST API through FastAPI's test client: answers in the shape (and with the values) of
``deepfer predict --format json``, heatmaps, every limit, and the error mapping."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_helpers import blank, encode, portrait, read_png

from deepfer.cli import main
from deepfer.models import pretrained as weights
from deepfer.errors import DataError
from deepfer.vision import crop_square
from deepfer.serve.settings import EXPLAIN_METHODS, ServeSettings

FORMATS = [("PNG", "image/png"), ("WEBP", "image/webp"), ("BMP", "image/bmp"), ("GIF", "image/gif"),
           ("TIFF", "image/tiff")]


def post(client, data: bytes, name: str = "photo.jpg", path: str = "/v1/predict", ctype: str = "image/jpeg"):
    return client.post(path, files={"image": (name, data, ctype)})


# -- predict ---------------------------------------------------------------------------------------

def test_predict_matches_the_cli_json_record(client, photo: bytes, tmp_path: Path, capsys) -> None:
    r = post(client, photo)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    got = r.json()
    assert set(got) == {"path", "frame", "faces", "error"}
    assert got["path"] == "photo.jpg" and got["frame"] is None and got["error"] is None

    (tmp_path / "photo.jpg").write_bytes(photo)
    # the server searches face sizes in steps of 1.2 (predict: 1.1); with the same step, the same answer
    assert main(["predict", str(tmp_path / "photo.jpg"), "--format", "json", "--no-progress",
                 "--detect-step", str(ServeSettings().detect_step)]) == 0
    want = json.loads(capsys.readouterr().out.splitlines()[0])
    assert len(got["faces"]) == len(want["faces"]) == 1
    for g, w in zip(got["faces"], want["faces"], strict=True):
        assert g["box"] == w["box"]
        assert g["label"] == w["label"]
        assert list(g["scores"]) == list(w["scores"])  # the model's label order
        # the server runs the ONNX export, the CLI torch: equal to float32 rounding
        np.testing.assert_allclose(list(g["scores"].values()), list(w["scores"].values()), atol=1e-4)
        assert abs(sum(g["scores"].values()) - 1) < 1e-4


def test_predict_raw_body_equals_multipart(client, photo: bytes) -> None:
    form = post(client, photo).json()
    raw = client.post("/v1/predict", content=photo, headers={"content-type": "image/jpeg"}).json()
    assert raw["path"] is None
    assert raw["faces"] == form["faces"]


def test_no_face_is_200_with_an_empty_list(client) -> None:
    r = post(client, blank(), "grey.png", ctype="image/png")
    assert r.status_code == 200
    assert r.json() == {"path": "grey.png", "frame": None, "faces": [], "error": "no face found"}


@pytest.mark.parametrize(("fmt", "ctype"), FORMATS)
def test_every_sniffed_format_is_read(client, photo: bytes, fmt: str, ctype: str) -> None:
    im = portrait()
    data = encode(im.convert("P") if fmt == "GIF" else im, fmt)
    r = post(client, data, f"photo.{fmt.lower()}", ctype=ctype)
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    assert len(faces) == 1
    ref = post(client, photo).json()["faces"][0]
    assert np.abs(np.subtract(faces[0]["box"], ref["box"])).max() <= 8  # JPEG / palette losses only


def test_client_file_names_are_labels_never_paths(client, photo: bytes) -> None:
    assert post(client, photo, "../../etc/passwd").json()["path"] == "passwd"
    assert post(client, photo, "C:\\Users\\me\\face.jpg").json()["path"] == "face.jpg"
    # and a path in place of an image is just bytes that are not an image
    r = client.post("/v1/predict", json={"path": "/etc/passwd"})
    assert r.status_code == 415


# -- content checks -------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"hello, world: plain text, not an image", b"<html><body>hi</body></html>",
                                  b"BM" + b"\x00" * 40, b"RIFF\x00\x00\x00\x00WAVEfmt ", b"%PDF-1.7\n" + b"0" * 32])
def test_not_an_image_by_its_first_bytes_is_415(client, data: bytes) -> None:
    r = post(client, data, "photo.jpg", ctype="image/jpeg")  # the name and the type lie
    assert r.status_code == 415
    assert "not a supported image" in r.json()["error"]


def test_other_content_types_are_415(client, photo: bytes) -> None:
    r = client.post("/v1/predict", content=photo, headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert "multipart/form-data" in r.json()["error"]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"\xff\xd8\xff\xe0" + bytes(200), "not a valid JPEG image"),
])
def test_bad_images_are_400(client, data: bytes, message: str) -> None:
    r = post(client, data)
    assert r.status_code == 400
    assert message in r.json()["error"]


def test_truncated_image_is_400(client, photo: bytes) -> None:
    r = post(client, photo[: len(photo) // 3])
    assert r.status_code == 400
    assert r.json()["error"].startswith("photo.jpg: cannot decode JPEG image")


def test_form_without_an_image_is_400(client) -> None:
    r = client.post("/v1/predict", data={"note": "no file here"}, files={"other": (None, b"x")})
    assert r.status_code == 400
    assert "field named 'image'" in r.json()["error"]
    bad = client.post("/v1/predict", content=b"--xyz\r\ngarbage",
                      headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert bad.status_code == 400
    nob = client.post("/v1/predict", content=b"x", headers={"content-type": "multipart/form-data"})
    assert nob.status_code == 400 and "boundary" in nob.json()["error"]


# -- size limits -------------------------------------------------------------------------------------

def test_declared_size_over_the_cap_is_413_before_reading(small_client) -> None:
    r = small_client.post("/v1/predict", content=b"\xff\xd8\xff" + bytes(100_000),
                          headers={"content-type": "image/jpeg"})
    assert r.status_code == 413
    assert "larger than the 64 KiB limit" in r.json()["error"]


def test_streamed_size_over_the_cap_is_413(small_client) -> None:
    # chunked, no Content-Length: the cap is counted while reading (test_serve_server.py shows,
    # on a real server, that the refusal comes before the body ends)
    body = (b"\xff\xd8\xff\xe0" + bytes(16 * 1024 - 4) for _ in range(100))
    r = small_client.post("/v1/predict", content=body, headers={"content-type": "image/jpeg"})
    assert r.status_code == 413


def test_multipart_image_over_the_cap_is_413(small_client) -> None:
    r = post(small_client, b"\xff\xd8\xff\xe0" + bytes(70_000))
    assert r.status_code == 413


@pytest.mark.parametrize("size", [(1600, 10), (1100, 1000)])  # longer than max_side; more than max_pixels
def test_image_dimensions_over_the_cap_are_413(small_client, size: tuple[int, int]) -> None:
    data = encode(Image.new("L", size, 100), "PNG", optimize=True)
    assert len(data) < 64 * 1024
    r = post(small_client, data, "big.png", ctype="image/png")
    assert r.status_code == 413
    assert f"{size[0]}x{size[1]}" in r.json()["error"]


def test_decompression_bomb_header_is_refused_before_decoding(small_client) -> None:
    # A valid PNG header claiming 60000 x 60000 pixels, with no pixel data behind it.
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))
    r = post(small_client, png, "bomb.png", ctype="image/png")
    assert r.status_code == 413


# -- explain -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", EXPLAIN_METHODS)
def test_explain_overlay_lies_on_the_face(client, photo: bytes, method: str) -> None:
    face = post(client, photo).json()["faces"][0]
    r = post(client, photo, path=f"/v1/explain?mode=overlay&method={method}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-deepfer-faces"] == "1"
    assert r.headers["x-deepfer-labels"] == face["label"]
    rgba = read_png(r.content)
    assert rgba.shape == (480, 640, 4)
    alpha = rgba[..., 3]
    assert alpha.max() > 100  # the map's peak is drawn
    ys, xs = np.nonzero(alpha)
    cx, cy, side = crop_square(tuple(face["box"]), client.app.state.engine.recognizer.framing)
    # A crop turned to level the eyes covers a turned square: its half extent grows with the roll.
    roll = np.radians(abs(face["quality"]["roll"] or 0.0))
    half = side / 2 * (np.cos(roll) + np.sin(roll))
    assert xs.min() >= cx - half - 2 and xs.max() <= cx + half + 2
    assert ys.min() >= cy - half - 2 and ys.max() <= cy + half + 2


def test_explain_blend_is_the_photo_with_the_map(client, photo: bytes) -> None:
    r = post(client, photo, path="/v1/explain")
    assert r.status_code == 200
    rgb = read_png(r.content)
    assert rgb.shape == (480, 640, 3)
    original = np.asarray(Image.open(__import__("io").BytesIO(photo)).convert("RGB")).astype(int)
    diff = np.abs(rgb.astype(int) - original).sum(2)
    assert diff[:, :40].max() <= 2  # away from the face: the photo itself
    assert diff.max() > 60  # on the face: coloured


def test_explain_keeps_large_images_small(client) -> None:
    data = encode(portrait((2000, 1500)))
    rgba = read_png(post(client, data, path="/v1/explain?mode=overlay").content)
    assert rgba.shape == (768, 1024, 4)


def test_explain_without_a_face_is_an_empty_overlay(client) -> None:
    r = post(client, blank(), "grey.png", path="/v1/explain?mode=overlay", ctype="image/png")
    assert r.status_code == 200
    assert r.headers["x-deepfer-faces"] == "0"
    assert read_png(r.content)[..., 3].max() == 0


def test_explain_rejects_unknown_options(client, photo: bytes) -> None:
    r = post(client, photo, path="/v1/explain?method=magic")
    assert r.status_code == 422
    assert "method" in r.json()["error"]


# -- service endpoints, docs, page -------------------------------------------------------------------

def test_models_health_and_docs(client) -> None:
    info = client.get("/v1/models").json()
    assert info["model"]["name"] == weights.DEFAULT
    assert info["model"]["labels"][:3] == ["angry", "disgust", "fear"]
    assert info["model"]["explain"] is True
    assert info["limits"]["max_upload_bytes"] == 10 * 1024 * 1024
    assert any(w["name"] == "deep-emotion_fer2013" for w in info["weights"])
    assert client.get("/healthz").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "image/*" in body
    assert {"/v1/predict", "/v1/explain", "/v1/models", "/healthz"} <= set(spec["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "cdn." not in docs.text and "http" not in docs.text.split("<body>")[0].replace("http-equiv", "")
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


def test_page_and_its_files_load_nothing_from_elsewhere(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    static = Path(__import__("deepfer.serve.app", fromlist=["STATIC"]).STATIC)
    names = sorted(p.name for p in static.iterdir())
    assert names == ["app.css", "app.js", "index.html"]
    for name in names:
        text = (static / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
        assert client.get("/" if name == "index.html" else f"/static/{name}").status_code == 200
    assert client.get("/static/../app.py").status_code == 404


def test_unknown_routes_answer_json(client) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    assert client.get("/v1/predict").status_code == 405


# -- error mapping -----------------------------------------------------------------------------------

def test_unexpected_errors_are_500_logged_and_not_leaked(client, engine, photo: bytes, monkeypatch,
                                                         caplog) -> None:
    def boom(upload):
        raise RuntimeError("secret detail at /srv/models/x.pt")

    monkeypatch.setattr(engine, "_predict", boom)
    with caplog.at_level(logging.ERROR, logger="deepfer.serve"):
        r = post(client, photo)
    assert r.status_code == 500
    assert r.json() == {"error": "internal server error (logged on the server)"}
    assert "secret" not in r.text and "Traceback" not in r.text
    logged = [rec for rec in caplog.records if rec.exc_info]
    assert logged and "secret detail" in str(logged[0].exc_info[1])


def test_library_data_errors_are_400(client, engine, photo: bytes, monkeypatch) -> None:
    def bad(upload):
        raise DataError("photo.jpg: image of 0x0 pixels")

    monkeypatch.setattr(engine, "_predict", bad)
    r = post(client, photo)
    assert r.status_code == 400
    assert r.json() == {"error": "photo.jpg: image of 0x0 pixels"}
