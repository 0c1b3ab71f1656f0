#!/usr/bin/env python3
"""Fuzz `svdops report` with damaged copies of real run folders; count what became of each mutation.

    .venv/bin/python benchmarks/fuzz_report.py [--mutations 5000] [--seed 20261201] [--render-every 1]

Stores of 1 to 8 mutated copies of reports/examples/runs (and, one store in three, a mutated check
file) are reported on the way `svdops report` does (`write_report`; with --render-every K > 1 the other
stores build every frame and telemetry chart without the template). The mutations and the outcomes are
those of tests/unit/test_report_fuzz.py (tests/support/run_mutations.py), which runs 1,000 of them in
the unit suite. Writes a Markdown summary (default benchmarks/results/fuzz_report.md) and exits 1 if any
mutation ended in an internal error, listing them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.run_mutations import OUTCOMES, run_store  # noqa: E402


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    gpu = "no GPU" if not Path("/dev/nvidia0").exists() else "NVIDIA GPU present (not used)"
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} logical CPUs, {gpu}; {platform.platform()}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--render-every", type=int, default=1, help="write the HTML for one store in K")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz_report.md")
    args = parser.parse_args()

    counts: Counter[str] = Counter()
    internal: list[str] = []
    stores = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="svdops-fuzz-") as work:
        while sum(counts.values()) < args.mutations:
            for outcome, what in run_store(args.seed, stores, Path(work), render=stores % args.render_every == 0):
                counts[outcome] += 1
                if outcome == "internal":
                    internal.append(f"store {stores}: {what}")
            stores += 1
    elapsed = time.perf_counter() - start
    tried = sum(counts.values())
    line = (
        f"mutations tried {tried}, rendered {counts['rendered']}, skipped-with-note {counts['skipped-with-note']}, "
        f"exit-2 {counts['exit-2']}, internal errors: {counts['internal']}"
    )
    print(line)
    for entry in internal[:50]:
        print("  " + entry)
    assert set(counts) <= set(OUTCOMES)
    rendered_stores = (stores + args.render_every - 1) // args.render_every
    text = f"""# `svdops report` fuzzed with damaged run folders

Measured {dt.datetime.now(dt.UTC).isoformat(timespec="minutes")} with `benchmarks/fuzz_report.py --mutations \
{args.mutations} --seed {args.seed} --render-every {args.render_every}`.

- Machine: {machine()}
- Corpus: the {len(list((ROOT / "reports" / "examples" / "runs").iterdir()))} committed example runs
  (reports/examples/runs) and the 2 example check files, copied and damaged by
  tests/support/run_mutations.py: byte flips, truncation, junk and NUL bytes; JSON values swapped for other
  kinds (NaN, infinities, 10^400, a 100,000-digit integer, nesting 100,000 deep, markup and control
  characters), keys deleted or written twice, multi-GPU sections grafted on; other encodings (latin-1,
  UTF-16/32, BOM); CSV damage to telemetry.csv and marks.csv (text in numeric cells, columns dropped or
  doubled, ragged rows, a rank column of junk); files deleted, made folders, FIFOs, links to /dev/zero,
  links out of the store, dangling links, sparse 65 MiB files.
- {stores} stores of 1 to 8 damaged runs each ({rendered_stores} written as HTML), in {elapsed:.0f} s.

**{line}**

| outcome | mutations | meaning |
|---|---|---|
| rendered | {counts["rendered"]} | its run (or check file) is in the report; malformed fields are notes, empty cells |
| skipped-with-note | {counts["skipped-with-note"]} | the report was written without it; a note names the file, why |
| exit-2 | {counts["exit-2"]} | its store had nothing usable left: `no run to report`, naming the first file and why |
| internal | {counts["internal"]} | an exception, a hang, or a note of the report's boundary saying it caught a bug |

"Rendered" includes mutations that changed nothing the report reads (iterations.csv, steps.csv) and
damage the reader absorbs (a torn telemetry sample is a gap in the line). The unit suite runs 1,000 of
these (tests/unit/test_report_fuzz.py, seed 20261201) and the targeted cases in
tests/unit/test_report_hostile.py.
"""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"-> {args.output}")
    return 1 if internal else 0


if __name__ == "__main__":
    sys.exit(main())
