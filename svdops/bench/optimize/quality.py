"""The quality gate for lower-precision paths: decoded frames against the reference's, same seed.

Two measures, both on the 8-bit RGB frames a user gets (after the pipeline's own post-processing):
PSNR over the whole video (and its worst frame), and SSIM (Wang et al. 2004: 11x11 Gaussian window,
sigma 1.5, K1 0.01, K2 0.03, data range 255) averaged over frames and channels. PSNR alone passes a
video whose error is spread thin but structured; SSIM alone is blind to a uniform brightness shift.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# 30 dB and 0.95 are the usual lines for "looks the same" in image and video codecs; for fp8 UNets
# they are a starting point, to be calibrated on a GPU (the README says they are not yet).
PSNR_MIN_DB = 30.0
SSIM_MIN = 0.95
# Identical frames have infinite PSNR; JSON has no infinity, so identical is reported as this.
PSNR_IDENTICAL_DB = 100.0


class QualityGateFailed(Exception):
    """The optimized output differs from the reference beyond the stated thresholds."""


@dataclass(frozen=True)
class QualityResult:
    psnr_db: float
    worst_frame_psnr_db: float
    ssim: float
    psnr_min_db: float
    ssim_min: float
    passed: bool
    frames: int
    method: str = "PSNR over all frames (8-bit RGB); SSIM 11x11 Gaussian sigma 1.5, mean over frames and channels"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"quality gate {verdict}: PSNR {self.psnr_db:.2f} dB (worst frame {self.worst_frame_psnr_db:.2f}, "
            f"needs >= {self.psnr_min_db:g}), SSIM {self.ssim:.4f} (needs >= {self.ssim_min:g}) "
            f"over {self.frames} frames against the reference at the same seed"
        )


def frames_array(frames: Any) -> Any:
    """The pipeline's output (a list per video of PIL frames, or an array) as uint8 (N, H, W, 3)."""
    import numpy as np

    if isinstance(frames, np.ndarray):
        array = frames
    else:
        array = np.stack([np.asarray(frame.convert("RGB")) for video in frames for frame in video])
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return array.reshape(-1, *array.shape[-3:])


def _psnr(mse: float) -> float:
    return PSNR_IDENTICAL_DB if mse == 0 else min(PSNR_IDENTICAL_DB, 10.0 * math.log10(255.0**2 / mse))


def psnr_db(reference: Any, test: Any) -> tuple[float, float]:
    """(PSNR of the whole video, PSNR of its worst frame), in dB, 8-bit data range."""
    import numpy as np

    diff = reference.astype(np.float64) - test.astype(np.float64)
    per_frame = (diff**2).reshape(diff.shape[0], -1).mean(axis=1)
    return _psnr(float(per_frame.mean())), min(_psnr(float(m)) for m in per_frame)


def ssim(reference: Any, test: Any) -> float:
    """Mean SSIM over frames and channels of two uint8 (N, H, W, 3) videos."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(reference).permute(0, 3, 1, 2).to(torch.float64)
    y = torch.from_numpy(test).permute(0, 3, 1, 2).to(torch.float64)
    size = min(11, x.shape[-2], x.shape[-1])
    size -= 1 - size % 2  # an odd window, so it has a centre
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    channels = x.shape[1]
    window = (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()

    def blur(t: Any) -> Any:
        return F.conv2d(t, window, groups=channels)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(index.mean())


def evaluate(reference: Any, test: Any, psnr_min_db: float = PSNR_MIN_DB, ssim_min: float = SSIM_MIN) -> QualityResult:
    """Compare two outputs of the same call; a different frame count or size fails outright."""
    ref, out = frames_array(reference), frames_array(test)
    if ref.shape != out.shape:
        return QualityResult(0.0, 0.0, 0.0, psnr_min_db, ssim_min, False, int(out.shape[0]),
                             method=f"shapes differ: reference {ref.shape}, optimized {out.shape}")  # fmt: skip
    whole, worst = psnr_db(ref, out)
    similarity = ssim(ref, out)
    passed = whole >= psnr_min_db and similarity >= ssim_min
    return QualityResult(whole, worst, similarity, psnr_min_db, ssim_min, passed, int(ref.shape[0]))
