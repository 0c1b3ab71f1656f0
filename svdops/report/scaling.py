"""Multi-GPU run kinds: the scaling frame (throughput at a world size against the single-GPU baseline)
and the NCCL all-reduce sweep frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from svdops.report.run_fields import as_number, as_text, run_gpu, run_host
from svdops.runs.store import Run

SCALING_COLUMNS = [
    "host",
    "run",
    "gpu",
    "workload",
    "world_size",
    "throughput",
    "unit",
    "baseline",
    "speedup",
    "efficiency",
]


_NCCL_FIGURES = ("size_bytes", "iterations", "time_s", "algbw_gbps", "busbw_gbps", "expected_busbw_gbps")


def scaling_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per multi-GPU run (results.json `scaling`): throughput at its world size, and the
    single-GPU baseline it is compared with. Older forms are read by ScalingEntry itself."""
    rows = [row for run in runs for row in scaling_rows(run)]
    return pd.DataFrame(rows, columns=SCALING_COLUMNS)


def scaling_rows(run: Run) -> list[dict[str, Any]]:
    entry = run.results.scaling
    if entry is None:
        return []
    throughput = entry.throughput
    unit = as_text(throughput.unit) if throughput else None
    return [
        {
            "host": run_host(run),
            "run": run.name,
            "gpu": run_gpu(run),
            "workload": as_text(entry.workload or run.results.workload),
            "world_size": as_number(entry.world_size or run.results.world_size),
            "throughput": as_number(throughput.value) if throughput else None,
            "unit": unit,
            "baseline": as_number(entry.baseline.figure(unit)) if entry.baseline else None,
            "speedup": as_number(entry.speedup),
            "efficiency": as_number(entry.efficiency),
        }
    ]


def nccl_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """The all-reduce sweep rows of every run (results.json `nccl`), with host, run and world size."""
    return pd.DataFrame([row for run in runs for row in nccl_rows(run)])


def nccl_rows(run: Run) -> list[dict[str, Any]]:
    world = as_number(run.results.world_size)
    rows = []
    for entry in run.results.nccl or []:
        # Numbers as floats or None: an integer of hundreds of digits would make the column unplottable.
        figures = {key: as_number(value) for key, value in entry.to_json().items() if key in _NCCL_FIGURES}
        rows.append({"host": run_host(run), "run": run.name, "world_size": world, **figures})
    return rows
