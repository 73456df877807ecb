"""``benchmarks/load_test.py`` still runs (a 1-second, 2-client smoke run against a server it starts)
and refuses any target that is not loopback."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from serve_helpers import ROOT

pytestmark = pytest.mark.timeout(240)


def _load_test():
    spec = importlib.util.spec_from_file_location("load_test", ROOT / "benchmarks" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_reports_throughput_latency_errors_and_the_413_check(tmp_path: Path) -> None:
    lt = _load_test()
    out = tmp_path / "load.json"
    assert lt.main(["--clients", "2", "--duration", "1", "--warmup", "0", "--photos", "4",
                    "--big-upload-mb", "12", "--out", str(out), "--label", "smoke"]) == 0
    run = json.loads(out.read_text())["runs"]["smoke"]
    r = run["results"]
    assert r["requests_ok"] > 0 and r["errors"] == 0
    assert r["throughput_rps"] > 0 and 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"]
    assert r["faces_per_photo"].get("1", 0) > 0
    for kind in ("content_length", "chunked"):
        check = run["upload_413"][kind]
        assert check["status"] == 413 and check["growth_within_cap"] is True


def test_photos_differ_and_hold_one_face() -> None:
    lt = _load_test()
    photos = lt.make_photos(3)
    assert len(set(photos)) == 3 and all(p[:3] == b"\xff\xd8\xff" for p in photos)


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://192.168.0.1", "http://8.8.8.8:80"])
def test_only_loopback_targets(url: str) -> None:
    with pytest.raises(SystemExit, match="loopback only"):
        _load_test().loopback_target(url)
    assert _load_test().loopback_target("http://127.0.0.1:8123") == ("127.0.0.1", 8123)
