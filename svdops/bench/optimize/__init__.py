"""`svdops bench --optimize safe|max`: the reference pipeline made faster, lever by lever.

    levers         each lever: where it applies (device, dtype, GPU architecture), what it changes
    attention      SDPA with the temporal attention's huge batch split for the flash/cuDNN kernels
    compile_cache  Inductor's caches in ~/.cache/svdops (or --compile-cache), cold/warm reported
    quality        PSNR/SSIM of the decoded frames against the reference, the gate for `max`

`none` (the default) is the reference and changes nothing. The runner calls `optimize_pipeline`
once, after building the pipeline and before anything is timed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from svdops.bench.config import PointConfig
from svdops.bench.optimize import compile_cache, quality
from svdops.bench.optimize.levers import COMPILE_MODES, LEVELS, CompileUNet, Lever, levers_for

__all__ = ["COMPILE_MODES", "LEVELS", "Optimization", "optimize_pipeline"]


@dataclass
class Optimization:
    """What --optimize did to the pipeline, and (for `max`) the reference output it must match."""

    level: str
    compile_mode: str
    arch: tuple[int, int] | None
    levers: list[dict[str, Any]] = field(default_factory=list)
    cache: compile_cache.CompileCache | None = None
    reference: Any = None  # uint8 frames of the unoptimized pipeline at point 0, for the gate
    verdict: quality.QualityResult | None = None
    setup_s: float | None = None  # applying the levers, with the gate's reference call

    @property
    def compiled(self) -> bool:
        return any(lv["status"] == "applied" and lv["name"].startswith("compile-") for lv in self.levers)

    @property
    def gate_pending(self) -> bool:
        return self.reference is not None and self.verdict is None

    def check(self, frames: Any) -> quality.QualityResult:
        """Judge the first timed output (same seed, steps and shape as the reference) once."""
        self.verdict = quality.evaluate(self.reference, frames)
        self.reference = None  # up to 44 MB per SVD-XT video: not kept past the check
        return self.verdict

    def to_dict(self, compile_s: float | None = None) -> dict[str, Any]:
        if self.verdict is not None:
            gate: dict[str, Any] = {"checked": True, **self.verdict.to_dict(), "text": self.verdict.describe()}
        elif self.level == "max":
            gate = {"checked": False, "why": "no timed iteration of point 0 finished",
                    "psnr_min_db": quality.PSNR_MIN_DB, "ssim_min": quality.SSIM_MIN}  # fmt: skip
        else:
            why = ("safe levers are tested equal to the reference within fp16 tolerance (tests/*/test_optimize*.py); "
                   "the gate guards the lower-precision paths of --optimize max")  # fmt: skip
            gate = {"checked": False, "why": why}
        return {
            "level": self.level,
            "compile_mode": self.compile_mode,
            "arch": f"sm{self.arch[0]}{self.arch[1]}" if self.arch else None,
            "levers": self.levers,
            "applied": [lv["name"] for lv in self.levers if lv["status"] == "applied"],
            "compile_cache": self.cache.report(compile_s) if self.cache else None,
            "quality_gate": gate,
        }


def device_arch(device: str) -> tuple[int, int] | None:
    if not device.startswith("cuda"):
        return None
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def optimize_pipeline(
    pipe: Any,
    point: PointConfig,
    *,
    cache_dir: str | None = None,
    reference: Callable[[], Any] | None = None,
    levers: list[Lever] | None = None,
) -> Optimization:
    """Apply the levers of `point.optimize` to `pipe` in place; say what each did or why it did not.

    `reference()` runs the pipeline as built and returns its frames: for `max` it is called once,
    before any lever, and the first timed output is later judged against it. `levers` replaces the
    level's own list (tests put a deliberately broken lever in it).
    """
    arch = device_arch(point.device)
    result = Optimization(level=point.optimize, compile_mode=point.compile_mode, arch=arch)
    chosen = levers if levers is not None else levers_for(
        point.optimize, compile_mode=point.compile_mode, compile_requested=point.compile,
        offload=point.cpu_offload, height=point.height, width=point.width,
    )  # fmt: skip
    if point.optimize == "max" and reference is not None:
        result.reference = quality.frames_array(reference())
    decisions = [(lever, lever.applies_to(point.device, point.dtype, arch)) for lever in chosen]
    if any(d.applies and isinstance(lv, CompileUNet) for lv, d in decisions):
        result.cache = compile_cache.configure(cache_dir)
    for lever, decision in decisions:
        entry = {"name": lever.name, "level": lever.level, "summary": lever.summary}
        if not decision.applies:
            entry.update(status="declined", reason=decision.reason)
        else:
            try:
                entry.update(status="applied", note=lever.apply(pipe))
            except Exception as exc:  # one lever that breaks must not cost the run: record it, go on
                entry.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
        result.levers.append(entry)
    return result
