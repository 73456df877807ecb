"""The three ``wild`` augmentations kornia has no op for: small faces scaled up, exposure (gain and
gamma together, down to a quarter of the light), and occluders placed where a face's parts are in
the FER2013 framing (eyes at about 38% of the height, mouth at about 75%). Each acts on a float
batch (B, C, H, W) in [0, 1], per sample with probability ``p``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _chosen(x: Tensor, p: float) -> Tensor:
    """Indices of the samples an op with probability ``p`` acts on."""
    return torch.nonzero(torch.rand(x.shape[0]) < p).flatten().to(x.device)


class LowResolution(nn.Module):
    """A face of ``smallest``-``largest`` px (one size per batch) scaled back up to ``size``, as a
    small face in a photo is: the model never sees more detail than the camera caught."""

    def __init__(self, size: int, smallest: int = 16, largest: int = 32, p: float = 0.2) -> None:
        super().__init__()
        self.size, self.smallest, self.largest, self.p = size, smallest, largest, p

    def forward(self, x: Tensor) -> Tensor:
        idx = _chosen(x, self.p)
        if not len(idx):
            return x
        s = int(torch.randint(self.smallest, self.largest + 1, ()).item())
        small = F.interpolate(x[idx], size=(s, s), mode="area")
        out = x.clone()
        out[idx] = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False).clamp_(0, 1)
        return out


class RandomExposure(nn.Module):
    """Exposure: a gain in ``gain`` (0.25 = a quarter of the light, > 1 over-exposed and clipped)
    and a gamma in ``gamma`` (2.2 darkens the mid-tones as an under-exposed JPEG does)."""

    def __init__(self, gain: tuple[float, float] = (0.25, 1.6), gamma: tuple[float, float] = (0.6, 2.2),
                 p: float = 0.4) -> None:
        super().__init__()
        self.gain, self.gamma, self.p = gain, gamma, p

    def forward(self, x: Tensor) -> Tensor:
        idx = _chosen(x, self.p)
        if not len(idx):
            return x
        n = len(idx)
        shape = (n,) + (1,) * (x.ndim - 1)
        g = torch.empty(shape).uniform_(*self.gain).to(x)
        lo, hi = torch.log(torch.tensor(self.gamma))
        gam = torch.exp(torch.empty(shape).uniform_(float(lo), float(hi))).to(x)
        out = x.clone()
        out[idx] = (x[idx].clamp(min=1e-6) ** gam * g).clamp_(0, 1)
        return out


class RandomOccluder(nn.Module):
    """One occluder per chosen face: a hand-like patch over the mouth or a cheek, a bar over the
    eyes, or glasses-like frames (two rings and a bridge at eye height); a flat grey level."""

    def __init__(self, p: float = 0.25) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        idx = _chosen(x, self.p)
        if not len(idx):
            return x
        h, w = x.shape[-2:]
        yy = torch.arange(h, device=x.device).view(h, 1).float() / h
        xx = torch.arange(w, device=x.device).view(1, w).float() / w
        out = x.clone()
        for i in idx.tolist():
            kind = int(torch.randint(0, 3, ()).item())
            u = torch.rand(4).tolist()
            if kind == 0:  # hand-like patch: an ellipse over the mouth or one cheek
                cy, cx = 0.62 + 0.2 * u[0], 0.2 + 0.6 * u[1]
                ry, rx = 0.12 + 0.1 * u[2], 0.15 + 0.12 * u[3]
                mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            elif kind == 1:  # bar over the eyes
                cy, half = 0.33 + 0.1 * u[0], 0.05 + 0.05 * u[1]
                mask = ((yy - cy).abs() <= half) & (xx >= 0.05 * u[2]) & (xx <= 1 - 0.05 * u[3])
            else:  # glasses: two rings at eye height and a bridge
                cy, r, t = 0.36 + 0.06 * u[0], 0.1 + 0.04 * u[1], 0.025 + 0.02 * u[2]
                ring = torch.zeros(h, w, dtype=torch.bool, device=x.device)
                for cx in (0.31, 0.69):
                    d = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
                    ring |= (d - r).abs() <= t
                bridge = ((yy - cy).abs() <= t) & (xx > 0.31 + r) & (xx < 0.69 - r)
                mask = ring | bridge
            out[i][:, mask] = 0.8 * u[3] + 0.1 if kind != 2 else 0.15 * u[3]
        return out


class GrayJPEG(nn.Module):
    """kornia's differentiable JPEG codec (qualities in ``quality``) on grey or colour faces: a grey
    batch goes through as three equal channels and comes back as their mean."""

    def __init__(self, quality: tuple[float, float] = (25.0, 90.0), p: float = 0.2) -> None:
        super().__init__()
        import kornia.augmentation as K

        self.jpeg = K.RandomJPEG(jpeg_quality=quality, p=p)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 3:
            return self.jpeg(x)
        return self.jpeg(x.expand(-1, 3, -1, -1)).mean(1, keepdim=True).clamp_(0, 1)
