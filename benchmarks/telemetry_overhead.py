"""Does the telemetry sampler slow the benchmark down? The same torch loop with and without it.

    .venv/bin/python benchmarks/telemetry_overhead.py                 # CPU matmuls, NVML from the H100 recording
    python benchmarks/telemetry_overhead.py --device cuda --real-nvml  # on a GPU host

Trials alternate (off, on, off, on, ...) so drift in clocks or in other load on the machine falls on
both sides alike. The verdict compares the fastest trial of each side (interference only ever adds
time, so the minimum is the steadiest estimate of the loop's own cost); the median of per-pair
differences and its spread are printed beside it to show the noise. Without a GPU the sampler
reads the fake NVML built from a real H100 recording (tests/support/fake_nvml.py): the thread, its
schedule and its Python work are the real ones, only the driver calls are replaced.
Writes a Markdown summary (default benchmarks/results/telemetry_overhead.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from svdops.telemetry import TelemetrySampler  # noqa: E402
from tests.support.fake_nvml import FakeNvml  # noqa: E402


def fake_nvml():
    return FakeNvml()


def make_loop(device: str, size: int):
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)

    def loop(iterations: int) -> float:
        start = time.perf_counter()
        for _ in range(iterations):
            torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return loop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=512, help="matrix size")
    parser.add_argument("--trial-s", type=float, default=0.5, help="about this long per trial")
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--real-nvml", action="store_true", help="sample the real GPU through pynvml")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "telemetry_overhead.md")
    args = parser.parse_args()

    loop = make_loop(args.device, args.size)
    loop(5)
    per_iteration = loop(20) / 20
    iterations = max(10, int(args.trial_s / per_iteration))

    def sampler() -> TelemetrySampler:
        return TelemetrySampler(0, hz=args.hz, nvml=None if args.real_nvml else fake_nvml())

    off: list[float] = []
    on: list[float] = []
    samples = 0
    sampler_cpu_s = 0.0
    for _ in range(args.pairs):
        off.append(loop(iterations))
        with sampler() as s:
            on.append(loop(iterations))
        samples += len(s.samples)
        sampler_cpu_s += s.thread_cpu_s
        if not s.available:
            print(f"telemetry unavailable: {s.note}", file=sys.stderr)
            return 2
    # The sampler's own CPU time is its cost, measured directly: unlike the A/B difference it does
    # not drown in noise when other work shares the machine.
    cpu_share = sampler_cpu_s / sum(on) * 100
    diffs = [(b - a) / a * 100 for a, b in zip(off, on, strict=True)]
    median_diff = statistics.median(diffs)
    spread = statistics.median(abs(d - median_diff) for d in diffs)
    min_diff = (min(on) - min(off)) / min(off) * 100
    verdict = "PASS" if abs(min_diff) < 1.0 else "FAIL"

    cpu = platform.processor() or platform.machine()
    lines = [
        "# Telemetry sampler overhead",
        "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} with `benchmarks/telemetry_overhead.py`.",
        "",
        f"- Machine: {platform.node()}, {os.cpu_count()} CPU(s) ({cpu}), {platform.platform()}",
        f"- torch {torch.__version__}, device `{args.device}`, {torch.get_num_threads()} intra-op threads",
        f"- Loop: {iterations} x `torch.mm` of {args.size}x{args.size} float32 per trial "
        f"(about {statistics.median(off):.2f} s), {args.pairs} alternating off/on pairs",
        f"- Sampler: {args.hz:g} Hz, NVML = "
        + ("real pynvml" if args.real_nvml else "fake built from the H100 recording (no GPU here)")
        + f"; {samples / args.pairs:.1f} samples per trial",
        "",
        "| | median trial s | min trial s |",
        "|---|---|---|",
        f"| without sampler | {statistics.median(off):.4f} | {min(off):.4f} |",
        f"| with sampler | {statistics.median(on):.4f} | {min(on):.4f} |",
        "",
        f"Difference, fastest trial with vs without: **{min_diff:+.2f}%**. Requirement: under 1% -> **{verdict}**.",
        f"Median of the per-pair differences: {median_diff:+.2f}% (median absolute deviation {spread:.2f} points:",
        "the noise of this machine, which shares its CPUs).",
        "",
        f"CPU time of the sampler thread itself: {sampler_cpu_s * 1000:.1f} ms over {sum(on):.1f} s of sampled "
        f"loop = **{cpu_share:.3f}%** of the wall time ({sampler_cpu_s / max(samples, 1) * 1e6:.0f} us per sample).",
        "",
    ]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
