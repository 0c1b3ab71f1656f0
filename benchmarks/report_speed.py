#!/usr/bin/env python3
"""How long `svdops report` takes over 1,000 runs (requirement: under 5 s).

    .venv/bin/python benchmarks/report_speed.py [--runs 1000] [--hosts 25] [--repeats 3]

Builds a store of N run folders from the shipped examples (reports/examples/runs: H100 reference runs
with their 10 Hz telemetry, CPU tiny runs with an OOM and an interrupted one), each copy under
another host name and start time, so every file a real report reads is there at its real size. Then
times, on that store: the library call (`write_report`, as `svdops bench --report` uses it) and the
whole command in a fresh process (`svdops report STORE --check ... --host-price ...`, imports included).
Writes a Markdown summary (default benchmarks/results/report_speed.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from svdops.report import Prices, ReportOptions, parse_host_prices, write_report  # noqa: E402
from svdops.runs.store import run_name  # noqa: E402

EXAMPLES = ROOT / "reports" / "examples"
LIMIT_S = 5.0


def build_store(store: Path, runs: int, hosts: int) -> int:
    """N runs copied from the examples under `hosts` host names; returns the store's size in bytes."""
    templates = sorted(p for p in (EXAMPLES / "runs").iterdir() if p.is_dir())
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(runs):
        template = templates[i % len(templates)]
        host = f"gpu{i % hosts:03d}"
        results = json.loads((template / "results.json").read_text())
        when = start + timedelta(minutes=7 * i)
        target = store / run_name(host, results.get("scenario", "run"), when)
        shutil.copytree(template, target)
        results["started_at"] = when.isoformat()
        results["finished_at"] = (when + timedelta(seconds=60)).isoformat()
        (target / "results.json").write_text(json.dumps(results))
        facts_path = target / "facts.json"
        facts = json.loads(facts_path.read_text())
        if isinstance(facts, dict):
            facts["hostname"] = host
            facts_path.write_text(json.dumps(facts))
    return sum(p.stat().st_size for p in store.rglob("*") if p.is_file())


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node, cpus, system = platform.node(), os.cpu_count(), platform.platform()
    return f"{node}, {cpus} CPU(s) ({cpu}), {system}, Python {platform.python_version()}"


def _row(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "report_speed.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="svdops-report-speed-") as tmp:
        work = Path(tmp)
        store = work / "runs"
        t0 = time.perf_counter()
        size = build_store(store, args.runs, args.hosts)
        build_s = time.perf_counter() - t0
        checks = sorted((EXAMPLES / "checks").glob("*.json"))
        prices = [f"gpu0{k}*=2.{k}" for k in range(10)]
        options = ReportOptions(checks=tuple(checks), prices=Prices(hosts=parse_host_prices(prices)))

        library: list[float] = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = write_report([str(store)], work / "report.html", options, export=work / "table.parquet")
            library.append(time.perf_counter() - t0)

        command = [str(Path(sys.executable).parent / "svdops"), "report", str(store), "-o", str(work / "cli.html")]
        for check in checks:
            command += ["--check", str(check)]
        for price in prices:
            command += ["--host-price", price]
        cli: list[float] = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            cli.append(time.perf_counter() - t0)
        html_bytes = (work / "report.html").stat().st_size

    worst = max(max(library), max(cli))
    verdict = "PASS" if worst < LIMIT_S else "FAIL"
    text = f"""# `svdops report` speed

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `benchmarks/report_speed.py`.

- Machine: {machine()}
- Input: {result.runs} run folders ({result.points} configuration points) from {result.hosts} hosts, copied from
  reports/examples/runs: {size / 1e6:.1f} MB on disk, telemetry charts for the newest run of 6 hosts;
  {len(checks)} check files, {len(prices)} price patterns. Store built in {build_s:.1f} s (not timed below).
- Output: one HTML file of {html_bytes / 1e6:.2f} MB, plus the merged table as Parquet (library call).

| | median s | min s | max s |
|---|---|---|---|
| `write_report()` (library, as `svdops bench --report`) | {_row(library)} |
| `svdops report STORE ...` (a fresh process, imports included) | {_row(cli)} |

Slowest of {args.repeats} repeats each: **{worst:.2f} s**. Requirement: a report over 1,000 runs in under
{LIMIT_S:.0f} s -> **{verdict}**.
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
