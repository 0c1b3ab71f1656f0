"""A run's telemetry.csv as plain series for the charts, read with a bound on how many runs and samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from svdops.report.run_fields import run_gpu, run_host, run_started
from svdops.runs.documents import TelemetrySummary
from svdops.runs.store import Run


@dataclass(frozen=True)
class TelemetrySeries:
    run: str
    host: str
    gpu: str | None
    samples: pd.DataFrame  # t_s (from the first sample), temp_c, power_w, power_limit_w, sm_mhz, clocks_event_mask
    marks: pd.DataFrame  # t_s, label, point, iteration
    summary: TelemetrySummary
    note: str | None = None


def telemetry_samples(run: Run) -> int:
    """How many NVML samples results.json says the run has (multi-GPU runs count per rank)."""
    telemetry = run.results.telemetry
    return telemetry.samples() if telemetry else 0


def read_telemetry(run: Run) -> TelemetrySeries | None:
    """The run's NVML samples and stage marks on one time axis, or None when it has no samples."""
    path = run.path / "telemetry.csv"
    if not path.is_file():
        return None
    try:
        samples = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    if samples.empty:
        return None
    note = None
    if "rank" in samples and samples["rank"].nunique() > 1:
        # Multi-GPU runs interleave every rank's GPU in one file; one trace per chart stays readable.
        note = f"the GPU of rank 0 of {samples['rank'].nunique()} ranks"
        samples = samples[samples["rank"] == samples["rank"].min()]
    # Marks were taken with time.monotonic() in the benchmark process, like t_mono; prefer it.
    clock = "t_mono" if "t_mono" in samples and samples["t_mono"].notna().all() else "t_unix"
    if clock not in samples:
        return None
    samples = samples.sort_values(clock)
    t0 = float(samples[clock].iloc[0])
    samples = samples.assign(t_s=samples[clock] - t0)
    marks = pd.DataFrame(columns=["t_s", "label", "point", "iteration"])
    marks_path = run.path / "marks.csv"
    if marks_path.is_file():
        try:
            raw = pd.read_csv(marks_path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
            raw = pd.DataFrame()
        if not raw.empty and clock in raw and "label" in raw:
            if "rank" in raw:
                raw = raw[raw["rank"] == raw["rank"].min()]
            marks = raw.assign(t_s=raw[clock] - t0)
    return TelemetrySeries(
        run=run.name,
        host=run_host(run),
        gpu=run_gpu(run),
        samples=samples,
        marks=marks,
        summary=(run.results.telemetry.summary if run.results.telemetry else None) or TelemetrySummary(),
        note=note,
    )


def pick_telemetry_runs(runs: Sequence[Run], limit: int) -> tuple[list[Run], int]:
    """The newest run with samples from each host first, then newer ones, up to `limit`.

    Telemetry charts are the heaviest part of a report; with hundreds of runs a reader wants one
    representative trace per machine, not a wall of them. Returns (picked, how many had samples).
    """
    with_samples = [r for r in runs if telemetry_samples(r) > 0]
    newest_first = sorted(with_samples, key=lambda r: run_started(r) or datetime.min.replace(tzinfo=UTC), reverse=True)
    picked: list[Run] = []
    hosts: set[str] = set()
    for run in newest_first:
        if run_host(run) not in hosts:
            hosts.add(run_host(run))
            picked.append(run)
    # By name: Run is a dataclass whose == compares every parsed JSON document.
    taken = {run.name for run in picked}
    picked += [run for run in newest_first if run.name not in taken]
    picked = picked[:limit]
    picked.sort(key=lambda r: (run_host(r), run_started(r) or datetime.min.replace(tzinfo=UTC)))
    return picked, len(with_samples)
