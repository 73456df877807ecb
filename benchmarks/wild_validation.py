"""How much each ``wild`` condition costs a model on validation faces (FER2013 PublicTest), one
condition at a time and at several strengths: the evidence the ``wild`` policy's strengths are
chosen on. PrivateTest is not read.

Each condition is applied with a fixed strength to every PublicTest face (48x48 grey, the model's
input), with a fixed seed; the models are the shipped checkpoints (or run folders) given.

    python benchmarks/wild_validation.py [--models deepfer_fer2013-kd deepfer_fer2013-wild]

Writes benchmarks/WILD_VALIDATION.md and WILD_VALIDATION.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path

import torch

from deepfer.data import load_dataset, split
from deepfer.labels import map_to_model
from deepfer.models.classifier import build_classifier
from deepfer.train.evaluate import resolve_weights
from deepfer.train.wild_ops import LowResolution

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    import kornia.filters as KF

    k = 2 * math.ceil(3 * sigma) + 1
    return KF.gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="replicate")


def _rotate(x: torch.Tensor, deg: float) -> torch.Tensor:
    import kornia.geometry.transform as KT

    return KT.rotate(x, torch.full((x.shape[0],), float(deg)), padding_mode="border")


def _shift_scale(x: torch.Tensor, shift: float, scale: float) -> torch.Tensor:
    import kornia.geometry.transform as KT

    n, _, h, w = x.shape
    g = torch.Generator().manual_seed(0)
    t = (torch.rand(n, 2, generator=g) * 2 - 1) * shift * w
    return KT.translate(KT.scale(x, torch.full((n, 2), float(scale)), padding_mode="border"), t, padding_mode="border")


def _lowres(x: torch.Tensor, side: int) -> torch.Tensor:
    """Every face as a ``side``-px face scaled back up: the training op at one size, on all faces."""
    return LowResolution(x.shape[-1], smallest=side, largest=side, p=1.0)(x)


def _noise(x: torch.Tensor, std: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (x + torch.randn(x.shape, generator=g) * std).clamp(0, 1)


def _jpeg(x: torch.Tensor, q: float) -> torch.Tensor:
    import kornia.enhance as KE

    return KE.jpeg_codec_differentiable(x.expand(-1, 3, -1, -1), torch.tensor([q])).mean(1, keepdim=True).clamp(0, 1)


def _occlude(x: torch.Tensor, where: str) -> torch.Tensor:
    out = x.clone()
    h, w = x.shape[-2:]
    if where == "eyes":
        out[..., round(0.28 * h):round(0.44 * h), :] = 0.5
    else:
        out[..., round(0.62 * h):round(0.88 * h), round(0.2 * w):round(0.8 * w)] = 0.5
    return out


# (component, strength label, transform); strengths span what the policy samples and beyond.
CONDITIONS = [("clean", "-", lambda x: x)]
CONDITIONS += [("dark", f"gain {g}, gamma {gm}", lambda x, g=g, gm=gm: (x.clamp(min=1e-6) ** gm * g).clamp(0, 1))
               for g, gm in ((0.5, 1.0), (0.5, 2.2), (0.25, 2.2))]
CONDITIONS += [("bright", "gain 1.6", lambda x: (x * 1.6).clamp(0, 1))]
CONDITIONS += [("blur", f"sigma {s}", lambda x, s=s: _blur(x, s)) for s in (1.0, 1.8, 2.5)]
CONDITIONS += [("low resolution", f"{s} px", lambda x, s=s: _lowres(x, s)) for s in (24, 16, 12)]
CONDITIONS += [("roll", f"{d} deg", lambda x, d=d: _rotate(x, d)) for d in (10, 20, 30)]
CONDITIONS += [("box jitter", f"shift {s}, scale {c}", lambda x, s=s, c=c: _shift_scale(x, s, c))
               for s, c in ((0.08, 1.0), (0.0, 0.85), (0.0, 1.2))]
CONDITIONS += [("noise", f"std {s}", lambda x, s=s: _noise(x, s)) for s in (0.03, 0.06)]
CONDITIONS += [("jpeg", f"quality {q}", lambda x, q=q: _jpeg(x, q)) for q in (25, 10)]
CONDITIONS += [("occluder", w, lambda x, w=w: _occlude(x, w)) for w in ("eyes", "mouth")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["deepfer_fer2013-kd", "deepfer_fer2013-wild"])
    ap.add_argument("--limit", type=int, default=0, help="first N validation faces only (a quick check)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("WILD_VALIDATION.md")))
    args = ap.parse_args()
    data = load_dataset("fer2013", DATA)
    val = split(data, "official").folds[0].val
    if args.limit:
        val = val[: args.limit]
    faces = torch.from_numpy(data.images[val]).float().div(255)
    faces = faces[:, None] if faces.ndim == 3 else faces.permute(0, 3, 1, 2)
    rows: dict[str, dict[str, float]] = {}
    for name in args.models:
        clf = build_classifier(resolve_weights([name], 1)[0], batch_size=512)
        y = map_to_model(data.labels[val], clf.labels)
        for comp, strength, fn in CONDITIONS:
            with torch.no_grad():
                x = fn(faces)
            imgs = (x[:, 0] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
            acc = float((clf.predict_proba(imgs).argmax(1) == y).mean())
            rows.setdefault(f"{comp} | {strength}", {})[name] = acc
            print(f"{name:28s} {comp:15s} {strength:22s} {acc:.4f}", flush=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"n": int(len(val)), "rows": rows}, indent=1) + "\n")
    clean = rows["clean | -"]
    lines = ["# The `wild` conditions on validation faces", "",
             f"Written by `python benchmarks/wild_validation.py --models {' '.join(args.models)}` on "
             f"{platform.machine()}, Python {platform.python_version()}. Data: FER2013 PublicTest (official protocol's "
             f"validation split, {len(val)} faces), each condition applied to every face at one strength. "
             "Accuracy, and in brackets the change from the same model's clean accuracy (points). "
             "PrivateTest is not read.", "",
             "| condition | strength | " + " | ".join(args.models) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in args.models) + " |"]
    for key, accs in rows.items():
        comp, strength = key.split(" | ")
        cells = [f"{accs[m]:.3f} ({100 * (accs[m] - clean[m]):+.1f})" for m in args.models]
        lines.append(f"| {comp} | {strength} | " + " | ".join(cells) + " |")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
