"""How long `svdops check` takes in a cold process, and proof that it does not import torch.

Targets (issue 2): local host < 1.5 s; replaying a recorded folder < 0.5 s. Anchor: the same host's
`python -m torch.utils.collect_env` (3-9 s on a GPU host).

    .venv/bin/python benchmarks/check_speed.py [--runs 7] [--markdown benchmarks/results/check_speed.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "fixtures" / "hosts" / "h100-sxm-ubuntu2404"
PROBE_TORCH = (
    "import sys, runpy; sys.argv = ['svdops'] + sys.argv[1:]\n"
    "try:\n    runpy.run_module('svdops', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    "print('TORCH_IMPORTED' if 'torch' in sys.modules else 'TORCH_NOT_IMPORTED', file=sys.stderr)\n"
)


def time_command(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return times


def imports_torch(args: list[str]) -> bool:
    proc = subprocess.run([sys.executable, "-c", PROBE_TORCH, *args], capture_output=True, text=True, check=False)
    return "TORCH_IMPORTED" in proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--markdown", type=Path)
    opts = parser.parse_args()

    svdops = [sys.executable, "-m", "svdops"]
    cases = {
        "check, local host (cold process)": [*svdops, "check", "--format", "json"],
        "check, recorded H100 folder": [*svdops, "check", "--from-dir", str(RECORDED), "--format", "json"],
        "facts --json, local host": [*svdops, "facts", "--json"],
    }
    rows = []
    time_command(cases["check, local host (cold process)"], 1)  # page cache warm, as on a real host's 2nd run
    for label, argv in cases.items():
        times = time_command(argv, opts.runs)
        rows.append((label, statistics.median(times), max(times), imports_torch(argv[3:])))
    anchor = time_command([sys.executable, "-m", "torch.utils.collect_env"], 3)
    rows.append(("anchor: python -m torch.utils.collect_env", statistics.median(anchor), max(anchor), True))

    machine = f"{platform.node()}: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, " \
              f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    lines = [f"Machine: {machine}; {opts.runs} runs each, median and max wall time.", "",
             "| case | median s | max s | imports torch |", "|---|---|---|---|"]
    lines += [f"| {label} | {med:.3f} | {mx:.3f} | {'yes' if t else 'no'} |" for label, med, mx, t in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if opts.markdown:
        opts.markdown.write_text(text)
    local, recorded = rows[0][1], rows[1][1]
    ok = local < 1.5 and recorded < 0.5 and not rows[0][3] and not rows[1][3]
    print("targets met" if ok else "TARGETS MISSED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
