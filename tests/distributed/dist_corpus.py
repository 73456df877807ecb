"""Generated inputs for the distributed tests and benchmarks/distributed.py: photos made from the
bundled public-domain astronaut photo (crops, scales, brightness, mirror) and a video of it moving
slowly (no dataset image is copied); and the processes a run started (to SIGKILL one of its workers)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deepfer.inference import sample_image


def make_images(folder: Path, n: int, side: int = 160, seed: int = 0) -> list[Path]:
    """``n`` JPEG photos of one face, each cropped, scaled and lit differently."""
    rng = np.random.default_rng(seed)
    src = cv2.imread(str(sample_image()))
    h, w = src.shape[:2]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        s = rng.uniform(0.55, 0.9)
        cw, ch = int(w * s), int(h * s)
        x, y = rng.integers(0, w - cw + 1), rng.integers(0, max(1, h // 3 - ch // 4))
        crop = src[y : y + ch, x : x + cw]
        img = cv2.resize(crop, (side, int(side * ch / cw)), interpolation=cv2.INTER_AREA)
        img = np.clip(img.astype(np.float32) * rng.uniform(0.7, 1.2), 0, 255).astype(np.uint8)
        if i % 2:
            img = img[:, ::-1]
        path = folder / f"{i // 50:02d}" / f"img{i:04d}.jpg"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), img)
        out.append(path)
    return out


def make_video(path: Path, seconds: float, fps: float = 10.0, side: int = 160) -> Path:
    """An MJPG ``.avi`` of the photo drifting sideways, ``seconds`` long."""
    src = cv2.imread(str(sample_image()))
    h, w = src.shape[:2]
    crop = src[: int(h * 0.8), int(w * 0.05) : int(w * 0.85)]
    base = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    pad = cv2.copyMakeBorder(base, 0, 0, 20, 20, cv2.BORDER_REPLICATE)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (side, side))
    for i in range(round(seconds * fps)):
        dx = int(10 + 10 * np.sin(i / 8))
        writer.write(np.ascontiguousarray(pad[:, dx : dx + side]))
    writer.release()
    return path


def descendants(pid: int) -> dict[int, str]:
    """pid -> command line of every process below ``pid`` (read from /proc)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = {}, [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                try:
                    found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                frontier.append(child)
    return found
