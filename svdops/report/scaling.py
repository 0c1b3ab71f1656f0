"""Multi-GPU run kinds: the scaling frame (throughput at a world size against the single-GPU baseline)
and the NCCL all-reduce sweep frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from svdops.report.run_fields import as_dict, as_number, as_text, run_gpu, run_host
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


def scaling_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per multi-GPU run (results.json `scaling`): throughput at its world size, and the
    single-GPU baseline it is compared with. A list of such entries is accepted too."""
    rows = []
    for run in runs:
        entries = run.results.get("scaling")
        for entry in [entries] if isinstance(entries, dict) else entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            throughput = entry.get("throughput")
            baseline = as_dict(entry.get("baseline"))
            unit = as_dict(throughput).get("unit") or ("videos/hour" if "videos_per_hour" in entry else None)
            base_key = "samples_per_s" if unit == "samples/s" else "videos_per_hour"
            rows.append(
                {
                    "host": run_host(run),
                    "run": run.name,
                    "gpu": run_gpu(run),
                    "workload": as_text(entry.get("workload") or run.results.get("workload")),
                    "world_size": as_number(
                        entry.get("world_size") or entry.get("gpus") or run.results.get("world_size")),
                    "throughput": as_number(as_dict(throughput).get("value"))
                    if isinstance(throughput, dict)
                    else as_number(throughput if throughput is not None else entry.get("videos_per_hour")),
                    "unit": unit,
                    "baseline": as_number(baseline.get(base_key)),
                    "speedup": as_number(entry.get("speedup")),
                    "efficiency": as_number(entry.get("efficiency")),
                }
            )
    return pd.DataFrame(rows, columns=SCALING_COLUMNS)


def nccl_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """The all-reduce sweep rows of every run (results.json `nccl`), with host, run and world size."""
    rows = []
    for run in runs:
        entries = run.results.get("nccl")
        if not isinstance(entries, list):
            continue
        world = as_number(run.results.get("world_size"))
        for entry in entries:
            if isinstance(entry, dict):
                rows.append(
                    {
                        "host": run_host(run),
                        "run": run.name,
                        "world_size": world,
                        **{str(k): v for k, v in entry.items()},
                    }
                )
    return pd.DataFrame(rows)
