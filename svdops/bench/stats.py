"""Summaries across iterations: median, p90, min, max. Pure Python, no numpy needed."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from svdops.runs.documents import Stat


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def describe(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """{n, median, p90, min, max} of the values that are present; Nones are skipped."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return {"n": 0, "median": None, "p90": None, "min": None, "max": None}
    return {
        "n": len(present),
        "median": statistics.median(present),
        "p90": percentile(present, 90),
        "min": min(present),
        "max": max(present),
    }


def describe_stat(values: Sequence[float | None]) -> Stat:
    """describe() as the results document's type."""
    d = describe(values)
    n = d["n"]
    return Stat(n=int(n or 0), median=d["median"], p90=d["p90"], min=d["min"], max=d["max"])
