"""Calibrate the --optimize max quality gate on the spread between harmless variants of one video.

The gate compares the first timed output of an optimized pipeline with the reference pipeline's
output at the same seed, steps and shape (svdops/bench/optimize/quality.py). Its thresholds must
pass what is only rounding and fail what is another video. This measures both on the CPU:

    harmless   the same seed in fp32, bf16 and fp16, and VAE decode chunk sizes 1, 2 and 8
    different  another seed (a wrong output that is still a plausible video)

with the `tiny` scenario's architecture (the SVD pipeline classes, small widths, random weights
from the scenario's seed). Writes benchmarks/results/quality_calibration.json and .md.

    PYTHONPATH=. python benchmarks/quality_calibration.py [--steps 8] [--frames 8]

What this does not measure: the trained SVD-XT weights at 576x1024 on a GPU, where fp8 paths live;
the thresholds derived here are the CPU/tiny ones until that run exists (README, bench section).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from svdops.bench.config import BenchRequest, resolve_points
from svdops.bench.invoke import conditioning_image, pipeline_call
from svdops.bench.models import build_random_pipeline
from svdops.bench.optimize import quality

RESULTS = Path(__file__).parent / "results"


def video(dtype: str, seed: int, decode_chunk: int, steps: int, frames: int) -> object:
    request = BenchRequest(scenario="tiny", device="cpu", dtype=dtype, steps=steps, frames=frames,
                           decode_chunk=decode_chunk)  # fmt: skip
    (point,) = resolve_points(request, "cpu")
    pipe, _ = build_random_pipeline(point, "cpu")  # weights seeded by the scenario: the same in every dtype
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = pipeline_call(pipe, conditioning_image(point), point, steps=steps, generator=generator)
    return quality.frames_array(out.frames)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    start = time.perf_counter()
    torch.set_num_threads(2)
    ref = video("fp32", 0, 2, args.steps, args.frames)
    variants = {
        "bf16": ("harmless", video("bf16", 0, 2, args.steps, args.frames)),
        "fp16": ("harmless", video("fp16", 0, 2, args.steps, args.frames)),
        "decode_chunk=1": ("harmless", video("fp32", 0, 1, args.steps, args.frames)),
        "decode_chunk=8": ("harmless", video("fp32", 0, 8, args.steps, args.frames)),
        "fp16 decode_chunk=1": ("harmless", video("fp16", 0, 1, args.steps, args.frames)),
        "seed 1": ("different", video("fp32", 1, 2, args.steps, args.frames)),
        "seed 2": ("different", video("fp32", 2, 2, args.steps, args.frames)),
        "bf16 seed 1": ("different", video("bf16", 1, 2, args.steps, args.frames)),
    }
    rows = []
    for name, (kind, frames) in variants.items():
        r = quality.evaluate(ref, frames, psnr_min_db=0.0, ssim_min=0.0)
        rows.append({"variant": name, "kind": kind, "psnr_db": round(r.psnr_db, 3),
                     "worst_frame_psnr_db": round(r.worst_frame_psnr_db, 3), "ssim": round(r.ssim, 5)})  # fmt: skip
    harmless = [r for r in rows if r["kind"] == "harmless"]
    different = [r for r in rows if r["kind"] == "different"]
    doc = {
        "what": "PSNR/SSIM of each variant against fp32, seed 0, decode chunk 2 (the reference)",
        "scenario": "tiny", "steps": args.steps, "frames": args.frames, "device": "cpu",
        "torch": torch.__version__, "machine": platform.machine(), "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
        "harmless_min": {"psnr_db": min(r["psnr_db"] for r in harmless), "ssim": min(r["ssim"] for r in harmless)},
        "different_max": {"psnr_db": max(r["psnr_db"] for r in different), "ssim": max(r["ssim"] for r in different)},
    }  # fmt: skip
    derived = quality.derive_thresholds(doc)
    doc["derived"] = derived
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality_calibration.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "# Quality gate calibration (benchmarks/quality_calibration.py)", "",
        f"tiny scenario on the CPU, {args.steps} steps, {args.frames} frames, torch {torch.__version__}; "
        "each variant against the fp32 reference at seed 0, decode chunk 2.", "",
        "| variant | kind | PSNR dB | worst frame dB | SSIM |", "|---|---|---|---|---|",
        *(f"| {r['variant']} | {r['kind']} | {r['psnr_db']} | {r['worst_frame_psnr_db']} | {r['ssim']} |"
          for r in rows),
        "", f"Derived: {derived['text']}", "",
    ]  # fmt: skip
    (RESULTS / "quality_calibration.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
