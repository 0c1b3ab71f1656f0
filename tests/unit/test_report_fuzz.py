"""A thousand damaged copies of real run folders, read the way `svdops report` reads them: 0 internal errors.

Each store holds mutated copies of the committed example runs (tests/support/run_mutations.py: byte
flips, truncation, JSON values swapped for other kinds, deleted and duplicated keys, numbers too large
for a float, NaN, nesting past Python's limit, other encodings, CSV damage to the telemetry, missing
files, a file replaced by a folder, a FIFO, a link to /dev/zero or out of the store, a file past the size
cap) and, one store in three, a mutated check file. Every mutation must end in a report that shows its
run or names it with a reason, or in a clear exit 2 when its store has nothing usable left; never in an
exception, a hang or a note of the report's boundary saying it caught a bug. Seeded: a failure names its
store, and `run_store(SEED, index, ...)` rebuilds it. `benchmarks/fuzz_report.py` runs 5,000 and more.
"""

from __future__ import annotations

from collections import Counter

from tests.support.run_mutations import OUTCOMES, run_store

SEED = 20261201
MUTATIONS = 1000
RENDER_EVERY = 4  # the others build every frame and every telemetry chart, the template aside

# Every family of damage the corpus promises, as its description names it: the test proves they were tried.
FAMILIES = (
    "bytes flip",
    "bytes truncate",
    "bytes junk",
    "bytes nul",
    "written as latin-1",
    "written as utf-16",
    "swap at",
    "delete at",
    "twice",
    "stringify at",
    "graft ",
    "replaced by an odd value",
    "csv cell",
    "csv column",
    "csv rank",
    "deleted",
    "directory",
    "dev_zero",
    "outside",
    "fifo",
    "big",
    "check ",
)


def test_a_thousand_damaged_run_folders_never_cost_the_report(tmp_path):
    counts: Counter[str] = Counter()
    internal: list[str] = []
    described: list[str] = []
    index = 0
    while sum(counts.values()) < MUTATIONS:
        for outcome, what in run_store(SEED, index, tmp_path, render=index % RENDER_EVERY == 0):
            counts[outcome] += 1
            described.append(what)
            if outcome == "internal":
                internal.append(f"store {index}: {what}")
        index += 1
    assert internal == [], f"{len(internal)} internal error(s):\n" + "\n".join(internal[:20])
    assert set(counts) <= set(OUTCOMES) and all(counts[o] for o in OUTCOMES if o != "internal"), counts
    text = "\n".join(described)
    assert [family for family in FAMILIES if family not in text] == []
