"""What a hostile recorded folder costs `svdops check --from-dir`: time and peak memory of a cold process.

A support bundle may come from anyone. Each case copies the recorded H100 folder and replaces one file:
a 50 MB `df.txt` of junk (random printable bytes, no newlines), 50 MB of well-formed `df -PT` rows
(about 600,000 mounts), and a 70 MiB sparse `nvidia-smi-q.xml` (cut at the 64 MiB cap). Target (issue 13):
none of them takes seconds or a gigabyte; the untouched folder is the baseline.

    .venv/bin/python benchmarks/recorded_junk.py [--runs 3] [--markdown benchmarks/results/recorded_junk.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "fixtures" / "hosts" / "h100-sxm-ubuntu2404"
SIZE = 50 * 1000 * 1000
# a child's peak RSS: read from wait4()'s rusage, one child at a time
MEASURE = (
    "import os, sys, time\n"
    "start = time.perf_counter()\n"
    "pid = os.spawnv(os.P_NOWAIT, sys.executable, [sys.executable, '-m', 'svdops', *sys.argv[1:]])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))\n"
)


def junk_df(path: Path) -> None:
    rng = random.Random(13)
    alphabet = (string.ascii_letters + string.digits + " \t").encode()
    with path.open("wb") as fh:
        fh.write(b"Filesystem Type 1024-blocks Used Available Capacity Mounted on\n")
        fh.write(bytes(rng.choice(alphabet) for _ in range(1 << 20)) * (SIZE >> 20))


def many_mounts_df(path: Path) -> None:
    row = "/dev/nvme0n1p%d ext4 1919746268 1048576 1820936192 1%% /mnt/data%d\n"
    with path.open("w") as fh:
        fh.write("Filesystem Type 1024-blocks Used Available Capacity Mounted on\n")
        written, i = 0, 0
        while written < SIZE:
            written += fh.write(row % (i, i))
            i += 1


def sparse_xml(path: Path) -> None:
    with path.open("wb") as fh:
        fh.truncate(70 * 1024 * 1024)


CASES: dict[str, tuple[str, Callable[[Path], None] | None]] = {
    "recorded H100 folder, untouched": ("df.txt", None),
    "df.txt: 50 MB of junk, one line": ("df.txt", junk_df),
    "df.txt: 50 MB of valid rows (~600k mounts)": ("df.txt", many_mounts_df),
    "nvidia-smi-q.xml: 70 MiB sparse file": ("nvidia-smi-q.xml", sparse_xml),
}


def measure(folder: Path, runs: int) -> tuple[float, float, int, int]:
    # -o a file beside the folder, never os.devnull: `-o` replaces its target atomically, and as root
    # that replaced /dev/null itself with a regular file (reported in issue 13)
    times, peaks, code = [], [], 0
    report = folder.parent / "check.json"
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, "check", "--from-dir", str(folder), "--format", "json", "-o", str(report)],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds, peak_kib, code_text = proc.stdout.split()
        times.append(float(seconds))
        peaks.append(int(peak_kib))
        code = int(code_text)
    return statistics.median(times), max(times), max(peaks) // 1024, code


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--markdown", type=Path)
    opts = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (key, make) in CASES.items():
            folder = Path(tmp) / "host"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(RECORDED, folder)
            if make is not None:
                make(folder / key)
            median, worst, peak_mib, code = measure(folder, opts.runs)
            rows.append((label, median, worst, peak_mib, code))
            print(f"{label}: {median:.2f} s median (max {worst:.2f}), peak RSS {peak_mib} MiB, exit {code}")
    if opts.markdown:
        machine = (
            f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, Python "
            f"{platform.python_version()}, {date.today()}"
        )
        lines = [
            "# A hostile recorded folder: `svdops check --from-dir`, cold process",
            "",
            f"Machine: {machine}; {opts.runs} runs each, median and max wall time, peak RSS of the process.",
            "",
            "| case | median s | max s | peak RSS MiB | exit |",
            "|---|---|---|---|---|",
            *(f"| {label} | {m:.2f} | {w:.2f} | {p} | {c} |" for label, m, w, p, c in rows),
            "",
        ]
        opts.markdown.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
