"""A run's telemetry.csv as plain series for the charts, read with a bound on how many runs and samples."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from svdops.errors import BadInputError
from svdops.report.run_fields import run_gpu, run_host, run_started
from svdops.runs.documents import TelemetrySummary, read_file_bytes
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


_TEXT_COLUMNS = frozenset({"label", "clocks_event_reasons", "gpu", "name", "uuid"})


def _read_table(path: Path) -> pd.DataFrame | None:
    """A run's CSV table through the bounded reader, every column but the text ones as numbers; None
    when there is none or it cannot be read as a table (the run's notes say why when it is not a plain
    file: svdops.report.selection judges those before the run is kept).

    A cell that is not a number (text, `1e999`, an integer of 400 digits) becomes NaN: a sample with a
    torn value is a gap in a line, never a reason to lose the report.
    """
    try:
        data = read_file_bytes(path)
    except BadInputError:
        return None
    if data is None:
        return None
    try:
        frame = pd.read_csv(io.BytesIO(data), encoding="utf-8", on_bad_lines="skip", low_memory=False)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OverflowError):
        return None
    frame = frame.loc[:, ~frame.columns.duplicated()]  # a header naming a column twice: the first counts
    frame.columns = [str(c) for c in frame.columns]
    for column in frame.columns:
        if column not in _TEXT_COLUMNS:
            frame[column] = numeric(frame[column])
    return frame


def numeric(column: pd.Series) -> pd.Series:
    """A column as finite floats, NaN wherever a cell is not one (pandas raises on a 400-digit integer)."""
    try:
        numbers = pd.to_numeric(column, errors="coerce")
    except (OverflowError, TypeError, ValueError):
        numbers = pd.Series([_finite(v) for v in column], index=column.index, dtype="float64")
    return numbers.astype("float64").replace([math.inf, -math.inf], math.nan)


def _finite(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def read_telemetry(run: Run) -> TelemetrySeries | None:
    """The run's NVML samples and stage marks on one time axis, or None when it has no usable samples."""
    samples = _read_table(run.path / "telemetry.csv")
    if samples is None or samples.empty:
        return None
    notes = []
    if "rank" in samples:
        samples = samples[samples["rank"].notna()]
        if samples["rank"].nunique() > 1:
            # Multi-GPU runs interleave every rank's GPU in one file; one trace per chart stays readable.
            notes.append(f"the GPU of rank {samples['rank'].min():g} of {samples['rank'].nunique()} ranks")
            samples = samples[samples["rank"] == samples["rank"].min()]
    # Marks were taken with time.monotonic() in the benchmark process, like t_mono; prefer it.
    clock = "t_mono" if "t_mono" in samples and samples["t_mono"].notna().all() else "t_unix"
    if clock not in samples:
        return None
    total = len(samples)
    samples = samples[samples[clock].notna()]
    if samples.empty:
        return None
    if len(samples) < total:
        notes.append(f"{total - len(samples)} of {total} samples without a readable time left out")
    samples = samples.sort_values(clock, kind="stable")
    t0 = float(samples[clock].iloc[0])
    samples = samples.assign(t_s=samples[clock] - t0)
    marks = pd.DataFrame(columns=["t_s", "label", "point", "iteration"])
    raw = _read_table(run.path / "marks.csv")
    if raw is not None and not raw.empty and clock in raw and "label" in raw:
        if "rank" in raw and raw["rank"].notna().any():
            raw = raw[raw["rank"] == raw["rank"].min()]
        raw = raw[raw[clock].notna()]
        marks = raw.assign(t_s=raw[clock] - t0, label=raw["label"].astype(str))
    return TelemetrySeries(
        run=run.name,
        host=run_host(run),
        gpu=run_gpu(run),
        samples=samples,
        marks=marks,
        summary=(run.results.telemetry.summary if run.results.telemetry else None) or TelemetrySummary(),
        note="; ".join(notes) or None,
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
